// Package urlpath turns the raw path of a request into the one canonical form the proxy both
// matches routes against and forwards upstream. Matching one form and forwarding another is how
// path-based access rules get bypassed ("/admin" blocked, "/%61dmin" or "/x/../admin" forwarded),
// so there is exactly one function and its output is used for both.
package urlpath

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Error says why a path was refused. Reason is a short constant phrase, safe to log and to show.
type Error struct{ Reason string }

func (e *Error) Error() string { return "invalid request path: " + e.Reason }

var (
	errNotAbsolute   = &Error{"must start with /"}
	errBadEscape     = &Error{"malformed percent-encoding"}
	errEncodedSlash  = &Error{"encoded slash (%2F)"}
	errEncodedBSlash = &Error{"encoded backslash (%5C)"}
	errEncodedNUL    = &Error{"encoded NUL (%00)"}
	errControl       = &Error{"control character"}
	errBackslash     = &Error{"backslash"}
	errNonASCII      = &Error{"raw non-ASCII byte"}
	errFragment      = &Error{"fragment or query delimiter in path"}
	errUTF8          = &Error{"invalid UTF-8 in percent-encoded bytes"}
	errDotParams     = &Error{"dot segment with parameters"}
)

// IsInvalid reports whether err came from Normalize.
func IsInvalid(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Normalize returns the canonical form of raw, the path part of a request target (no query):
//
//   - %XX escapes of unreserved characters (ALPHA DIGIT - . _ ~) are decoded, once; every other
//     escape is kept, with upper-case hex digits;
//   - characters that RFC 3986 does not allow raw in a path ("<", "{", "|", ...) are percent-encoded,
//     so that Go's url package forwards the string unchanged;
//   - "." and ".." segments are removed (".." never climbs above "/"), and "//" runs merged;
//   - a trailing "/" is kept.
//
// It refuses, with an *Error: paths not starting with "/"; %2F, %5C and %00 (an encoded "/" or "\"
// means something different to almost every backend than to the router); escapes of other control
// characters; raw control characters, "\" and non-ASCII bytes; "#" and "?"; malformed escapes;
// escaped bytes that do not decode to valid UTF-8 (overlong forms such as %C0%AE included); and
// segments such as "..;x" that some servlet containers read as "..".
//
// A path that is already canonical is returned without allocating.
func Normalize(raw string) (string, error) {
	if raw == "" || raw[0] != '/' {
		return "", errNotAbsolute
	}
	if isCanonical(raw) {
		return raw, nil
	}
	var (
		b       strings.Builder
		highEsc []byte // the decoded bytes >= 0x80, checked as one UTF-8 sequence per run
	)
	b.Grow(len(raw))
	flushHigh := func() error {
		if len(highEsc) > 0 && !utf8.Valid(highEsc) {
			return errUTF8
		}
		highEsc = highEsc[:0]
		return nil
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' {
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", errBadEscape
			}
			d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
			switch {
			case d == '/':
				return "", errEncodedSlash
			case d == '\\':
				return "", errEncodedBSlash
			case d == 0:
				return "", errEncodedNUL
			case d < 0x20 || d == 0x7f:
				return "", errControl
			case d >= 0x80:
				highEsc = append(highEsc, d)
				writeEscape(&b, d)
				continue
			}
			if err := flushHigh(); err != nil {
				return "", err
			}
			if isUnreserved(d) {
				b.WriteByte(d)
			} else {
				writeEscape(&b, d)
			}
			continue
		}
		if err := flushHigh(); err != nil {
			return "", err
		}
		switch {
		case c < 0x20 || c == 0x7f:
			return "", errControl
		case c >= 0x80:
			return "", errNonASCII
		case c == '\\':
			return "", errBackslash
		case c == '#' || c == '?':
			return "", errFragment
		case isPathChar(c):
			b.WriteByte(c)
		default:
			writeEscape(&b, c)
		}
	}
	if err := flushHigh(); err != nil {
		return "", err
	}
	return removeDotSegments(b.String())
}

// isCanonical is the fast path: only characters that pass through unchanged, no escapes, no dot
// segments, no "//".
func isCanonical(p string) bool {
	prev := byte(0)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' || !isPathChar(c) {
			return false
		}
		if c == '/' && prev == '/' {
			return false
		}
		if c == '.' && prev == '/' {
			return false // might start a dot segment; let the slow path decide
		}
		prev = c
	}
	return true
}

// removeDotSegments resolves "." and ".." and merges empty segments. p starts with "/" and holds
// no escapes of "/", so splitting on "/" is splitting on segments.
func removeDotSegments(p string) (string, error) {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	trailingSlash := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case s == "":
			trailingSlash = last
		case s == ".":
			trailingSlash = last
		case s == "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailingSlash = last
		default:
			if name, _, ok := strings.Cut(s, ";"); ok && (name == "." || name == "..") {
				return "", errDotParams
			}
			out = append(out, s)
			trailingSlash = false
		}
	}
	if len(out) == 0 {
		return "/", nil
	}
	res := "/" + strings.Join(out, "/")
	if trailingSlash {
		res += "/"
	}
	return res, nil
}

// isPathChar: unreserved, sub-delims, ":", "@" and "/" (RFC 3986 pchar plus the separator).
func isPathChar(c byte) bool {
	return isUnreserved(c) || strings.IndexByte("!$&'()*+,;=:@/", c) >= 0
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

const upperHex = "0123456789ABCDEF"

func writeEscape(b *strings.Builder, c byte) {
	b.WriteByte('%')
	b.WriteByte(upperHex[c>>4])
	b.WriteByte(upperHex[c&15])
}

// ValidQuery reports whether a raw query holds only characters a request target may carry:
// printable ASCII except space and "#". The query is not normalized and is forwarded as is; a
// stray "%" is left to the backend, as nginx and Envoy do.
func ValidQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= 0x20 || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}
