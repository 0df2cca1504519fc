package routing

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Compile validates one TenantRoute and compiles it. A route with errors is not served; the errors
// name fields of the TenantRoute (spec.rules[0].matches[1].path.value ...). Defaults left zero
// fall back to Portico's own (1 MiB body, 60 s request and backend timeouts); a route may lower the
// body limit, never raise it above the EdgeProxy's.
func Compile(tr *edgev1alpha1.TenantRoute, defaults Defaults) (*Route, field.ErrorList) {
	return compileRoute(tr, defaults)
}

// Build compiles every route of the snapshot into an immutable table. Routes that fail Compile are
// left out and reported (in snapshot order); the rest are served. Several routes may serve one
// host: their rules merge, ordered as described in table.go.
func Build(s Snapshot) (*Table, []RouteError) {
	return build(s)
}

// Table is the immutable routing table of one EdgeProxy. It is safe for concurrent use; the zero
// value and nil serve nothing.
type Table struct{ d *tableData }

// Version of the snapshot the table was built from.
func (t *Table) Version() string {
	if t == nil || t.d == nil {
		return ""
	}
	return t.d.version
}

// Lookup picks the rule for a request: the most specific host first (exact, then one-label
// wildcard, then catch-all; never falling through), then the most specific match within it.
// Request.Header must have canonical keys, as net/http provides them. A lookup without regexes
// does not allocate.
func (t *Table) Lookup(r *Request) (Match, LookupResult) {
	if t == nil || t.d == nil {
		return Match{}, NoHost
	}
	vh := t.d.vhostFor(normalizeHost(r.Host))
	if vh == nil {
		return Match{}, NoHost
	}
	return vh.lookup(r)
}

// TLSSecretFor returns the Secret holding the certificate for an SNI host name (exact beats wildcard).
// When several routes list a host, the oldest route wins. The TLS value must not be modified.
func (t *Table) TLSSecretFor(host string) (TLS, bool) {
	if t == nil || t.d == nil {
		return TLS{}, false
	}
	host = normalizeHost(host)
	if tls, ok := t.d.tlsExact[host]; ok {
		return *tls, true
	}
	if key, ok := wildcardKey(host); ok {
		if tls, ok := t.d.tlsWild[key]; ok {
			return *tls, true
		}
		for len(t.d.tlsDeep) > 0 {
			if key, ok = wildcardKey(key); !ok {
				break
			}
			if tls, ok := t.d.tlsWild[key]; ok && t.d.tlsDeep[key] {
				return *tls, true
			}
		}
	}
	return TLS{}, false
}

// Dump returns a JSON-serializable, deterministic view of the table for /debug/routes and golden
// tests: a *TableDump.
func (t *Table) Dump() any { return t.dump() }
