package routing

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TableDump is the deterministic view of a table that Dump returns.
type TableDump struct {
	Version string      `json:"version"`
	Hosts   []HostDump  `json:"hosts"`
	TLS     []TLSDump   `json:"tls,omitempty"`
	Routes  []RouteDump `json:"routes"`
}

// HostDump lists a host's candidates in precedence order: the first that matches a request wins.
// Host is "*" for the catch-all.
type HostDump struct {
	Host  string      `json:"host"`
	Rules []MatchDump `json:"rules"`
}

// MatchDump is one (rule, match) candidate of a host.
type MatchDump struct {
	Path        string   `json:"path"` // "Exact /x", "PathPrefix /x", "RegularExpression ^..."
	Method      string   `json:"method,omitempty"`
	Headers     []string `json:"headers,omitempty"`     // "Name=value" or "Name~regex"
	QueryParams []string `json:"queryParams,omitempty"` // same
	Route       string   `json:"route"`                 // namespace/name
	Rule        string   `json:"rule"`                  // index, and name when set: "0" or "1 (api)"
	Match       int      `json:"match"`
}

// TLSDump is the certificate chosen for one TLS host.
type TLSDump struct {
	Host   string `json:"host"`
	Secret string `json:"secret"`
}

// RouteDump is one served route with its rules.
type RouteDump struct {
	Route     string     `json:"route"`
	Created   string     `json:"created,omitempty"`
	Source    string     `json:"source,omitempty"`
	Hostnames []string   `json:"hostnames,omitempty"`
	Policy    PolicyDump `json:"policy"`
	Rules     []RuleDump `json:"rules"`
}

// PolicyDump is Policy, printable.
type PolicyDump struct {
	MaxRequestBodyBytes int64    `json:"maxRequestBodyBytes"`
	SourceRanges        []string `json:"sourceRanges,omitempty"`
	SessionAffinity     string   `json:"sessionAffinity,omitempty"`
	CORS                *CORS    `json:"cors,omitempty"`
	AccessLog           bool     `json:"accessLog"`
	Websocket           bool     `json:"websocket,omitempty"`
}

// RuleDump is Rule, printable.
type RuleDump struct {
	Index           int                 `json:"index"`
	Name            string              `json:"name,omitempty"`
	Backends        []string            `json:"backends,omitempty"` // "ns/name:port weight=N"
	RequestHeaders  *HeaderModifierDump `json:"requestHeaders,omitempty"`
	ResponseHeaders *HeaderModifierDump `json:"responseHeaders,omitempty"`
	Redirect        string              `json:"redirect,omitempty"`
	Rewrite         string              `json:"rewrite,omitempty"`
	RequestTimeout  string              `json:"requestTimeout"`
	BackendTimeout  string              `json:"backendTimeout"`
	RetryAttempts   int                 `json:"retryAttempts,omitempty"`
}

// HeaderModifierDump is HeaderModifier, printable.
type HeaderModifierDump struct {
	Set    []string `json:"set,omitempty"` // "Name: value"
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

func (t *Table) dump() *TableDump {
	out := &TableDump{Hosts: []HostDump{}, Routes: []RouteDump{}}
	if t == nil || t.d == nil {
		return out
	}
	d := t.d
	out.Version = d.version
	for i := range d.vhosts {
		if vh := &d.vhosts[i]; int32(i) != d.catchAll {
			out.Hosts = append(out.Hosts, vh.dump(vh.name))
		}
	}
	slices.SortFunc(out.Hosts, func(a, b HostDump) int { return strings.Compare(a.Host, b.Host) })
	if d.catchAll >= 0 {
		out.Hosts = append(out.Hosts, d.vhosts[d.catchAll].dump("*"))
	}
	for h, tls := range d.tlsExact {
		out.TLS = append(out.TLS, TLSDump{Host: h, Secret: tls.Secret.String()})
	}
	for h, tls := range d.tlsWild {
		out.TLS = append(out.TLS, TLSDump{Host: "*." + h, Secret: tls.Secret.String()})
	}
	slices.SortFunc(out.TLS, func(a, b TLSDump) int { return strings.Compare(a.Host, b.Host) })
	routes := slices.Clone(d.routes)
	slices.SortFunc(routes, func(a, b *Route) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	for _, r := range routes {
		out.Routes = append(out.Routes, dumpRoute(r))
	}
	return out
}

func (vh *vhost) dump(name string) HostDump {
	hd := HostDump{Host: name, Rules: []MatchDump{}}
	add := func(cs []candidate) {
		for _, c := range cs {
			hd.Rules = append(hd.Rules, dumpCandidate(c))
		}
	}
	// Exact paths are mutually exclusive, so their order is alphabetical; prefixes longest first.
	entries := slices.Clone(vh.entries)
	slices.SortFunc(entries, func(a, b pathEntry) int { return strings.Compare(a.key, b.key) })
	for _, e := range entries {
		add(e.exact)
	}
	slices.SortStableFunc(entries, func(a, b pathEntry) int { return cmp.Compare(len(b.key), len(a.key)) })
	for _, e := range entries {
		add(e.prefix)
	}
	add(vh.regex)
	return hd
}

func dumpCandidate(c candidate) MatchDump {
	m := c.match
	md := MatchDump{
		Path:   string(m.PathType) + " " + m.Path,
		Method: m.Method,
		Route:  c.rule.Route.Namespace + "/" + c.rule.Route.Name,
		Rule:   fmt.Sprint(c.rule.Index),
		Match:  m.Index,
	}
	if c.rule.Name != "" {
		md.Rule += " (" + c.rule.Name + ")"
	}
	for _, h := range m.Headers {
		md.Headers = append(md.Headers, valueMatchString(h.Name, h.Value, h.Regex != nil))
	}
	for _, q := range m.QueryParams {
		md.QueryParams = append(md.QueryParams, valueMatchString(q.Name, q.Value, q.Regex != nil))
	}
	return md
}

func valueMatchString(name, value string, regex bool) string {
	if regex {
		return name + "~" + value
	}
	return name + "=" + value
}

func dumpRoute(r *Route) RouteDump {
	rd := RouteDump{Route: r.Namespace + "/" + r.Name, Hostnames: r.Hostnames, Rules: []RuleDump{}}
	if !r.Created.IsZero() {
		rd.Created = r.Created.UTC().Format(time.RFC3339)
	}
	if r.SourceKind != "" || r.SourceName != "" {
		rd.Source = r.SourceKind + "/" + r.SourceName
	}
	p := r.Policy
	rd.Policy = PolicyDump{MaxRequestBodyBytes: p.MaxRequestBodyBytes, CORS: p.CORS, AccessLog: p.AccessLog, Websocket: p.Websocket}
	for _, s := range p.SourceRanges {
		rd.Policy.SourceRanges = append(rd.Policy.SourceRanges, s.String())
	}
	if sa := p.SessionAffinity; sa != nil {
		rd.Policy.SessionAffinity = "cookie " + sa.CookieName
		if sa.TTL > 0 {
			rd.Policy.SessionAffinity += " ttl=" + sa.TTL.String()
		}
	}
	for _, rule := range r.Rules {
		rd.Rules = append(rd.Rules, dumpRule(rule))
	}
	return rd
}

func dumpRule(rule *Rule) RuleDump {
	d := RuleDump{
		Index:           rule.Index,
		Name:            rule.Name,
		RequestHeaders:  dumpHeaders(rule.RequestHeaders),
		ResponseHeaders: dumpHeaders(rule.ResponseHeaders),
		RequestTimeout:  rule.Timeouts.Request.String(),
		BackendTimeout:  rule.Timeouts.Backend.String(),
		RetryAttempts:   rule.RetryAttempts,
	}
	for _, b := range rule.Backends {
		d.Backends = append(d.Backends, fmt.Sprintf("%s/%s:%d weight=%d", b.Key.Namespace, b.Key.Name, b.Key.Port, b.Weight))
	}
	if rd := rule.Redirect; rd != nil {
		d.Redirect = fmt.Sprintf("%d scheme=%q host=%q port=%d path=%s", rd.StatusCode, rd.Scheme, rd.Hostname, rd.Port, pathModString(rd.Path))
	}
	if rw := rule.Rewrite; rw != nil {
		d.Rewrite = fmt.Sprintf("host=%q path=%s", rw.Hostname, pathModString(rw.Path))
		if rw.Regex != nil {
			d.Rewrite += fmt.Sprintf(" regex=%q substitution=%q", rw.Regex.String(), rw.RegexSubstitution)
		}
	}
	return d
}

func pathModString(pm *PathModifier) string {
	if pm == nil {
		return "-"
	}
	return fmt.Sprintf("%s(%q)", pm.Type, pm.Value)
}

func dumpHeaders(hm *HeaderModifier) *HeaderModifierDump {
	if hm == nil {
		return nil
	}
	d := &HeaderModifierDump{Remove: hm.Remove}
	for _, h := range hm.Set {
		d.Set = append(d.Set, h.Name+": "+h.Value)
	}
	for _, h := range hm.Add {
		d.Add = append(d.Add, h.Name+": "+h.Value)
	}
	return d
}
