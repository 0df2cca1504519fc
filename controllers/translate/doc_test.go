package translate

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

const (
	migrationDoc = "../../docs/ingress-nginx-migration.md"
	tableBegin   = "<!-- BEGIN GENERATED ANNOTATION TABLE: go test ./controllers/translate -update -->"
	tableEnd     = "<!-- END GENERATED ANNOTATION TABLE -->"
)

// migrationTable renders NginxAnnotations as the migration doc's table, so that the doc cannot say
// something the code does not do.
func migrationTable() string {
	var b strings.Builder
	counts := map[Behaviour]int{}
	rows := NginxAnnotations()
	for _, a := range rows {
		counts[a.Behaviour]++
	}
	fmt.Fprintf(&b, "%d annotations: %d exact, %d approximated, %d ignored, %d refused.\n\n",
		len(rows), counts[Exact], counts[Approximated], counts[Ignored], counts[Refused])
	b.WriteString("| Annotation | Behaviour | What Portico does |\n")
	b.WriteString("| --- | --- | --- |\n")
	for _, a := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", a.Annotation, a.Behaviour, strings.ReplaceAll(a.Portico, "|", `\|`))
	}
	return b.String()
}

// TestMigrationDocIsCurrent fails when the table in docs/ingress-nginx-migration.md differs from
// the annotation table in the code; -update rewrites it (the prose around it is hand-written).
func TestMigrationDocIsCurrent(t *testing.T) {
	data, err := os.ReadFile(migrationDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	begin, end := strings.Index(doc, tableBegin), strings.Index(doc, tableEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s must hold the markers %q and %q", migrationDoc, tableBegin, tableEnd)
	}
	current := doc[begin+len(tableBegin) : end]
	want := "\n" + migrationTable()
	if current == want {
		return
	}
	if *update {
		if err := os.WriteFile(migrationDoc, []byte(doc[:begin+len(tableBegin)]+want+doc[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the annotation table of %s is out of date; run go test ./controllers/translate -update", migrationDoc)
	currentRows := tableRows(current)
	for row := range tableRows(want) {
		if !currentRows[row] {
			t.Errorf("missing or different in the doc: %s", row)
		}
	}
}

func tableRows(table string) map[string]bool {
	rows := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| `") {
			rows[line] = true
		}
	}
	return rows
}

// TestAnnotationTable keeps the table a valid single source of truth: sorted and unique (lookups
// are binary searches), every row described, and refusals explained.
func TestAnnotationTable(t *testing.T) {
	if n := len(nginxAnnotations); n < 100 {
		t.Errorf("only %d annotations; ingress-nginx documents more than 100", n)
	}
	for i, a := range nginxAnnotations {
		if i > 0 && nginxAnnotations[i-1].name >= a.name {
			t.Errorf("%s is out of order or duplicated (after %s)", a.name, nginxAnnotations[i-1].name)
		}
		if strings.HasPrefix(a.name, annotationPrefix) || a.name != strings.ToLower(a.name) {
			t.Errorf("%s: names are written lower-case, without the prefix", a.name)
		}
		if a.portico == "" || !strings.HasSuffix(a.portico, ".") {
			t.Errorf("%s: the description must be a sentence", a.name)
		}
		switch a.behaviour {
		case Exact, Approximated, Ignored, Refused:
		default:
			t.Errorf("%s: unknown behaviour %q", a.name, a.behaviour)
		}
		if lookupAnnotation(a.name) != &nginxAnnotations[i] {
			t.Errorf("%s: lookup does not find it", a.name)
		}
	}
	if lookupAnnotation("no-such-annotation") != nil {
		t.Error("lookup finds an unknown annotation")
	}
}
