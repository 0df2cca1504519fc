package admission

import (
	"cmp"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Standing says how firmly a route already holds its hostnames.
type Standing int

const (
	// Challenger: the route is not accepted (new, refused, or it was invalid until now).
	Challenger Standing = iota
	// AcceptedEarlierSpec: accepted, but for an earlier generation; its hostnames may have changed
	// since, so it yields to routes accepted for their current spec.
	AcceptedEarlierSpec
	// Incumbent: accepted for its current spec; its proxies serve these very hostnames.
	Incumbent
)

// Claim is one route's claim on the hostnames of its EdgeProxy.
type Claim struct {
	Namespace, Name string
	Created         time.Time
	// Hostnames, lower-cased, in spec order. Empty claims the EdgeProxy's catch-all.
	Hostnames []string
	Standing  Standing
}

// ClaimOf is the claim of a route, its standing read from its Accepted condition.
func ClaimOf(tr *edgev1alpha1.TenantRoute) Claim {
	c := Claim{Namespace: tr.Namespace, Name: tr.Name, Created: tr.CreationTimestamp.Time}
	for _, h := range tr.Spec.Hostnames {
		c.Hostnames = append(c.Hostnames, normalize(string(h)))
	}
	if a := meta.FindStatusCondition(tr.Status.Conditions, string(edgev1alpha1.RouteConditionAccepted)); a != nil && a.Status == metav1.ConditionTrue {
		c.Standing = AcceptedEarlierSpec
		if a.ObservedGeneration == tr.Generation {
			c.Standing = Incumbent
		}
	}
	return c
}

// Conflict says why a claim lost: Hostname (spec.hostnames[Index]; "" and -1 for the catch-all) is
// owned by Owner, a route in another namespace.
type Conflict struct {
	Hostname string
	Index    int
	Owner    types.NamespacedName
}

// Resolve decides hostname ownership among the claims of one EdgeProxy (routes that passed Check):
// a hostname belongs to the namespace of the oldest accepted route, and the owner's traffic is never
// disturbed. Claims are taken by standing (incumbents, then routes accepted for an earlier spec, then
// challengers), then oldest first, then by namespace/name. A claim is admitted when each of its
// hostnames is unowned or owned by its own namespace (routes of one namespace merge); it then owns
// the hostnames nobody owned. Taking incumbents first means an older route that was refused (invalid,
// say) and is fixed later cannot take a host from the route now serving it: squatting with an early,
// broken route gains nothing.
//
// A wildcard and an exact hostname it covers conflict too when their namespaces differ: exact beats
// wildcard in the proxy, so an exact name would take traffic from the wildcard's owner, and a
// wildcard admitted beside another namespace's exact names would make ownership depend on the
// order routes were admitted in. A refused claim owns nothing, so when an owner goes away the next
// claimant wins.
//
// The result holds the refused claims; every claim not in it is admitted. Admitted claims keep their
// standing on the next run, so repeated runs agree.
func Resolve(claims []Claim) map[types.NamespacedName]Conflict {
	sorted := slices.Clone(claims)
	slices.SortFunc(sorted, func(a, b Claim) int {
		if a.Standing != b.Standing {
			return cmp.Compare(b.Standing, a.Standing)
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	o := owners{host: map[string]types.NamespacedName{}, under: map[string][]types.NamespacedName{}}
	refused := map[types.NamespacedName]Conflict{}
	for _, c := range sorted {
		key := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
		if conflict, lost := o.conflict(c); lost {
			refused[key] = conflict
			continue
		}
		o.take(c, key)
	}
	return refused
}

// owners are the hostnames admitted so far: host (or "" for the catch-all) → first route admitted
// with it, and wildcard → routes admitted with an exact host it covers.
type owners struct {
	host  map[string]types.NamespacedName
	under map[string][]types.NamespacedName
}

// hostKeys are the ownership keys of a claim: its hostnames, or "" for the catch-all.
func hostKeys(c Claim) []string {
	if len(c.Hostnames) == 0 {
		return []string{""}
	}
	return c.Hostnames
}

func (o owners) take(c Claim, key types.NamespacedName) {
	for _, h := range hostKeys(c) {
		if _, taken := o.host[h]; !taken {
			o.host[h] = key
		}
		if w := wildcardOf(h); w != "" {
			o.under[w] = append(o.under[w], key)
		}
	}
}

// conflict finds the first hostname of c that another namespace holds: the same name, the wildcard
// covering an exact name, or an exact name under a wildcard. The relation is symmetric, so the set
// of admitted routes does not depend on the order in which they were first admitted.
func (o owners) conflict(c Claim) (Conflict, bool) {
	for i, h := range hostKeys(c) {
		index := i
		if len(c.Hostnames) == 0 {
			index = -1
		}
		if owner, taken := o.host[h]; taken && owner.Namespace != c.Namespace {
			return Conflict{Hostname: h, Index: index, Owner: owner}, true
		}
		if w := wildcardOf(h); w != "" {
			if owner, taken := o.host[w]; taken && owner.Namespace != c.Namespace {
				return Conflict{Hostname: h, Index: index, Owner: owner}, true
			}
		}
		for _, owner := range o.under[h] {
			if owner.Namespace != c.Namespace {
				return Conflict{Hostname: h, Index: index, Owner: owner}, true
			}
		}
	}
	return Conflict{}, false
}

// ConflictVerdict is the HostnameConflict verdict for a refused route. The owner's namespace is not
// named: it belongs to another team of the tenant or to another tenant, and a route's status and
// Events are readable by everyone who can read the route. The operator's log names it for the
// platform team.
func ConflictVerdict(c Conflict) Verdict {
	if c.Index < 0 {
		return refuse(edgev1alpha1.RouteReasonHostnameConflict,
			"spec.hostnames: the catch-all (a route without hostnames) is already served by an older route in another namespace")
	}
	p := field.NewPath("spec", "hostnames").Index(c.Index)
	return refuse(edgev1alpha1.RouteReasonHostnameConflict,
		"%s: hostname %q is already served by an older route in another namespace", p, c.Hostname)
}
