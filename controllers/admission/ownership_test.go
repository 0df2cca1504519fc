package admission

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func claim(ns, name string, age int, hosts ...string) Claim {
	return Claim{Namespace: ns, Name: name, Created: time.Unix(int64(1000+age), 0), Hostnames: hosts}
}

func standing(c Claim, s Standing) Claim { c.Standing = s; return c }

func incumbent(c Claim) Claim { return standing(c, Incumbent) }

func nn(ns, name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }

func TestResolve(t *testing.T) {
	cases := []struct {
		name   string
		claims []Claim
		want   map[types.NamespacedName]Conflict
	}{
		{
			name:   "disjoint hosts",
			claims: []Claim{claim("a", "r", 0, "a.example.com"), claim("b", "r", 1, "b.example.com")},
			want:   map[types.NamespacedName]Conflict{},
		},
		{
			name:   "hijack: the younger namespace loses",
			claims: []Claim{claim("b", "evil", 1, "shop.example.com"), claim("a", "shop", 0, "shop.example.com")},
			want:   map[types.NamespacedName]Conflict{nn("b", "evil"): {Hostname: "shop.example.com", Owner: nn("a", "shop")}},
		},
		{
			name:   "same namespace merges",
			claims: []Claim{claim("a", "api", 0, "shop.example.com"), claim("a", "web", 5, "shop.example.com")},
			want:   map[types.NamespacedName]Conflict{},
		},
		{
			name:   "same age: namespace then name decides",
			claims: []Claim{claim("b", "r", 0, "x.example.com"), claim("a", "z", 0, "x.example.com")},
			want:   map[types.NamespacedName]Conflict{nn("b", "r"): {Hostname: "x.example.com", Owner: nn("a", "z")}},
		},
		{
			name: "a refused route owns nothing: its other hosts go to the next claimant",
			claims: []Claim{
				claim("a", "r", 0, "one.example.com"),
				claim("b", "r", 1, "two.example.com", "one.example.com"),
				claim("c", "r", 2, "two.example.com"),
			},
			want: map[types.NamespacedName]Conflict{nn("b", "r"): {Hostname: "one.example.com", Index: 1, Owner: nn("a", "r")}},
		},
		{
			name:   "owner gone: the next claimant wins",
			claims: []Claim{claim("b", "r", 1, "shop.example.com"), claim("c", "r", 2, "shop.example.com")},
			want:   map[types.NamespacedName]Conflict{nn("c", "r"): {Hostname: "shop.example.com", Owner: nn("b", "r")}},
		},
		{
			name:   "an exact host under another namespace's wildcard is refused",
			claims: []Claim{claim("a", "r", 0, "*.example.com"), claim("b", "r", 1, "login.example.com")},
			want:   map[types.NamespacedName]Conflict{nn("b", "r"): {Hostname: "login.example.com", Owner: nn("a", "r")}},
		},
		{
			name:   "a younger wildcard over another namespace's exact host is refused",
			claims: []Claim{claim("a", "r", 0, "login.example.com"), claim("b", "r", 1, "*.example.com")},
			want:   map[types.NamespacedName]Conflict{nn("b", "r"): {Hostname: "*.example.com", Owner: nn("a", "r")}},
		},
		{
			name:   "wildcard and exact names merge within a namespace",
			claims: []Claim{claim("a", "r", 0, "login.example.com"), claim("a", "s", 1, "*.example.com")},
			want:   map[types.NamespacedName]Conflict{},
		},
		{
			name: "incumbents first: an older route fixed later cannot take a host that is being served",
			claims: []Claim{
				claim("squatter", "r", 0, "shop.example.com"),
				incumbent(claim("owner", "r", 5, "shop.example.com")),
			},
			want: map[types.NamespacedName]Conflict{nn("squatter", "r"): {Hostname: "shop.example.com", Owner: nn("owner", "r")}},
		},
		{
			name: "a route accepted for its current spec beats one that changed since (adding a taken host)",
			claims: []Claim{
				standing(claim("a", "r", 0, "a.example.com", "b.example.com"), AcceptedEarlierSpec),
				incumbent(claim("b", "r", 5, "b.example.com")),
			},
			want: map[types.NamespacedName]Conflict{nn("a", "r"): {Hostname: "b.example.com", Index: 1, Owner: nn("b", "r")}},
		},
		{
			name: "a route that changed since still beats challengers",
			claims: []Claim{
				claim("c", "r", 0, "a.example.com"),
				standing(claim("a", "r", 5, "a.example.com"), AcceptedEarlierSpec),
			},
			want: map[types.NamespacedName]Conflict{nn("c", "r"): {Hostname: "a.example.com", Owner: nn("a", "r")}},
		},
		{
			name:   "the catch-all is owned like a hostname",
			claims: []Claim{claim("a", "r", 0), claim("b", "r", 1), claim("a", "s", 2)},
			want:   map[types.NamespacedName]Conflict{nn("b", "r"): {Hostname: "", Index: -1, Owner: nn("a", "r")}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Resolve(tc.claims)); diff != "" {
				t.Errorf("Resolve (-want +got):\n%s", diff)
			}
		})
	}
}

// Resolve must be stable: once every admitted route is an incumbent and every refused one a
// challenger, running it again gives the same answer, whatever order the claims come in.
func TestResolveIsStable(t *testing.T) {
	claims := []Claim{
		claim("a", "wild", 3, "*.example.com"),
		claim("b", "login", 1, "login.example.com"),
		claim("c", "login", 0, "login.example.com", "c.example.org"),
		claim("c", "other", 2, "c.example.org"),
		claim("d", "catchall", 4),
		claim("e", "catchall", 5),
		incumbent(claim("f", "shop", 9, "shop.example.org")),
		claim("g", "shop", 6, "shop.example.org"),
		claim("h", "wild", 0, "*.example.net"),
		incumbent(claim("i", "api", 7, "api.example.net")),
	}
	first := Resolve(claims)
	next := slices.Clone(claims)
	for i := range next {
		next[i].Standing = Challenger
		if _, refused := first[nn(next[i].Namespace, next[i].Name)]; !refused {
			next[i].Standing = Incumbent
		}
	}
	for range 10 {
		rand.Shuffle(len(next), func(i, j int) { next[i], next[j] = next[j], next[i] })
		again := Resolve(next)
		if diff := cmp.Diff(keys(first), keys(again)); diff != "" {
			t.Fatalf("second run refuses other routes (-first +again):\n%s", diff)
		}
	}
}

func keys(m map[types.NamespacedName]Conflict) []string {
	var out []string
	for k := range m {
		out = append(out, k.String())
	}
	slices.Sort(out)
	return out
}

func TestClaimOfStanding(t *testing.T) {
	tr := route("team-a", "r", "A.example.com")
	tr.Generation = 3
	if c := ClaimOf(tr); c.Standing != Challenger || c.Hostnames[0] != "a.example.com" {
		t.Errorf("claim without status = %+v", c)
	}
	tr.Status.Conditions = []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: 2}}
	if c := ClaimOf(tr); c.Standing != AcceptedEarlierSpec {
		t.Errorf("accepted for generation 2 of 3: standing %v", c.Standing)
	}
	tr.Status.Conditions[0].ObservedGeneration = 3
	if c := ClaimOf(tr); c.Standing != Incumbent {
		t.Errorf("accepted for the current generation: standing %v", c.Standing)
	}
	tr.Status.Conditions[0].Status = metav1.ConditionFalse
	if c := ClaimOf(tr); c.Standing != Challenger {
		t.Errorf("refused: standing %v", c.Standing)
	}
}

func TestConflictVerdictHidesOwner(t *testing.T) {
	v := ConflictVerdict(Conflict{Hostname: "shop.example.com", Index: 2, Owner: nn("secret-team", "r")})
	if v.OK || v.Reason != "HostnameConflict" {
		t.Fatalf("verdict = %+v", v)
	}
	if want := `spec.hostnames[2]: hostname "shop.example.com" is already served by an older route in another namespace`; v.Message != want {
		t.Errorf("message = %q, want %q", v.Message, want)
	}
}
