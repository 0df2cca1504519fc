package diagnose

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/urlpath"
)

// Request is the request to explain.
type Request struct {
	// URL is absolute: http(s)://host[:port]/path?query.
	URL    string
	Method string // GET when empty
	Header http.Header
	// SNI of the TLS connection for https URLs; the URL's host when empty.
	SNI string
	// ClientIP, when set, is checked against the route's source ranges (403).
	ClientIP string
	// BodyBytes, when positive, is checked against the route's body limit (413). A Content-Length
	// header sets it too.
	BodyBytes int64
}

// Table is what Explain reads: one EdgeProxy's routing table, built by routing.Build from the same
// routes the proxy serves, and the endpoints the proxy would dial.
type Table struct {
	EdgeProxy string
	Table     *routing.Table
	// Endpoints returns the ready endpoints of a backend ("10.0.0.7:8080"); known is false when
	// the Service (port) does not exist.
	Endpoints func(routing.BackendKey) (eps []string, known bool)
	// RedirectHTTPToHTTPS is the EdgeProxy's spec.tls.redirectHTTPToHTTPS.
	RedirectHTTPToHTTPS bool
	// Notes say how the table was obtained and what was left out of it.
	Notes []string
}

// Explanation is Explain's answer.
type Explanation struct {
	URL       string `json:"url"`
	EdgeProxy string `json:"edgeProxy,omitempty"`
	Host      string `json:"host"`
	Path      string `json:"path"`
	Method    string `json:"method"`
	// Status the proxy answers itself with (404, 421, 403, 413, 500, 503, 3xx), or 0 when the
	// request is forwarded to a backend.
	Status int `json:"status,omitempty"`
	// Reason is the proxy's reason for its own answer (no_route, misdirected...), as in its
	// response body and access log.
	Reason string `json:"reason,omitempty"`
	// HostMatch says how the host was matched: "exact", "wildcard *.example.com", "catch-all".
	HostMatch string `json:"hostMatch,omitempty"`
	// Route (namespace/name), its source, the rule and the match that won.
	Route  string `json:"route,omitempty"`
	Source string `json:"source,omitempty"`
	Rule   string `json:"rule,omitempty"`
	Match  string `json:"match,omitempty"`
	// Certificate is the Secret whose certificate the proxy presents for an https URL.
	Certificate string `json:"certificate,omitempty"`
	// ForwardedPath is the path the backend receives (after rewrites).
	ForwardedPath string `json:"forwardedPath,omitempty"`
	// Why lists the reasons, in order.
	Why []string `json:"why"`
	// Candidates are every (rule, match) of the chosen host in precedence order, with what each
	// did with this request.
	Candidates []Candidate    `json:"candidates,omitempty"`
	Backends   []BackendReach `json:"backends,omitempty"`
	Notes      []string       `json:"notes,omitempty"`
}

// Candidate is one (rule, match) of the chosen host.
type Candidate struct {
	Match   string `json:"match"`
	Route   string `json:"route"`
	Rule    string `json:"rule"`
	Outcome string `json:"outcome"`
}

// BackendReach is a backend of the chosen rule and the endpoints the proxy would dial.
type BackendReach struct {
	Backend   string   `json:"backend"`
	Weight    int32    `json:"weight"`
	Endpoints []string `json:"endpoints"`
	Problem   string   `json:"problem,omitempty"`
}

// Explain says which EdgeProxy, TenantRoute and rule would serve the request and why, or why the
// proxy would answer it itself. The rule is Table.Lookup's: the proxy's own answer.
func Explain(t Table, req Request) (*Explanation, error) {
	u, err := url.Parse(req.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", req.URL)
	}
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = http.MethodGet
	}
	header := http.Header{}
	for k, v := range req.Header {
		header[http.CanonicalHeaderKey(k)] = v
	}
	path, err := urlpath.Normalize(u.EscapedPath())
	if u.EscapedPath() == "" {
		path, err = "/", nil
	}
	host := strings.ToLower(u.Hostname())
	ex := &Explanation{URL: req.URL, EdgeProxy: t.EdgeProxy, Host: host, Path: path, Method: method, Notes: t.Notes}
	if err != nil {
		ex.Status, ex.Reason = http.StatusBadRequest, "rejected_request"
		ex.Why = append(ex.Why, fmt.Sprintf("the path is refused before routing: %v", err))
		return ex, nil
	}
	if u.Scheme == "https" {
		sni := req.SNI
		if sni == "" {
			sni = host
		}
		tls, ok := t.Table.TLSSecretFor(sni)
		if !ok {
			ex.Status, ex.Reason = 0, "no_certificate"
			ex.Why = append(ex.Why, fmt.Sprintf("no route of this EdgeProxy has a TLS block for %q: the TLS handshake fails "+
				"(symptom \"HTTP works, HTTPS fails\"); add spec.tls (Ingress: spec.tls with the host and a secretName)", sni))
			return ex, nil
		}
		ex.Certificate = tls.Secret.String()
		ex.Why = append(ex.Why, fmt.Sprintf("TLS: SNI %q selects the certificate of Secret %s", sni, tls.Secret))
		if tlsstore.Misdirected(t.Table, sni, u.Host, false) { // explain models no listener default certificate
			ex.Status, ex.Reason = http.StatusMisdirectedRequest, "misdirected"
			ex.Why = append(ex.Why, fmt.Sprintf("421: Host %q is not served under the certificate SNI %q selected "+
				"(a connection reused for another host, or a client sending a Host that differs from its SNI)", host, sni))
			return ex, nil
		}
	}

	m, res := t.Table.Lookup(&routing.Request{Host: u.Host, Path: path, Method: method, Header: header, RawQuery: u.RawQuery})
	dump, _ := t.Table.Dump().(*routing.TableDump)
	vh, hostMatch := chooseHost(dump, host)
	if res == routing.NoHost || vh == nil {
		ex.Status, ex.Reason = http.StatusNotFound, "no_route"
		ex.Why = append(ex.Why, noHostWhy(dump, host, t.EdgeProxy)...)
		return ex, nil
	}
	ex.HostMatch = hostMatch
	ex.Why = append(ex.Why, hostWhy(host, hostMatch, dump))
	ex.Candidates = candidates(t.Table, vh, path, method, header, u.RawQuery, m)
	if !t.RedirectHTTPToHTTPS || u.Scheme != "http" || strings.HasPrefix(path, "/.well-known/acme-challenge/") {
		// no HTTPS redirect
	} else if _, ok := t.Table.TLSSecretFor(host); ok {
		ex.Status, ex.Reason = http.StatusPermanentRedirect, "https_redirect"
		ex.Why = append(ex.Why, "308 to https: the EdgeProxy redirects plain HTTP for hosts with TLS (spec.tls.redirectHTTPToHTTPS)")
		return ex, nil
	}
	if res != routing.Matched {
		ex.Status, ex.Reason = http.StatusNotFound, "no_route"
		ex.Why = append(ex.Why, fmt.Sprintf("404: the host is served, but no rule matches %s %s (see the candidates); "+
			"the proxy never falls back to a less specific host", method, path))
		return ex, nil
	}
	rule := m.Rule
	r := rule.Route
	ex.Route = r.Namespace + "/" + r.Name
	if r.SourceKind != "" {
		ex.Source = r.SourceKind + " " + r.Namespace + "/" + r.SourceName
	}
	ex.Rule = ruleLabel(rule)
	for _, c := range ex.Candidates {
		if strings.HasPrefix(c.Outcome, "chosen") {
			ex.Match = c.Match
		}
	}
	ex.Why = append(ex.Why, precedenceWhy(ex.Candidates)...)
	if !policyAllows(ex, r, req, header) {
		return ex, nil
	}
	if rd := rule.Redirect; rd != nil {
		ex.Status, ex.Reason = rd.StatusCode, "redirect"
		ex.Why = append(ex.Why, fmt.Sprintf("%d: the rule redirects (RequestRedirect filter)", rd.StatusCode))
		return ex, nil
	}
	if len(rule.Backends) == 0 {
		ex.Status, ex.Reason = http.StatusInternalServerError, "no_backend"
		ex.Why = append(ex.Why, "500: the rule has neither backends nor a redirect")
		return ex, nil
	}
	ex.ForwardedPath = path
	if rw := rule.Rewrite; rw != nil {
		ex.ForwardedPath = rw.RewritePath(path, m.MatchedPrefix)
		if ex.ForwardedPath != path {
			ex.Why = append(ex.Why, fmt.Sprintf("the rule rewrites the path: the backend receives %q, not %q", ex.ForwardedPath, path))
		}
	}
	reachable := 0
	for _, b := range rule.Backends {
		br := BackendReach{Backend: fmt.Sprintf("%s/%s:%d", b.Key.Namespace, b.Key.Name, b.Key.Port), Weight: b.Weight, Endpoints: []string{}}
		if t.Endpoints != nil {
			eps, known := t.Endpoints(b.Key)
			br.Endpoints = append(br.Endpoints, eps...)
			switch {
			case !known:
				br.Problem = "no such Service port: requests to it get 503 no_endpoints (wrong Service name or port?)"
			case len(eps) == 0:
				br.Problem = "no ready endpoints: requests to it get 503 no_endpoints (Pods not ready, or the selector matches none)"
			}
		}
		if len(br.Endpoints) > 0 && b.Weight > 0 {
			reachable++
		}
		ex.Backends = append(ex.Backends, br)
	}
	if t.Endpoints != nil && reachable == 0 {
		ex.Status, ex.Reason = http.StatusServiceUnavailable, "no_endpoints"
		ex.Why = append(ex.Why, "503: no backend of the rule has a ready endpoint")
	}
	return ex, nil
}

// policyAllows applies the route's source ranges (403) and body limit (413).
func policyAllows(ex *Explanation, r *routing.Route, req Request, header http.Header) bool {
	pol := &r.Policy
	if req.ClientIP != "" && len(pol.SourceRanges) > 0 {
		ip, err := netip.ParseAddr(req.ClientIP)
		in := false
		for _, p := range pol.SourceRanges {
			if err == nil && p.Contains(ip.Unmap()) {
				in = true
			}
		}
		if !in {
			ex.Status, ex.Reason = http.StatusForbidden, "forbidden_source"
			ex.Why = append(ex.Why, fmt.Sprintf("403: client %s is outside the route's policy.sourceRanges %v", req.ClientIP, pol.SourceRanges))
			return false
		}
	} else if len(pol.SourceRanges) > 0 {
		ex.Why = append(ex.Why, fmt.Sprintf("the route admits only clients in %v (others get 403); pass --client-ip to check one", pol.SourceRanges))
	}
	size := req.BodyBytes
	if cl := header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			size = n
		}
	}
	limit := pol.MaxRequestBodyBytes
	if limit <= 0 {
		limit = edgev1alpha1.DefaultMaxRequestBodyBytes
	}
	if size > limit {
		ex.Status, ex.Reason = http.StatusRequestEntityTooLarge, "body_too_large"
		ex.Why = append(ex.Why, fmt.Sprintf("413: a %d-byte body is over the route's limit of %d bytes "+
			"(policy.maxRequestBodySize, Ingress annotation proxy-body-size, EdgeProxy spec.traffic.maxRequestBodySize)", size, limit))
		return false
	}
	return true
}

// chooseHost picks the host entry the proxy picks: exact, else one-label wildcard, else catch-all.
func chooseHost(d *routing.TableDump, host string) (*routing.HostDump, string) {
	if d == nil {
		return nil, ""
	}
	find := func(name string) *routing.HostDump {
		for i := range d.Hosts {
			if d.Hosts[i].Host == name {
				return &d.Hosts[i]
			}
		}
		return nil
	}
	if h := find(host); h != nil {
		return h, "exact"
	}
	if _, rest, ok := strings.Cut(host, "."); ok && rest != "" {
		if h := find("*." + rest); h != nil {
			return h, "wildcard *." + rest
		}
	}
	if h := find("*"); h != nil {
		return h, "catch-all"
	}
	return nil, ""
}

func hostWhy(host, how string, d *routing.TableDump) string {
	switch {
	case how == "exact":
		s := fmt.Sprintf("host %q matched exactly", host)
		if _, rest, ok := strings.Cut(host, "."); ok {
			if w, _ := chooseHost(&routing.TableDump{Hosts: wildcardsOnly(d)}, "x."+rest); w != nil {
				s += fmt.Sprintf("; %s also covers it, but an exact host beats a wildcard", w.Host)
			}
		}
		return s
	case how == "catch-all":
		return fmt.Sprintf("host %q matched no hostname; the catch-all (a route without hostnames, an Ingress rule without host) serves it", host)
	}
	return fmt.Sprintf("host %q matched the %s (exactly one extra label); no route names it exactly", host, how)
}

func wildcardsOnly(d *routing.TableDump) []routing.HostDump {
	var out []routing.HostDump
	for _, h := range d.Hosts {
		if strings.HasPrefix(h.Host, "*.") {
			out = append(out, h)
		}
	}
	return out
}

func noHostWhy(d *routing.TableDump, host, ep string) []string {
	why := []string{fmt.Sprintf("404 no_route: no admitted route of EdgeProxy %q serves host %q, and it has no catch-all route", ep, host)}
	if _, rest, ok := strings.Cut(host, "."); ok && d != nil {
		for _, h := range d.Hosts {
			if w, ok := strings.CutPrefix(h.Host, "*."); ok && strings.HasSuffix(rest, "."+w) {
				why = append(why, fmt.Sprintf("%s does not cover %q: a wildcard matches exactly one extra label", h.Host, host))
			}
		}
	}
	if d != nil && len(d.Hosts) > 0 {
		var names []string
		for _, h := range d.Hosts {
			names = append(names, h.Host)
		}
		if len(names) > 12 {
			names = append(names[:12], "...")
		}
		why = append(why, "hosts served: "+strings.Join(names, ", "))
	}
	why = append(why, "likely cause (404 from controller): the host has no rule, the route was not admitted (see `portico diagnose host "+host+"`), or the Ingress uses another class")
	return why
}

func ruleLabel(r *routing.Rule) string {
	s := strconv.Itoa(r.Index)
	if r.Name != "" {
		s += " (" + r.Name + ")"
	}
	return s
}

// candidates walks the chosen host's (rule, match) pairs in the table's precedence order and says
// what each did with the request. The chosen one is the one Lookup returned.
func candidates(t *routing.Table, vh *routing.HostDump, path, method string, h http.Header, rawQuery string, m routing.Match) []Candidate {
	rules := map[string]*routing.Route{}
	for _, r := range t.Routes() {
		rules[r.Namespace+"/"+r.Name] = r
	}
	var out []Candidate
	chosen := false
	for _, d := range vh.Rules {
		c := Candidate{Match: matchString(d), Route: d.Route, Rule: d.Rule}
		rm := findMatch(rules[d.Route], d)
		ok, why := false, "unknown match"
		if rm != nil {
			ok, why = matches(rm, path, method, h, rawQuery)
		}
		switch {
		case !chosen && m.Rule != nil && rm != nil && ok && m.Rule == ruleOf(rules[d.Route], d):
			c.Outcome, chosen = "chosen", true
		case !ok:
			c.Outcome = "no: " + why
		case chosen:
			c.Outcome = "matches too, but lower precedence"
		default:
			c.Outcome = "matches"
		}
		out = append(out, c)
	}
	return out
}

func matchString(d routing.MatchDump) string {
	s := d.Path
	if d.Method != "" {
		s += " method=" + d.Method
	}
	for _, h := range d.Headers {
		s += " header " + h
	}
	for _, q := range d.QueryParams {
		s += " query " + q
	}
	return s
}

func ruleOf(r *routing.Route, d routing.MatchDump) *routing.Rule {
	if r == nil {
		return nil
	}
	idx, _, _ := strings.Cut(d.Rule, " ")
	i, err := strconv.Atoi(idx)
	if err != nil {
		return nil
	}
	for _, rule := range r.Rules {
		if rule.Index == i {
			return rule
		}
	}
	return nil
}

func findMatch(r *routing.Route, d routing.MatchDump) *routing.RouteMatch {
	rule := ruleOf(r, d)
	if rule == nil {
		return nil
	}
	for i := range rule.Matches {
		if rule.Matches[i].Index == d.Match {
			return &rule.Matches[i]
		}
	}
	return nil
}

// matches says whether one match accepts the request, and if not, why.
func matches(m *routing.RouteMatch, path, method string, h http.Header, rawQuery string) (bool, string) {
	switch m.PathType {
	case gwapiv1.PathMatchExact:
		if path != m.Path {
			return false, fmt.Sprintf("Exact %s is not %s", m.Path, path)
		}
	case gwapiv1.PathMatchPathPrefix:
		if m.Path != "/" && path != m.Path && !strings.HasPrefix(path, m.Path+"/") {
			if strings.HasPrefix(path, m.Path) {
				return false, fmt.Sprintf("PathPrefix %s matches whole path segments only, not %s", m.Path, path)
			}
			return false, fmt.Sprintf("%s is not under PathPrefix %s", path, m.Path)
		}
	case gwapiv1.PathMatchRegularExpression:
		if m.PathRegex == nil || !m.PathRegex.MatchString(path) {
			return false, fmt.Sprintf("regular expression %s does not match the whole path %s", m.Path, path)
		}
	}
	if m.Method != "" && m.Method != method {
		return false, fmt.Sprintf("method %s, not %s", m.Method, method)
	}
	for _, hm := range m.Headers {
		vals := h[hm.Name]
		if len(vals) == 0 {
			return false, fmt.Sprintf("header %s missing", hm.Name)
		}
		v := strings.Join(vals, ", ")
		if hm.Regex != nil && !hm.Regex.MatchString(v) || hm.Regex == nil && v != hm.Value {
			return false, fmt.Sprintf("header %s is %q", hm.Name, v)
		}
	}
	q, _ := url.ParseQuery(rawQuery)
	for _, qm := range m.QueryParams {
		vals, ok := q[qm.Name]
		if !ok {
			return false, fmt.Sprintf("query parameter %s missing", qm.Name)
		}
		if qm.Regex != nil && !qm.Regex.MatchString(vals[0]) || qm.Regex == nil && vals[0] != qm.Value {
			return false, fmt.Sprintf("query parameter %s is %q", qm.Name, vals[0])
		}
	}
	return true, ""
}

// precedenceWhy explains the chosen candidate, and why it beat the others that match too.
func precedenceWhy(cs []Candidate) []string {
	i := slices.IndexFunc(cs, func(c Candidate) bool { return c.Outcome == "chosen" })
	if i < 0 {
		return nil
	}
	w := cs[i]
	typ, val, _ := strings.Cut(w.Match, " ")
	val, _, _ = strings.Cut(val, " ")
	var why []string
	switch typ {
	case "Exact":
		why = append(why, fmt.Sprintf("path: Exact %s equals the request path", val))
	case "PathPrefix":
		why = append(why, fmt.Sprintf("path: PathPrefix %s (length %d) covers the request path segment by segment", val, len(val)))
	default:
		why = append(why, fmt.Sprintf("path: regular expression %s matches the whole path", val))
	}
	why = append(why, fmt.Sprintf("served by TenantRoute %s rule %s", w.Route, w.Rule))
	for _, c := range cs {
		if c.Outcome != "matches too, but lower precedence" {
			continue
		}
		why = append(why, fmt.Sprintf("beats %s (TenantRoute %s rule %s): %s", c.Match, c.Route, c.Rule, beats(w, c)))
	}
	return why
}

func beats(w, l Candidate) string {
	wt, wrest, _ := strings.Cut(w.Match, " ")
	lt, lrest, _ := strings.Cut(l.Match, " ")
	wv, wcond, _ := strings.Cut(wrest, " ")
	lv, lcond, _ := strings.Cut(lrest, " ")
	rank := map[string]int{"Exact": 0, "PathPrefix": 1, "RegularExpression": 2}
	switch {
	case wt != lt && wt == "Exact":
		return "an Exact path beats a " + lt + " match"
	case wt != lt:
		return "a PathPrefix beats a regular expression"
	case rank[wt] == 1 && len(wv) != len(lv):
		return fmt.Sprintf("the longest prefix wins (%d > %d characters), whatever order the rules are written in", len(wv), len(lv))
	case wcond != lcond:
		return fmt.Sprintf("same path; more specific conditions win (method, then most header, then most query matches): %q over %q", wcond, lcond)
	case w.Route != l.Route:
		return "same path and conditions: the oldest route wins, then namespace/name"
	}
	return "same route and path: the earlier rule wins"
}
