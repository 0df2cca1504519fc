package admission

import (
	"strings"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// normalize lower-cases a hostname; DNS names compare case-insensitively.
func normalize(h string) string { return strings.ToLower(h) }

// wildcardOf returns "*.example.com" for "www.example.com": the one-label wildcard that covers an
// exact host, or "" for a wildcard or a single-label name.
func wildcardOf(h string) string {
	if strings.HasPrefix(h, "*.") {
		return ""
	}
	i := strings.IndexByte(h, '.')
	if i < 0 || i == len(h)-1 {
		return ""
	}
	return "*" + h[i:]
}

// HostnameAllowed reports whether an EdgeProxy allow-list permits a route hostname. An exact entry
// allows that name only; "*.example.com" allows itself and every name with exactly one more label
// ("a.example.com", not "a.b.example.com" nor "example.com").
func HostnameAllowed(allowed []edgev1alpha1.Hostname, host string) bool {
	h := normalize(host)
	w := wildcardOf(h)
	for _, a := range allowed {
		switch n := normalize(string(a)); {
		case n == h:
			return true
		case w != "" && n == w:
			return true
		}
	}
	return false
}
