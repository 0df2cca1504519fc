package proxy

import (
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/portico-dev/portico/dataplane/routing"
)

// forwarding is who the client is, as far as the proxy can tell.
type forwarding struct {
	client netip.Addr
	// clientIP is client.String(), formatted once per request.
	clientIP string
	// chain is the X-Forwarded-For to send: the trusted part of the inbound chain plus the peer.
	chain string
	proto string
	port  string
}

// forwardingFor derives the client from the peer address, believing the last trustedHops entries
// of X-Forwarded-For (each appended by a proxy we trust) and nothing before them.
func forwardingFor(r *http.Request, trustedHops int) forwarding {
	f := forwarding{proto: "http"}
	if r.TLS != nil {
		f.proto = "https"
	}
	peer, _ := netip.ParseAddrPort(r.RemoteAddr)
	f.client = peer.Addr().Unmap()
	f.clientIP = f.client.String()
	f.chain = f.clientIP
	switch la := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr: // every real listener: no formatting and parsing back
		f.port = strconv.Itoa(la.Port)
	case net.Addr:
		if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			f.port = strconv.Itoa(int(ap.Port()))
		}
	}
	if trustedHops <= 0 {
		return f
	}
	var list []netip.Addr
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, part := range strings.Split(v, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(part))
			if err != nil {
				return f // a chain we cannot read is a chain we do not believe
			}
			list = append(list, a.Unmap())
		}
	}
	if len(list) == 0 {
		return f
	}
	i := max(len(list)-trustedHops, 0)
	f.client = list[i]
	f.clientIP = f.client.String()
	parts := make([]string, 0, len(list)-i+1)
	for _, a := range list[i:] {
		parts = append(parts, a.String())
	}
	f.chain = strings.Join(append(parts, peer.Addr().Unmap().String()), ", ")
	switch r.Header.Get("X-Forwarded-Proto") {
	case "http", "https":
		f.proto = r.Header.Get("X-Forwarded-Proto")
	}
	if p := r.Header.Get("X-Forwarded-Port"); p != "" {
		if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
			f.port = p
		}
	}
	return f
}

// rewrite builds the upstream request (ReverseProxy has already removed hop-by-hop fields,
// Connection-listed fields, Forwarded and the main X-Forwarded-* ones from pr.Out).
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	rewriteOut(callFrom(pr.In.Context()), pr.In, pr.Out)
}

// rewriteOut builds the upstream request out from the inbound request in (see rewrite).
func rewriteOut(c *call, in, out *http.Request) {
	out.URL.Scheme = "http"
	out.URL.Host = "endpoint.invalid" // the round tripper sets the endpoint of each attempt
	out.URL.Path, out.URL.RawPath = decodedPath(c.outPath), c.outPath
	out.URL.RawQuery = in.URL.RawQuery
	out.URL.ForceQuery, out.URL.Fragment, out.URL.RawFragment, out.URL.User = false, "", "", nil
	out.Host = c.outHost

	h := out.Header
	for k := range h {
		if strings.HasPrefix(k, "X-Forwarded-") {
			delete(h, k)
		}
	}
	h.Del("X-Real-Ip")
	h.Del("Proxy") // httpoxy
	h.Del("Http2-Settings")
	if m := c.rule.RequestHeaders; m != nil {
		applyHeaders(h, m)
	}
	// Forwarding fields come last so no filter can forge them. The names are canonical, and the
	// values share one backing array (capacity-capped, so an append elsewhere copies): one
	// allocation instead of seven, on every request.
	v := make([]string, 7)
	v[0], v[1], v[2], v[3], v[4], v[5] = c.ex.RequestID, c.fwd.chain, c.fwd.clientIP, c.fwd.proto, in.Host,
		forwardedValue(c.fwd, in.Host)
	h["X-Request-Id"] = v[0:1:1]
	h["X-Forwarded-For"] = v[1:2:2]
	h["X-Real-Ip"] = v[2:3:3]
	h["X-Forwarded-Proto"] = v[3:4:4]
	h["X-Forwarded-Host"] = v[4:5:5]
	h["Forwarded"] = v[5:6:6]
	if c.fwd.port != "" {
		v[6] = c.fwd.port
		h["X-Forwarded-Port"] = v[6:7:7]
	}
}

func forwardedValue(f forwarding, host string) string {
	forID := f.clientIP
	if f.client.Is6() {
		forID = "[" + forID + "]"
	}
	return `for="` + forID + `";host="` + strings.ReplaceAll(host, `"`, "") + `";proto=` + f.proto
}

// decodedPath is the URL.Path matching a canonical RawPath; without escapes they are the same.
func decodedPath(raw string) string {
	if strings.IndexByte(raw, '%') < 0 {
		return raw
	}
	if p, err := url.PathUnescape(raw); err == nil {
		return p
	}
	return raw
}

// applyHeaders runs a Gateway API header modifier: set, then add, then remove.
func applyHeaders(h http.Header, m *routing.HeaderModifier) {
	for _, v := range m.Set {
		h[v.Name] = []string{v.Value}
	}
	for _, v := range m.Add {
		h[v.Name] = append(h[v.Name], v.Value)
	}
	for _, name := range m.Remove {
		delete(h, name)
	}
}

func inRanges(a netip.Addr, ranges []netip.Prefix) bool {
	for _, p := range ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// requestID keeps a well-formed inbound X-Request-Id (correlation across tiers) and generates one
// otherwise.
func requestID(in string) string {
	if n := len(in); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n && ok; i++ {
			c := in[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
		}
		if ok {
			return in
		}
	}
	var b [32]byte
	const hexdigits = "0123456789abcdef"
	for half := range 2 {
		v := rand.Uint64()
		for i := range 16 {
			b[half*16+i] = hexdigits[v&15]
			v >>= 4
		}
	}
	return string(b[:])
}

func itoa(n int) string { return strconv.Itoa(n) }
