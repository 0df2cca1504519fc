package proxy

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/portico-dev/portico/dataplane/routing"
)

// handleCORS applies a route's CORS policy (Gateway API HTTPCORSFilter semantics). It answers a
// preflight itself and returns true; for other requests it adds the response headers and returns
// false so the request is proxied. A request from an origin not allowed gets no CORS headers
// (the browser then blocks it), never an error from the proxy.
func handleCORS(w http.ResponseWriter, r *http.Request, cors *routing.CORS) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if !originAllowed(origin, cors.AllowOrigins) {
		if preflight {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusNoContent)
			return true
		}
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	if cors.AllowCredentials {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	} else if contains(cors.AllowOrigins, "*") {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if !preflight {
		if len(cors.ExposeHeaders) > 0 {
			h.Set("Access-Control-Expose-Headers", strings.Join(cors.ExposeHeaders, ", "))
		}
		return false
	}
	methods := cors.AllowMethods
	if contains(methods, "*") && !cors.AllowCredentials {
		h.Set("Access-Control-Allow-Methods", "*")
	} else if contains(methods, "*") {
		h.Set("Access-Control-Allow-Methods", r.Header.Get("Access-Control-Request-Method"))
	} else if len(methods) > 0 {
		h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
	}
	if hdrs := cors.AllowHeaders; contains(hdrs, "*") {
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" && cors.AllowCredentials {
			h.Set("Access-Control-Allow-Headers", req)
		} else {
			h.Set("Access-Control-Allow-Headers", "*")
		}
	} else if len(hdrs) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(hdrs, ", "))
	}
	if cors.MaxAge > 0 {
		h.Set("Access-Control-Max-Age", strconv.Itoa(int(cors.MaxAge)))
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// originAllowed matches "*", exact origins, and origins whose host matches a "*." wildcard.
func originAllowed(origin string, allowed []string) bool {
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(a, origin) {
			return true
		}
		if i := strings.Index(a, "://*."); i >= 0 {
			u, err := url.Parse(origin)
			if err != nil || !strings.EqualFold(u.Scheme, a[:i]) {
				continue
			}
			suffix := strings.ToLower(a[i+4:]) // ".example.com[:port]"
			if host := strings.ToLower(u.Host); strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
