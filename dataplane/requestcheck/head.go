package requestcheck

import (
	"bytes"
	"strings"
)

// bodyKind is how a request's body is framed.
type bodyKind uint8

const (
	bodyNone bodyKind = iota
	bodyFixed
	bodyChunked
)

// head accumulates what the checks need of one request head, line by line.
type head struct {
	lines       int // lines of this head seen, request line included
	blankBefore int // empty lines skipped before the request line
	headerBytes int
	fields      int

	method    string
	minor     int    // HTTP/1.<minor>
	authority string // of an absolute-form target, lower-case, default port removed
	https     bool

	haveCL, haveTE, haveHost bool
	contentLength            int64
	host                     string
	upgrade                  bool
}

func (h *head) framing() (bodyKind, int64) {
	switch {
	case h.haveTE:
		return bodyChunked, 0
	case h.haveCL && h.contentLength > 0:
		return bodyFixed, h.contentLength
	}
	return bodyNone, 0
}

// checkLine validates one complete line, CRLF stripped.
func checkLine(line []byte) *Rejection {
	if i := bytes.IndexByte(line, '\r'); i >= 0 {
		return errBareCR
	}
	return nil
}

// requestLine checks "method SP request-target SP HTTP-version".
func (h *head) requestLine(line []byte, lim *Limits) *Rejection {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errRequestLine
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 < 0 {
		return errRequestLine
	}
	method, target, version := line[:sp1], rest[:sp2], rest[sp2+1:]
	for _, c := range method {
		if !isTchar(c) {
			return errMethod
		}
	}
	if len(version) != 8 || string(version[:5]) != "HTTP/" || !isDigit(version[5]) || version[6] != '.' || !isDigit(version[7]) {
		return errVersion
	}
	if version[5] != '1' || (version[7] != '0' && version[7] != '1') {
		return errVersionNotServed
	}
	h.minor = int(version[7] - '0')
	if len(target) > lim.MaxTarget {
		return errTargetTooLong
	}
	if len(target) == 0 {
		return errRequestLine
	}
	for _, c := range target {
		// "#" never belongs in a request target (RFC 9112 3.2: no fragment).
		if c <= ' ' || c >= 0x7f || c == '#' {
			return errTargetChar
		}
	}
	h.method = string(method)
	if h.method == "CONNECT" {
		return errConnect
	}
	switch {
	case target[0] == '/':
	case len(target) == 1 && target[0] == '*':
		if h.method != "OPTIONS" {
			return errTargetForm
		}
	default:
		return h.absoluteForm(string(target))
	}
	return nil
}

// absoluteForm accepts "http://authority/..." and "https://authority/..." and remembers the
// authority: it must agree with the Host header (RFC 9112 3.2.2 lets the target win; a proxy that
// routes on one and forwards the other is how tenants get confused, so both must say the same).
func (h *head) absoluteForm(t string) *Rejection {
	lower := strings.ToLower(t[:min(len(t), 8)])
	var rest string
	switch {
	case strings.HasPrefix(lower, "http://"):
		rest = t[7:]
	case strings.HasPrefix(lower, "https://"):
		rest, h.https = t[8:], true
	default:
		return errTargetForm
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	auth := rest[:end]
	if auth == "" || !validAuthority(auth) {
		return errTargetForm
	}
	h.authority = canonicalAuthority(auth, h.https)
	return nil
}

// headerLine checks one field line of a head (trailer=false) or of a chunked trailer section.
func (h *head) headerLine(line []byte, lim *Limits, trailer bool) *Rejection {
	h.fields++
	if h.fields > lim.MaxFields {
		return errTooManyFields
	}
	if line[0] == ' ' || line[0] == '\t' {
		return errObsFold
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return errNoColon
	}
	name := line[:colon]
	if colon == 0 {
		return errHeaderName
	}
	if c := name[len(name)-1]; c == ' ' || c == '\t' {
		return errSpaceBeforeColon
	}
	for _, c := range name {
		if c == '_' {
			// RFC 9110 allows it, but CGI-style backends map "X_Forwarded_For" and
			// "X-Forwarded-For" to the same variable, which defeats header stripping. nginx drops
			// such fields by default; refusing is louder and just as safe.
			return errUnderscore
		}
		if !isTchar(c) {
			return errHeaderName
		}
	}
	value := trimOWS(line[colon+1:])
	for _, c := range value {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return errHeaderValue
		}
	}
	switch {
	case equalFold(name, "Content-Length"):
		if trailer {
			return errTrailer
		}
		if h.haveCL {
			return errDupContentLength
		}
		h.haveCL = true
		n, ok := parseDecimal(value)
		if !ok {
			return errContentLength
		}
		h.contentLength = n
	case equalFold(name, "Transfer-Encoding"):
		if trailer {
			return errTrailer
		}
		if h.haveTE {
			return errDupTE
		}
		h.haveTE = true
		if !equalFold(value, "chunked") {
			return errTE
		}
	case equalFold(name, "Host"):
		if trailer {
			return errTrailer
		}
		if h.haveHost {
			return errDupHost
		}
		h.haveHost = true
		if len(value) > 0 && !validAuthority(string(value)) {
			return errHost
		}
		h.host = string(value)
	case equalFold(name, "Upgrade"):
		h.upgrade = true
	case trailer && (equalFold(name, "Trailer") || equalFold(name, "Connection") || equalFold(name, "Upgrade")):
		return errTrailer
	}
	return nil
}

// finish runs the checks that need the whole head.
func (h *head) finish() *Rejection {
	switch {
	case h.haveCL && h.haveTE:
		return errCLAndTE
	case h.haveTE && h.minor == 0:
		return errTEOnHTTP10
	case h.minor == 1 && !h.haveHost:
		return errNoHost
	case h.authority != "" && h.haveHost && canonicalAuthority(h.host, h.https) != h.authority:
		return errHostMismatch
	}
	return nil
}

// validAuthority accepts host[:port] where host is a reg-name (RFC 3986 unreserved, sub-delims,
// pct-encoded) or a bracketed IPv6 literal. No userinfo, no path, no spaces.
func validAuthority(a string) bool {
	host, port := a, ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return false
		}
		for _, c := range []byte(a[1:end]) {
			if !(isHex(c) || c == ':' || c == '.') {
				return false
			}
		}
		rest := a[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return false
			}
			port = rest[1:]
			if port == "" {
				return false
			}
		}
		host = ""
	} else if i := strings.IndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i+1:]
		if port == "" {
			return false
		}
	}
	if len(port) > 5 {
		return false
	}
	for _, c := range []byte(port) {
		if !isDigit(c) {
			return false
		}
	}
	for _, c := range []byte(host) {
		switch {
		case isAlnum(c), strings.IndexByte("-._~!$&'()*+,;=%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// canonicalAuthority lower-cases and drops the scheme's default port, so "Example.com:80" and
// "example.com" compare equal for http.
func canonicalAuthority(a string, https bool) string {
	a = strings.ToLower(a)
	if https {
		return strings.TrimSuffix(a, ":443")
	}
	return strings.TrimSuffix(a, ":80")
}

// parseDecimal parses 1*DIGIT up to 18 digits (no sign, no spaces, no list).
func parseDecimal(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		d := s[i]
		if d >= 'A' && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
