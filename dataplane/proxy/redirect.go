package proxy

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/portico-dev/portico/dataplane/routing"
)

// redirect answers a RequestRedirect filter with the Gateway API's rules:
//   - scheme, hostname and path default to the request's (path after normalization);
//   - without a port, the redirect uses the well-known port of the redirect's scheme when the
//     filter sets a scheme, else the port the client addressed (Host header, or the scheme's
//     default), which is the listener port as the client sees it even behind a Service;
//   - ":80" for http and ":443" for https are left out of Location.
func (p *Proxy) redirect(w http.ResponseWriter, r *http.Request, c *call, rd *routing.Redirect) {
	scheme := "http"
	if c.tls {
		scheme = "https"
	}
	host, reqPort := splitHost(r.Host)
	if rd.Hostname != "" {
		host = rd.Hostname
	}
	outScheme := scheme
	if rd.Scheme != "" {
		outScheme = rd.Scheme
	}
	var port string
	switch {
	case rd.Port != 0:
		port = strconv.Itoa(int(rd.Port))
	case rd.Scheme != "":
		port = defaultPort(outScheme)
	case reqPort != "":
		port = reqPort
	default:
		port = defaultPort(scheme)
	}
	path := c.path
	if rd.Path != nil {
		path = rd.Path.Apply(c.path, c.match.MatchedPrefix)
	}
	status := rd.StatusCode
	if status == 0 {
		status = http.StatusFound
	}
	c.ex.Reason = ReasonRedirect
	writeRedirect(w, c.ex, location(outScheme, host, port, path, r.URL.RawQuery), status)
}

// redirectToHTTPS sends a plain-HTTP request for a host with TLS to https, same host and path.
func (p *Proxy) redirectToHTTPS(w http.ResponseWriter, r *http.Request, c *call) {
	host, _ := splitHost(r.Host)
	c.ex.Reason = ReasonHTTPSRedirect
	writeRedirect(w, c.ex, location("https", host, strconv.Itoa(p.opts.HTTPSPort), c.path, r.URL.RawQuery), http.StatusPermanentRedirect)
}

func location(scheme, host, port, path, query string) string {
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	hp := host
	if strings.IndexByte(host, ':') >= 0 {
		hp = "[" + host + "]"
	}
	if port != "" {
		hp += ":" + port
	}
	loc := scheme + "://" + hp + path
	if query != "" {
		loc += "?" + query
	}
	return loc
}

func writeRedirect(w http.ResponseWriter, ex *Exchange, loc string, status int) {
	h := w.Header()
	h.Set("X-Request-Id", ex.RequestID)
	h.Set("Location", loc)
	h.Set("Content-Length", "0")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// splitHost splits "host:port", "[v6]:port", "host" and "[v6]".
func splitHost(hostport string) (string, string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
}
