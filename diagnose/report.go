// Package diagnose automates the on-call checklist "debug from backend to edge": backend Service,
// port and ready endpoints; IngressClass → controller → EdgeProxy; namespace and hostname
// admission; hostname conflicts; TenantRoute conditions; certificate and Secret; the EdgeProxy's
// replicas and address; and optionally a real request through the proxy. Checks are pure functions
// of a gathered State; Gather reads the cluster with the caller's own credentials and records reads
// the caller may not make as "could not check", never as failures.
//
// Explain answers "which rule serves this URL, and why" with the proxy's own routing table
// (routing.Build and Table.Lookup), so its answer is the proxy's answer.
package diagnose

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Status of one step.
type Status string

const (
	OK      Status = "ok"
	Warning Status = "warning"
	Failed  Status = "failed"
	// Unknown: the step could not be checked (the caller may not read something, say).
	Unknown Status = "unknown"
)

// Step is one item of the checklist.
type Step struct {
	// Section groups steps in checklist order: "backend", "class", "admission", "conflicts",
	// "conditions", "tls", "edgeproxy", "probe".
	Section string `json:"section"`
	// Title names what was checked ("Service app/web-api").
	Title  string `json:"title"`
	Status Status `json:"status"`
	// Evidence is what was observed.
	Evidence []string `json:"evidence,omitempty"`
	// Cause is the likely cause of a warning or failure, in the symptom table's terms.
	Cause string `json:"cause,omitempty"`
	// Fix says what to do about it.
	Fix string `json:"fix,omitempty"`
}

// Report is the outcome of one diagnose run.
type Report struct {
	// Target is what was diagnosed ("Ingress app/web-api").
	Target string `json:"target"`
	Steps  []Step `json:"steps"`
}

func (r *Report) add(s Step) { r.Steps = append(r.Steps, s) }

// Worst is the worst status of the report: failed, then warning, then ok. Unknown steps do not
// make a report unhealthy: the caller was not allowed to look, which is not a finding.
func (r *Report) Worst() Status {
	worst := OK
	for _, s := range r.Steps {
		switch {
		case s.Status == Failed:
			return Failed
		case s.Status == Warning:
			worst = Warning
		}
	}
	return worst
}

// ExitCode is 0 when healthy, 1 when a step failed, 2 when some step only warns.
func (r *Report) ExitCode() int {
	switch r.Worst() {
	case Failed:
		return 1
	case Warning:
		return 2
	}
	return 0
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

var marks = map[Status]string{OK: "ok  ", Warning: "WARN", Failed: "FAIL", Unknown: "??  "}

// WriteText writes the report for a terminal: one line per step, its evidence, cause and fix
// indented under it, and a summary line.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "diagnose %s\n", r.Target)
	section := ""
	for _, s := range r.Steps {
		if s.Section != section {
			section = s.Section
			fmt.Fprintf(&b, "\n%s\n", sectionTitles[section])
		}
		fmt.Fprintf(&b, "  [%s] %s\n", marks[s.Status], s.Title)
		for _, e := range s.Evidence {
			fmt.Fprintf(&b, "         %s\n", e)
		}
		if s.Cause != "" {
			fmt.Fprintf(&b, "         cause: %s\n", s.Cause)
		}
		if s.Fix != "" {
			fmt.Fprintf(&b, "         fix:   %s\n", s.Fix)
		}
	}
	counts := map[Status]int{}
	for _, s := range r.Steps {
		counts[s.Status]++
	}
	fmt.Fprintf(&b, "\nresult: %s (%d ok, %d warnings, %d failed, %d not checked)\n",
		r.Worst(), counts[OK], counts[Warning], counts[Failed], counts[Unknown])
	_, err := io.WriteString(w, b.String())
	return err
}

var sectionTitles = map[string]string{
	"source":     "2a. Translation of the source object",
	"backend":    "1. Backend health (Service, port, EndpointSlices)",
	"class":      "2. Class → controller → EdgeProxy",
	"admission":  "3. Namespace served, hostname allowed",
	"conflicts":  "4. Hostname ownership",
	"conditions": "5. TenantRoute conditions",
	"tls":        "6. Certificate and Secret",
	"edgeproxy":  "7. EdgeProxy: replicas and external address",
	"probe":      "8. Edge test through the proxy",
	"routes":     "Routes claiming the host",
}

// Cause finds the first failed (else warning) step and returns it; the zero Step when healthy.
// Tests and scripts use it to ask "what is wrong, first".
func (r *Report) Cause() Step {
	for _, want := range []Status{Failed, Warning} {
		for _, s := range r.Steps {
			if s.Status == want {
				return s
			}
		}
	}
	return Step{}
}

// Find returns the steps whose title contains sub.
func (r *Report) Find(sub string) []Step {
	var out []Step
	for _, s := range r.Steps {
		if strings.Contains(s.Title, sub) {
			out = append(out, s)
		}
	}
	return out
}
