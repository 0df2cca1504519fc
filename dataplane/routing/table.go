package routing

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Table layout
//
// Host selection comes first and is final (Gateway API): the exact host's vhost, else the vhost of
// the one-label wildcard ("*.example.com" serves "a.example.com", not "a.b.example.com" nor
// "example.com"), else the catch-all of routes without hostnames. A request never falls through
// to a less specific host when the chosen vhost has no matching rule.
//
// Within a vhost every (rule, match) pair is a candidate, and candidates are totally ordered:
//
//  1. path: Exact, then PathPrefix by length (longest first), then RegularExpression by pattern
//     length (longest first). The Gateway API leaves regex precedence to implementations; Portico
//     puts them last so a regex never shadows an explicit exact or prefix path.
//  2. a method match beats none, 3. more header matches, 4. more query param matches,
//  5. the oldest route, 6. namespace/name, 7. rule index, 8. match index.
//
// Each vhost keeps one entry per distinct path value, holding the Exact candidates for that path
// and the PathPrefix candidates for that (normalized) prefix. Lookup probes the request path for
// its exact entry, then walks the path's segment boundaries from longest to shortest ("/a/b/c",
// "/a/b", "/a", "/"): O(path segments) probes, whatever the number of routes or hosts. Small vhosts
// (the common case) find entries by a scan of one contiguous slice, larger ones through a map.
// Each bucket holds its candidates in the order above; the first whose method, headers and query
// match wins. All candidates of a table live in one array, built without per-bucket allocations.

// candidate is one (rule, match) pair of a vhost.
type candidate struct {
	rule  *Rule
	match *RouteMatch
	rank  int32 // route precedence: index in (creation, namespace/name) order
	cond  bool  // the match has method, header or query conditions
}

// pathEntry holds the candidates of one path value of a vhost.
type pathEntry struct {
	key            string
	exact, prefix  []candidate
	nExact, nPrefx int32 // counts, while building
}

// smallVhost is the number of entries up to which a vhost is scanned rather than indexed.
const smallVhost = 8

// vhost is everything served under one host key.
type vhost struct {
	name    string // "a.example.com", "*.example.com", or "" for the catch-all
	entries []pathEntry
	index   map[string]int32 // key → entries index, when there are more than smallVhost entries
	regex   []candidate
}

// entry returns the entry for key, or nil.
func (vh *vhost) entry(key string) *pathEntry {
	if vh.index != nil {
		if i, ok := vh.index[key]; ok {
			return &vh.entries[i]
		}
		return nil
	}
	for i := range vh.entries {
		if e := &vh.entries[i]; len(e.key) == len(key) && e.key == key {
			return e
		}
	}
	return nil
}

type tableData struct {
	version  string
	vhosts   []vhost
	exact    map[string]int32 // lower-case host → vhosts index
	wildcard map[string]int32 // suffix after "*." → vhosts index
	// deep marks wildcard vhosts (by suffix) that also match more than one extra label: a route
	// from a Gateway API HTTPRoute serves them (Route.DeepWildcards).
	deep     map[string]bool
	tlsDeep  map[string]bool
	catchAll int32 // vhosts index, -1 when no route lacks hostnames
	tlsExact map[string]*TLS
	tlsWild  map[string]*TLS
	routes   []*Route // precedence order: oldest, then namespace/name
}

// parallelThreshold is the number of routes from which Build compiles on all CPUs.
const parallelThreshold = 256

func build(s Snapshot) (*Table, []RouteError) {
	compiled, errs := compileAll(s)
	routes := make([]*Route, 0, len(compiled))
	for _, r := range compiled {
		if r != nil {
			routes = append(routes, r)
		}
	}
	// Precedence order. The API server keeps namespace/name unique, but a snapshot might not: the
	// oldest copy is served (the first in the snapshot on a tie), the others reported.
	slices.SortStableFunc(routes, func(a, b *Route) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name), a.Created.Compare(b.Created))
	})
	kept := routes[:0]
	for i, r := range routes {
		if i > 0 && r.Namespace == routes[i-1].Namespace && r.Name == routes[i-1].Name {
			errs = append(errs, RouteError{Namespace: r.Namespace, Name: r.Name, Errors: field.ErrorList{
				field.Duplicate(field.NewPath("metadata", "name"), r.Namespace+"/"+r.Name),
			}})
			continue
		}
		kept = append(kept, r)
	}
	routes = kept
	slices.SortFunc(routes, compareRoutes)

	t := &tableData{
		version:  s.Version,
		exact:    make(map[string]int32, len(routes)),
		wildcard: map[string]int32{},
		deep:     map[string]bool{},
		tlsDeep:  map[string]bool{},
		catchAll: -1,
		tlsExact: map[string]*TLS{},
		tlsWild:  map[string]*TLS{},
		routes:   routes,
	}
	t.index()
	return &Table{d: t}, errs
}

// placed is a candidate waiting for its slot in the table's candidate array.
type placed struct {
	vh, entry int32 // entry -1: a regex candidate
	exact     bool
	c         candidate
}

// index builds the vhosts of t.routes. Pass one creates vhosts and entries and counts candidates;
// pass two copies them into one array, bucket by bucket, and sorts each bucket.
func (t *tableData) index() {
	vhostOf := func(host string) int32 {
		m, key := t.exact, host
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			m, key = t.wildcard, rest
		}
		i, ok := m[key]
		if !ok {
			i = int32(len(t.vhosts))
			t.vhosts = append(t.vhosts, vhost{name: host})
			m[key] = i
		}
		return i
	}
	n := 0
	for _, r := range t.routes {
		for _, rule := range r.Rules {
			n += len(rule.Matches) * max(1, len(r.Hostnames))
		}
	}
	items := make([]placed, 0, n)
	t.vhosts = make([]vhost, 0, len(t.routes))
	add := func(vi int32, r *Route, rank int32) {
		vh := &t.vhosts[vi]
		if vh.entries == nil {
			vh.entries = make([]pathEntry, 0, min(smallVhost, len(r.Rules)+1))
		}
		for _, rule := range r.Rules {
			for i := range rule.Matches {
				m := &rule.Matches[i]
				c := candidate{rule: rule, match: m, rank: rank, cond: m.Method != "" || len(m.Headers) > 0 || len(m.QueryParams) > 0}
				if m.PathType == gwapiv1.PathMatchRegularExpression {
					items = append(items, placed{vh: vi, entry: -1, c: c})
					continue
				}
				ei := vh.addEntry(m.Path)
				exact := m.PathType == gwapiv1.PathMatchExact
				if exact {
					vh.entries[ei].nExact++
				} else {
					vh.entries[ei].nPrefx++
				}
				items = append(items, placed{vh: vi, entry: ei, exact: exact, c: c})
			}
		}
	}
	for rank, r := range t.routes {
		if len(r.Hostnames) == 0 {
			if t.catchAll < 0 {
				t.catchAll = int32(len(t.vhosts))
				t.vhosts = append(t.vhosts, vhost{})
			}
			add(t.catchAll, r, int32(rank))
		}
		for _, h := range r.Hostnames {
			add(vhostOf(h), r, int32(rank))
			if rest, ok := strings.CutPrefix(h, "*."); ok && r.DeepWildcards {
				t.deep[rest] = true
			}
		}
		// TLS: the oldest route wins a host; within a route, the first block naming it.
		for i := range r.TLS {
			for _, h := range r.TLS[i].Hosts {
				m, key := t.tlsExact, h
				if rest, ok := strings.CutPrefix(h, "*."); ok {
					m, key = t.tlsWild, rest
				}
				if _, taken := m[key]; !taken {
					m[key] = &r.TLS[i]
					if key != h && r.DeepWildcards {
						t.tlsDeep[key] = true
					}
				}
			}
		}
	}

	// Pass two: carve every bucket out of one array. Items arrive in (rank, rule, match) order, so
	// each bucket starts in tie-break order and sorting only moves the more specific forward.
	all := make([]candidate, 0, len(items))
	for vi := range t.vhosts {
		vh := &t.vhosts[vi]
		for ei := range vh.entries {
			e := &vh.entries[ei]
			n := len(all)
			e.exact = all[n : n : n+int(e.nExact)]
			e.prefix = all[n+int(e.nExact) : n+int(e.nExact) : n+int(e.nExact+e.nPrefx)]
			all = all[:n+int(e.nExact+e.nPrefx)]
		}
	}
	for _, it := range items {
		vh := &t.vhosts[it.vh]
		switch {
		case it.entry < 0:
			vh.regex = append(vh.regex, it.c)
		case it.exact:
			vh.entries[it.entry].exact = append(vh.entries[it.entry].exact, it.c)
		default:
			vh.entries[it.entry].prefix = append(vh.entries[it.entry].prefix, it.c)
		}
	}
	for vi := range t.vhosts {
		vh := &t.vhosts[vi]
		for ei := range vh.entries {
			e := &vh.entries[ei]
			sortCandidates(e.exact)
			sortCandidates(e.prefix)
		}
		sortCandidates(vh.regex)
	}
}

// addEntry returns the index of key's entry, creating it.
func (vh *vhost) addEntry(key string) int32 {
	if vh.index != nil {
		if i, ok := vh.index[key]; ok {
			return i
		}
	} else {
		for i := range vh.entries {
			if vh.entries[i].key == key {
				return int32(i)
			}
		}
	}
	i := int32(len(vh.entries))
	vh.entries = append(vh.entries, pathEntry{key: key})
	switch {
	case vh.index != nil:
		vh.index[key] = i
	case len(vh.entries) > smallVhost:
		vh.index = make(map[string]int32, 2*len(vh.entries))
		for j := range vh.entries {
			vh.index[vh.entries[j].key] = int32(j)
		}
	}
	return i
}

func sortCandidates(cs []candidate) {
	if len(cs) > 1 {
		slices.SortFunc(cs, compareCandidates)
	}
}

// compileAll compiles every route of the snapshot, in parallel for large snapshots. compiled[i] is
// nil when route i failed; errors come back in snapshot order.
func compileAll(s Snapshot) ([]*Route, []RouteError) {
	compiled := make([]*Route, len(s.Routes))
	fieldErrs := make([]field.ErrorList, len(s.Routes))
	workers := runtime.GOMAXPROCS(0)
	if len(s.Routes) < parallelThreshold || workers < 2 {
		workers = 1
	}
	var wg sync.WaitGroup
	chunk := (len(s.Routes) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(s.Routes))
		if lo >= hi {
			break
		}
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				compiled[i], fieldErrs[i] = compileRoute(&s.Routes[i], s.Defaults)
			}
		})
	}
	wg.Wait()
	var errs []RouteError
	for i, fe := range fieldErrs {
		if len(fe) > 0 {
			errs = append(errs, RouteError{Namespace: s.Routes[i].Namespace, Name: s.Routes[i].Name, Errors: fe})
		}
	}
	return compiled, errs
}

// compareRoutes orders routes by precedence: the oldest first, then by namespace/name.
func compareRoutes(a, b *Route) int {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// compareCandidates orders candidates of one bucket (same exact path, same prefix, or regexes).
func compareCandidates(a, b candidate) int {
	am, bm := a.match, b.match
	if c := cmp.Compare(len(bm.Path), len(am.Path)); c != 0 { // regex: longer pattern first
		return c
	}
	if c := cmp.Compare(boolInt(bm.Method != ""), boolInt(am.Method != "")); c != 0 {
		return c
	}
	if c := cmp.Compare(len(bm.Headers), len(am.Headers)); c != 0 {
		return c
	}
	if c := cmp.Compare(len(bm.QueryParams), len(am.QueryParams)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.rank, b.rank); c != 0 {
		return c
	}
	if c := cmp.Compare(a.rule.Index, b.rule.Index); c != 0 {
		return c
	}
	return cmp.Compare(am.Index, bm.Index)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// vhostFor selects the vhost serving a normalized host: exact, else one-label wildcard, else a
// deeper wildcard of an HTTPRoute (the longest suffix first), else the catch-all. The choice is final.
func (t *tableData) vhostFor(host string) *vhost {
	if i, ok := t.exact[host]; ok {
		return &t.vhosts[i]
	}
	if key, ok := wildcardKey(host); ok {
		if i, ok := t.wildcard[key]; ok {
			return &t.vhosts[i]
		}
		// Deeper suffixes, most specific first, for wildcards that match several labels.
		for len(t.deep) > 0 {
			if key, ok = wildcardKey(key); !ok {
				break
			}
			if i, ok := t.wildcard[key]; ok && t.deep[key] {
				return &t.vhosts[i]
			}
		}
	}
	if t.catchAll >= 0 {
		return &t.vhosts[t.catchAll]
	}
	return nil
}

// Backends returns every backend the table's rules name, sorted and without duplicates: the
// Services whose endpoints the proxy needs.
func (t *Table) Backends() []BackendKey {
	if t == nil || t.d == nil {
		return nil
	}
	var out []BackendKey
	for _, r := range t.d.routes {
		for _, rule := range r.Rules {
			for _, b := range rule.Backends {
				out = append(out, b.Key)
			}
		}
	}
	slices.SortFunc(out, func(a, b BackendKey) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name), cmp.Compare(a.Port, b.Port))
	})
	return slices.Compact(out)
}

// Routes returns the table's routes in precedence order (oldest, then namespace/name). The caller
// must not modify them.
func (t *Table) Routes() []*Route {
	if t == nil || t.d == nil {
		return nil
	}
	return slices.Clone(t.d.routes)
}
