package diagnose

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Verdict is the one-line answer: the status the proxy would answer itself with and its reason, or
// the route and rule the request is forwarded by.
func (e *Explanation) Verdict() string {
	switch {
	case e.Reason == "no_certificate":
		return "TLS handshake fails: no certificate for this host"
	case e.Status != 0:
		return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Reason)
	}
	return fmt.Sprintf("forwarded by TenantRoute %s rule %s", e.Route, e.Rule)
}

// WriteJSON writes the explanation as indented JSON.
func (e *Explanation) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(e)
}

// WriteText writes the explanation for a terminal.
func (e *Explanation) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", e.Method, e.URL)
	fmt.Fprintf(&b, "  answer:      %s\n", e.Verdict())
	fmt.Fprintf(&b, "  edgeproxy:   %s\n", e.EdgeProxy)
	if e.HostMatch != "" {
		fmt.Fprintf(&b, "  host match:  %s\n", e.HostMatch)
	}
	if e.Certificate != "" {
		fmt.Fprintf(&b, "  certificate: Secret %s\n", e.Certificate)
	}
	if e.Route != "" {
		fmt.Fprintf(&b, "  tenantroute: %s", e.Route)
		if e.Source != "" {
			fmt.Fprintf(&b, " (from %s)", e.Source)
		}
		fmt.Fprintf(&b, "\n  rule:        %s, match %s\n", e.Rule, e.Match)
	}
	if e.ForwardedPath != "" && e.ForwardedPath != e.Path {
		fmt.Fprintf(&b, "  backend path: %s\n", e.ForwardedPath)
	}
	b.WriteString("  why:\n")
	for _, y := range e.Why {
		fmt.Fprintf(&b, "    - %s\n", y)
	}
	if len(e.Candidates) > 0 {
		b.WriteString("  candidates, in precedence order:\n")
		for _, c := range e.Candidates {
			fmt.Fprintf(&b, "    %-28s %s rule %s: %s\n", c.Match, c.Route, c.Rule, c.Outcome)
		}
	}
	if len(e.Backends) > 0 {
		b.WriteString("  backends:\n")
		for _, be := range e.Backends {
			eps := strings.Join(be.Endpoints, ", ")
			if eps == "" {
				eps = "none"
			}
			fmt.Fprintf(&b, "    %s weight=%d endpoints: %s\n", be.Backend, be.Weight, eps)
			if be.Problem != "" {
				fmt.Fprintf(&b, "      ! %s\n", be.Problem)
			}
		}
	}
	for _, n := range e.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
