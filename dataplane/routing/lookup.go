package routing

import (
	"net/url"
	"strings"
)

// lookup picks the first candidate, in precedence order, that matches the request.
func (vh *vhost) lookup(r *Request) (Match, LookupResult) {
	path := r.Path
	if path == "" {
		path = "/"
	}
	e := vh.entry(path)
	if e != nil && len(e.exact) > 0 {
		if c := firstMatch(e.exact, r); c != nil {
			return Match{Rule: c.rule}, Matched
		}
	}
	if path[0] == '/' && len(vh.entries) > 0 {
		// Walk segment boundaries from the longest to the shortest: "/a/b" probes "/a/b", "/a", "/";
		// "/a/" probes "/a/", "/a", "/". Prefixes are stored without their trailing '/' (so never
		// match the first probe of "/a/"), which makes "/a/" and "/a" both match prefix "/a".
		p := path
		for {
			if e != nil && len(e.prefix) > 0 {
				if c := firstMatch(e.prefix, r); c != nil {
					return Match{Rule: c.rule, MatchedPrefix: p}, Matched
				}
			}
			if p == "/" {
				break
			}
			if i := strings.LastIndexByte(p, '/'); i > 0 {
				p = p[:i]
			} else {
				p = "/"
			}
			e = vh.entry(p)
		}
	}
	for i := range vh.regex {
		c := &vh.regex[i]
		if m := c.match; (m.Method == "" || m.Method == r.Method) && m.PathRegex.MatchString(path) && matchesRest(m, r) {
			return Match{Rule: c.rule}, Matched
		}
	}
	return Match{}, NoRule
}

func firstMatch(cs []candidate, r *Request) *candidate {
	for i := range cs {
		if !cs[i].cond || matchesRest(cs[i].match, r) {
			return &cs[i]
		}
	}
	return nil
}

// matchesRest checks everything of a match but the path.
func matchesRest(m *RouteMatch, r *Request) bool {
	if m.Method != "" && m.Method != r.Method {
		return false
	}
	for i := range m.Headers {
		h := &m.Headers[i]
		vals := r.Header[h.Name]
		if len(vals) == 0 {
			return false
		}
		v := vals[0]
		if len(vals) > 1 {
			v = strings.Join(vals, ", ") // a repeated field is its values joined (RFC 9110 5.3)
		}
		if h.Regex != nil {
			if !h.Regex.MatchString(v) {
				return false
			}
		} else if v != h.Value {
			return false
		}
	}
	for i := range m.QueryParams {
		q := &m.QueryParams[i]
		v, ok := queryValue(r.RawQuery, q.Name)
		if !ok {
			return false
		}
		if q.Regex != nil {
			if !q.Regex.MatchString(v) {
				return false
			}
		} else if v != q.Value {
			return false
		}
	}
	return true
}

// queryValue returns the first value of a query parameter, decoding only when needed.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(k, "%+") {
			dk, err := url.QueryUnescape(k)
			if err != nil {
				continue
			}
			k = dk
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			dv, err := url.QueryUnescape(v)
			if err != nil {
				return "", false
			}
			v = dv
		}
		return v, true
	}
	return "", false
}

// Apply returns path after the modifier: ReplaceFullPath's value, or ReplacePrefixMatch with
// matchedPrefix (Match.MatchedPrefix) replaced as the Gateway API's table says ("/foo/bar" with
// prefix "/foo" and value "/xyz" gives "/xyz/bar"; value "" gives "/bar"). nil returns path.
func (pm *PathModifier) Apply(path, matchedPrefix string) string {
	switch {
	case pm == nil:
		return path
	case pm.Type == "ReplaceFullPath":
		return pm.Value
	}
	rest := path
	if matchedPrefix != "/" {
		rest = strings.TrimPrefix(path, matchedPrefix) // "" or starting with '/'
	}
	out := strings.TrimSuffix(pm.Value, "/") + rest
	if out == "" || out[0] != '/' {
		out = "/" + out
	}
	return out
}

// RewritePath returns the path to forward: the regex substitution when the rule has a
// regexRewrite, else the URLRewrite path modifier applied, else path unchanged.
func (rw *Rewrite) RewritePath(path, matchedPrefix string) string {
	switch {
	case rw == nil:
		return path
	case rw.Regex != nil:
		return rw.Regex.ReplaceAllString(path, rw.RegexSubstitution)
	}
	return rw.Path.Apply(path, matchedPrefix)
}
