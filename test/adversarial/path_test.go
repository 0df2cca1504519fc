package adversarial

import (
	"bufio"
	"fmt"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/upstream"
	"github.com/portico-dev/portico/dataplane/urlpath"
)

// pathVectors are request targets aimed at crossing from /public to /admin (or at making the
// upstream resolve a path other than the one the proxy routed on).
var pathVectors = []string{
	"/public/x", "/admin/x", "/public", "/admin",
	"/public/../admin", "/public/../admin/", "/public/./../admin/x", "/public/../../../admin",
	"/public/%2e%2e/admin", "/public/%2E%2E/admin", "/public/.%2e/admin", "/public/%2e./admin",
	"/public/%2e%2e%2fadmin", "/public/..%2fadmin", "/public/..%2Fadmin", "/public%2f..%2fadmin",
	"//admin", "///admin/x", "/public//../admin", "/.//admin",
	"/public/%252e%252e/admin", "/public/%25%32%65%25%32%65/admin", "/%2561dmin",
	"/public/..;/admin", "/public;/../admin", "/public/;/../admin", "/admin;jsessionid=1",
	"/public/..\\admin", "/public\\..\\admin", "/public/%5c../admin", "/public/..%5cadmin",
	"/public/%c0%ae%c0%ae/admin", "/public/%e0%80%ae%e0%80%ae/admin", "/public/%c0%afadmin", "/public/%ef%bc%8fadmin",
	"/ADMIN", "/Admin/x", "/%61dmin", "/%41dmin", "/public/%2e%2e/%61dmin",
	"/public/%00/../admin", "/admin%00", "/public/%09/../admin", "/public/%0a",
	"/public/x/../../admin", "/public/x/..", "/public/.", "/public/..", "/public/x?../../admin",
	"/public/%3f/../admin", "/public/%23/../admin", "/public/%20/../admin", "/public/..%00/admin",
	"/public/...", "/public/.../admin", "/admin/..", "/admin/../public",
}

// routeOf is the route a path selects: the first segment, when it is /public or /admin.
func routeOf(p string) string {
	for _, r := range []string{"public", "admin"} {
		if p == "/"+r || strings.HasPrefix(p, "/"+r+"/") {
			return r
		}
	}
	return ""
}

// upstreamViews are the ways common backends resolve the target they receive: decode every
// escape then clean the dots (most frameworks); also drop ";params" of each segment (servlet
// containers) and read "\" as "/" (Windows servers), and fold case (case-insensitive file systems).
func upstreamViews(target string) []string {
	raw, _, _ := strings.Cut(target, "?")
	dec, err := url.PathUnescape(raw)
	if err != nil {
		dec = raw
	}
	clean := path.Clean("/" + dec)
	segs := strings.Split(dec, "/")
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	servlet := path.Clean("/" + strings.Join(segs, "/"))
	windows := path.Clean("/" + strings.ReplaceAll(dec, "\\", "/"))
	return []string{clean, servlet, windows, strings.ToLower(clean)}
}

// Each vector through the real proxy to /public and /admin routes on two recording upstreams:
// 400, or 404 (no route), or it reaches exactly the route its normalized path selects, with that
// normalized path, and every upstream reading of the received path selects the same route.
func TestPathNormalizationEndToEnd(t *testing.T) {
	pub, adm := NewRecorder(t), NewRecorder(t)
	h := dpt.Start(t, dpt.Options{})
	h.Dataplane.SetEndpoints(upstream.Endpoints{
		dpt.Key("pub"): {dpt.EndpointOf(t, pub.URL())}, dpt.Key("adm"): {dpt.EndpointOf(t, adm.URL())}})
	h.Apply(t, dpt.Routes(t, `
metadata: {name: paths}
spec:
  hostnames: [app.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /public}}]
    backendRefs: [{name: pub, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /admin}}]
    backendRefs: [{name: adm, port: 80}]
`), nil, proxy.Settings{})

	if len(pathVectors) < 40 {
		t.Fatalf("only %d vectors", len(pathVectors))
	}
	counts := map[int]int{}
	mismatches := 0
	for i, v := range pathVectors {
		id := fmt.Sprintf("p%d", i)
		c := dialRaw(t, h.HTTP, 10*time.Second)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: app.example\r\nX-Test-Id: %s\r\nConnection: close\r\n\r\n", v, id)
		resp, body, err := readResp(bufio.NewReader(c))
		c.Close()
		if err != nil {
			t.Errorf("%q: %v", v, err)
			continue
		}
		counts[resp.StatusCode]++
		raw, _, _ := strings.Cut(v, "?")
		norm, nerr := urlpath.Normalize(raw)
		want := routeOf(norm)
		switch resp.StatusCode {
		case 400:
			if nerr == nil {
				t.Errorf("%q: 400 but Normalize accepts it (%q)", v, norm)
			}
			continue
		case 404:
			if nerr != nil || want != "" {
				t.Errorf("%q: 404 but the normalized path %q (%v) selects %q", v, norm, nerr, want)
			}
			continue
		case 200:
		default:
			t.Errorf("%q: status %d %q", v, resp.StatusCode, body)
			continue
		}
		if nerr != nil {
			t.Errorf("%q: forwarded although Normalize refuses it: %v", v, nerr)
			continue
		}
		got := ""
		var seen Seen
		for name, rec := range map[string]*Recorder{"public": pub, "admin": adm} {
			for _, s := range rec.Seen() {
				if s.ID == id {
					got, seen = name, s
				}
			}
		}
		if got != want {
			t.Errorf("%q: reached route %q, the normalized path %q selects %q", v, got, norm, want)
			continue
		}
		fwd, _, _ := strings.Cut(seen.Target, "?")
		if fwd != norm {
			t.Errorf("%q: upstream received %q, the proxy routed on %q", v, seen.Target, norm)
		}
		for _, view := range upstreamViews(seen.Target) {
			if r := routeOf(view); r != got {
				mismatches++
				t.Errorf("%q: proxy chose %q, upstream received %q and can resolve it as %q (route %q)", v, got, seen.Target, view, r)
			}
		}
	}
	t.Logf("%d path vectors: %d → 400, %d → 404, %d → 200; %d proxy/upstream route mismatches",
		len(pathVectors), counts[400], counts[404], counts[200], mismatches)
}
