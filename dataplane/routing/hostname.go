package routing

import "strings"

// checkHostname validates a route hostname (an exact DNS name, or "*." followed by one when
// wildcard is true) and returns it lower-cased. On failure it returns a reason for field.Invalid.
// Hand-written rather than a regexp: Build validates every hostname of every route.
func checkHostname(h string, wildcard bool) (string, string) {
	if h == "" {
		return "", "must not be empty"
	}
	if len(h) > 253 {
		return "", "must be no more than 253 characters"
	}
	name := h
	if strings.HasPrefix(h, "*.") {
		if !wildcard {
			return "", "must be an exact host name, not a wildcard"
		}
		name = h[2:]
	}
	upper := false
	labelStart := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			c := name[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			case c >= 'A' && c <= 'Z':
				upper = true
			case c == '*':
				return "", `a wildcard must be a single leading "*." label`
			case c == ':':
				return "", "must not contain a port"
			case c < 0x20 || c == 0x7f:
				return "", "must not contain control characters"
			default:
				return "", "must consist of DNS labels: letters, digits and '-', separated by '.'"
			}
			continue
		}
		label := name[labelStart:i]
		switch {
		case label == "" && i == len(name) && i > 0:
			return "", "must not end with a dot"
		case label == "":
			return "", "must not contain an empty label"
		case len(label) > 63:
			return "", "labels must be no more than 63 characters"
		case label[0] == '-' || label[len(label)-1] == '-':
			return "", "labels must start and end with a letter or digit"
		}
		labelStart = i + 1
	}
	if last := name[strings.LastIndexByte(name, '.')+1:]; strings.Trim(last, "0123456789") == "" {
		// An all-numeric top-level label: an IPv4 address (or something resolvers would take for one).
		return "", "must be a DNS name, not an IP address"
	}
	if upper {
		h = strings.ToLower(h)
	}
	return h, ""
}

// normalizeHost turns a Host header or SNI into the form the table is keyed by: port removed
// (also from "[::1]:8080"), one trailing dot removed, lower-case. It allocates only when the host
// has upper-case letters.
func normalizeHost(h string) string {
	if len(h) > 0 && h[0] == '[' {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h[:i], ':') < 0 {
		// One colon: host:port. Several colons without brackets: a bare IPv6 address, left alone.
		h = h[:i]
	}
	if n := len(h); n > 1 && h[n-1] == '.' {
		h = h[:n-1]
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// wildcardKey returns the suffix a one-label wildcard would be keyed by: "example.com" for
// "a.example.com". ok is false when the host has no non-empty first label.
func wildcardKey(host string) (string, bool) {
	i := strings.IndexByte(host, '.')
	if i <= 0 || i == len(host)-1 {
		return "", false
	}
	return host[i+1:], true
}

// isToken reports whether s is an RFC 9110 token (header names, methods).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// hasCTL reports control characters (C0 and DEL). A horizontal tab is allowed when tab is true:
// RFC 9110 permits it inside field values, and the TenantRoute CRD's CEL rule does too.
func hasCTL(s string, tab bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\t' && tab {
			continue
		}
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// checkMatchPath validates an Exact or PathPrefix value with the Gateway API's own rules for them
// (absolute, no "//", no dot segments, no encoded '/', only URI path characters).
func checkMatchPath(p string) string {
	switch {
	case p == "" || p[0] != '/':
		return "must be an absolute path starting with '/'"
	case hasCTL(p, false):
		return "must not contain control characters"
	case strings.Contains(p, "//"):
		return "must not contain '//'"
	case strings.Contains(p, "/./") || strings.HasSuffix(p, "/."),
		strings.Contains(p, "/../") || strings.HasSuffix(p, "/.."):
		return "must not contain '.' or '..' segments"
	case strings.Contains(p, "%2f") || strings.Contains(p, "%2F"):
		return "must not contain an encoded '/' (%2F)"
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-/._~!$&'()*+,;=:@", c) >= 0:
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			i += 2
		default:
			return "must only contain URI path characters or %XX escapes"
		}
	}
	return ""
}

// checkRewritePath validates a path a redirect or rewrite writes: absolute, printable, no spaces.
func checkRewritePath(p string, emptyOK bool) string {
	switch {
	case p == "" && emptyOK:
		return ""
	case p == "" || p[0] != '/':
		return "must be an absolute path starting with '/'"
	case hasCTL(p, false) || strings.ContainsAny(p, " \t"):
		return "must not contain control characters or whitespace"
	case strings.ContainsAny(p, "?#"):
		return "must not contain '?' or '#'"
	}
	return ""
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isDNSLabel checks an RFC 1123 label (namespaces); dns1035 additionally requires a leading
// letter (Service names).
func isDNSLabel(s string, dns1035 bool) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	if dns1035 && (s[0] < 'a' || s[0] > 'z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isDNSSubdomain checks an RFC 1123 subdomain (Secret names, rule names).
func isDNSSubdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l, false) {
			return false
		}
	}
	return true
}
