package routing

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Compile validates one TenantRoute and compiles it. A route with errors is not served; the errors
// name fields of the TenantRoute (spec.rules[0].matches[1].path.value ...).
func Compile(tr *edgev1alpha1.TenantRoute, defaults Defaults) (*Route, field.ErrorList) {
	panic("not implemented")
}

// Build compiles every route of the snapshot into an immutable table. Routes that fail Compile are
// left out and reported; the rest are served.
func Build(s Snapshot) (*Table, []RouteError) {
	panic("not implemented")
}

// Table is the immutable routing table of one EdgeProxy.
type Table struct{}

// Version of the snapshot the table was built from.
func (t *Table) Version() string { panic("not implemented") }

// Lookup picks the rule for a request.
func (t *Table) Lookup(r *Request) (Match, LookupResult) { panic("not implemented") }

// TLSSecretFor returns the Secret holding the certificate for an SNI host name (exact beats wildcard).
func (t *Table) TLSSecretFor(host string) (TLS, bool) { panic("not implemented") }

// Dump returns a JSON-serializable, deterministic view of the table for /debug/routes and golden tests.
func (t *Table) Dump() any { panic("not implemented") }
