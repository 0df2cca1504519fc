package urlpath

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// FuzzNormalize: Normalize never panics; its output is a fixed point (idempotent), absolute, free
// of dot segments and empty segments, forwarded unchanged by Go's url package, and an upstream
// that decodes it and cleans the dots (path.Clean after unescape) reads the same segments, so it
// cannot resolve a path the router did not match.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2e/admin", "/public/..%2fadmin", "//admin", "/%252e",
		"/a;b", "/a\\b", "/%c0%ae", "/ADMIN", "/%00", "/a/./b/", "/%7euser", "/a|b", "/x/%2E%2E/", "/..;/x",
		"/caf%c3%a9", "/%e2%80%ae", "/a%25b", "/.%2e/", "/a/b/..", "/a//b//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := Normalize(raw)
		if err != nil {
			if !IsInvalid(err) {
				t.Fatalf("Normalize(%q): error %v is not an *Error", raw, err)
			}
			return
		}
		again, err := Normalize(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: Normalize(%q) = %q; Normalize(%q) = %q, %v", raw, out, out, again, err)
		}
		if !strings.HasPrefix(out, "/") || strings.Contains(out, "//") {
			t.Fatalf("Normalize(%q) = %q: not absolute or has an empty segment", raw, out)
		}
		for _, seg := range strings.Split(out, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("Normalize(%q) = %q: dot segment left", raw, out)
			}
		}
		dec, err := url.PathUnescape(out)
		if err != nil {
			t.Fatalf("Normalize(%q) = %q: upstream cannot unescape it: %v", raw, out, err)
		}
		if u := (url.URL{Path: dec, RawPath: out}); u.EscapedPath() != out {
			t.Fatalf("Normalize(%q) = %q: Go forwards %q", raw, out, u.EscapedPath())
		}
		if strings.ContainsAny(dec, "\\\x00") {
			t.Fatalf("Normalize(%q) = %q: decodes to a backslash or NUL", raw, out)
		}
		want := strings.TrimSuffix(dec, "/")
		if want == "" {
			want = "/"
		}
		if clean := path.Clean(dec); clean != want {
			t.Fatalf("Normalize(%q) = %q: upstream resolves %q as %q", raw, out, dec, clean)
		}
	})
}
