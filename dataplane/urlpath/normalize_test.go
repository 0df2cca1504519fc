package urlpath

import (
	"net/url"
	"testing"
)

func TestNormalize(t *testing.T) {
	ok := func(in, want string) struct{ in, want, err string } {
		return struct{ in, want, err string }{in, want, ""}
	}
	bad := func(in, reason string) struct{ in, want, err string } {
		return struct{ in, want, err string }{in, "", reason}
	}
	tests := []struct{ in, want, err string }{
		// already canonical
		ok("/", "/"),
		ok("/api", "/api"),
		ok("/api/v1/users", "/api/v1/users"),
		ok("/api/", "/api/"),
		ok("/a-b_c~d.e", "/a-b_c~d.e"),
		ok("/a;b=c/d:e@f", "/a;b=c/d:e@f"),
		ok("/!$&'()*+,;=", "/!$&'()*+,;="),
		ok("/file.tar.gz", "/file.tar.gz"),
		ok("/.well-known/acme", "/.well-known/acme"),
		ok("/a/..b/c", "/a/..b/c"),
		ok("/a/b.", "/a/b."),
		// unreserved escapes decoded once
		ok("/%61dmin", "/admin"),
		ok("/%41%42%43", "/ABC"),
		ok("/%7euser", "/~user"),
		ok("/a%2Db", "/a-b"),
		ok("/%2561", "/%2561"), // "%25" stays: decoding happens once
		// reserved escapes kept, hex upper-cased
		ok("/a%20b", "/a%20b"),
		ok("/a%3fb", "/a%3Fb"),
		ok("/a%23b", "/a%23b"),
		ok("/caf%c3%a9", "/caf%C3%A9"),
		ok("/%e2%82%ac", "/%E2%82%AC"),
		ok("/%F0%9F%98%80", "/%F0%9F%98%80"),
		// raw characters that must be escaped in a path get escaped
		ok("/a|b", "/a%7Cb"),
		ok("/{x}", "/%7Bx%7D"),
		ok(`/"q"`, "/%22q%22"),
		ok("/a^b`c", "/a%5Eb%60c"),
		ok("/<script>", "/%3Cscript%3E"),
		ok("/[x]", "/%5Bx%5D"),
		// dot segments
		ok("/a/./b", "/a/b"),
		ok("/a/../b", "/b"),
		ok("/a/b/..", "/a/"),
		ok("/a/b/.", "/a/b/"),
		ok("/..", "/"),
		ok("/../../etc/passwd", "/etc/passwd"),
		ok("/a/%2e%2e/b", "/b"),
		ok("/a/%2E/b", "/a/b"),
		ok("/a/.%2e/admin", "/admin"),
		ok("/./", "/"),
		// "//" merged
		ok("//", "/"),
		ok("//a//b//", "/a/b/"),
		ok("/a///b", "/a/b"),
		ok("//../a", "/a"),
		// refused
		bad("", "must start with /"),
		bad("a/b", "must start with /"),
		bad("*", "must start with /"),
		bad("http://x/", "must start with /"),
		bad("/a%2fb", "encoded slash (%2F)"),
		bad("/a%2Fb", "encoded slash (%2F)"),
		bad("/a%5cb", "encoded backslash (%5C)"),
		bad("/a%5C..%5Cb", "encoded backslash (%5C)"),
		bad("/a%00", "encoded NUL (%00)"),
		bad("/a%0d%0aSet-Cookie:x", "control character"),
		bad("/a%7f", "control character"),
		bad("/a%09b", "control character"),
		bad("/a\\b", "backslash"),
		bad("/..\\..\\win.ini", "backslash"),
		bad("/a\x00b", "control character"),
		bad("/a\tb", "control character"),
		bad("/a\x7fb", "control character"),
		bad("/caf\xc3\xa9", "raw non-ASCII byte"),
		bad("/a%", "malformed percent-encoding"),
		bad("/a%4", "malformed percent-encoding"),
		bad("/a%zz", "malformed percent-encoding"),
		bad("/a%%41", "malformed percent-encoding"),
		bad("/%c0%ae%c0%ae/etc", "invalid UTF-8 in percent-encoded bytes"), // overlong "."
		bad("/%c0%af", "invalid UTF-8 in percent-encoded bytes"),           // overlong "/"
		bad("/%e0%80%af", "invalid UTF-8 in percent-encoded bytes"),        // 3-byte overlong "/"
		bad("/%ed%a0%80", "invalid UTF-8 in percent-encoded bytes"),        // UTF-16 surrogate
		bad("/%ff", "invalid UTF-8 in percent-encoded bytes"),
		bad("/%c3", "invalid UTF-8 in percent-encoded bytes"),
		bad("/%c3x", "invalid UTF-8 in percent-encoded bytes"),
		bad("/a#frag", "fragment or query delimiter in path"),
		bad("/api/..;/admin", "dot segment with parameters"),
		bad("/api/.;x/admin", "dot segment with parameters"),
	}
	if len(tests) < 40 {
		t.Fatalf("only %d vectors", len(tests))
	}
	for _, tc := range tests {
		got, err := Normalize(tc.in)
		switch {
		case tc.err != "":
			if err == nil {
				t.Errorf("Normalize(%q) = %q, want error %q", tc.in, got, tc.err)
				continue
			}
			if e, ok := err.(*Error); !ok || e.Reason != tc.err {
				t.Errorf("Normalize(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			if !IsInvalid(err) {
				t.Errorf("IsInvalid(%v) = false", err)
			}
		case err != nil:
			t.Errorf("Normalize(%q) error = %v, want %q", tc.in, err, tc.want)
		case got != tc.want:
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The output must be a fixed point (normalizing twice changes nothing) and must survive Go's url
// package unchanged, because that is what writes the upstream request line.
func TestNormalizeOutputIsStable(t *testing.T) {
	inputs := []string{"/", "/a%20b", "/caf%c3%a9", "/a|b", "/{x}", "/%7euser", "/a/../b/", "/x%3Fy", "/[v6]", "/a%25b"}
	for _, in := range inputs {
		out, err := Normalize(in)
		if err != nil {
			t.Fatalf("Normalize(%q): %v", in, err)
		}
		again, err := Normalize(out)
		if err != nil || again != out {
			t.Errorf("Normalize(Normalize(%q)) = %q, %v; want %q", in, again, err, out)
		}
		dec, err := url.PathUnescape(out)
		if err != nil {
			t.Fatalf("PathUnescape(%q): %v", out, err)
		}
		u := url.URL{Path: dec, RawPath: out}
		if got := u.EscapedPath(); got != out {
			t.Errorf("url.URL{RawPath: %q}.EscapedPath() = %q: Go would forward a different path", out, got)
		}
	}
}

func TestNormalizeCanonicalDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { _, _ = Normalize("/api/v1/users/42") })
	if allocs != 0 {
		t.Errorf("canonical path: %v allocations, want 0", allocs)
	}
}

func TestValidQuery(t *testing.T) {
	for q, want := range map[string]bool{
		"":              true,
		"a=1&b=2":       true,
		"q=100%":        true,
		"x=%20y":        true,
		"a=b c":         false,
		"a=\x00":        false,
		"a=\xff":        false,
		"a=1#frag":      false,
		"redirect=/a?b": true,
	} {
		if got := ValidQuery(q); got != want {
			t.Errorf("ValidQuery(%q) = %v, want %v", q, got, want)
		}
	}
}

func BenchmarkNormalize(b *testing.B) {
	for _, p := range []string{"/api/v1/users/42", "/api/%7Euser/../v1//x%20y"} {
		b.Run(p, func(b *testing.B) {
			for b.Loop() {
				_, _ = Normalize(p)
			}
		})
	}
}
