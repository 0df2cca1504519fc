package manifest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDecodeSkipsEmptyAndCommentDocuments(t *testing.T) {
	objs, err := Decode("x.yaml", []byte("# only a comment\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\n\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].GetKind() != "Service" || objs[1].GetName() != "b" || objs[1].Index != 3 {
		t.Fatalf("unexpected objects: %+v", objs)
	}
}

func TestDecodeRequiresKind(t *testing.T) {
	if _, err := Decode("x.yaml", []byte("metadata:\n  name: a\n")); err == nil {
		t.Fatal("want an error for a document without apiVersion/kind")
	}
}

func TestReadDirOrderAndFilter(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n")
	write("a.yml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n")
	write("kustomization.yaml", "resources: [a.yml]\n")
	write("notes.txt", "not yaml")
	objs, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].GetName() != "a" || objs[1].GetName() != "b" {
		t.Fatalf("unexpected objects: %+v", objs)
	}
}

// helm template --include-crds starts with "---" and a comment-only "# Source:" document.
func TestDecodeHelmTemplateOutput(t *testing.T) {
	in := "---\n# Source: portico/templates/a.yaml\n---\n# Source: portico/templates/b.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n"
	objs, err := Decode("helm", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].GetName() != "a" {
		t.Fatalf("unexpected objects: %+v", objs)
	}
}
