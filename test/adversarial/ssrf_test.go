package adversarial

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// Hand-made endpoints (what an EndpointSlice a tenant controls could list) pointing at loopback
// (a live recorder), the proxy's own listeners, link-local, cloud metadata and the unspecified
// address: with the cluster-mode guard every request is a 502 at once, and 0 connections are made.
func TestSSRFEndpointsRefused(t *testing.T) {
	rec := NewRecorder(t)
	h := dpt.Start(t, dpt.Options{StrictEgress: true})
	targets := map[string]string{
		"loopback":      rec.Addr,
		"proxy-http":    h.HTTP,
		"proxy-admin":   h.Admin,
		"unspecified":   netip.AddrPortFrom(netip.IPv4Unspecified(), netip.MustParseAddrPort(rec.Addr).Port()).String(),
		"link-local":    "169.254.169.254:80",
		"link-local-v6": "[fe80::1]:80",
		"alibaba-md":    "100.100.100.200:80",
		"aws-md-v6":     "[fd00:ec2::254]:80",
		"mapped-md":     "[::ffff:169.254.169.254]:80",
	}
	eps := upstream.Endpoints{}
	var routes []string
	for name, addr := range targets {
		eps[dpt.Key(name)] = []upstream.Endpoint{{Addr: netip.MustParseAddrPort(addr)}}
		routes = append(routes, "metadata: {name: "+name+"}\nspec:\n  hostnames: ["+name+".example]\n  rules: [{backendRefs: [{name: "+name+", port: 80}]}]\n")
	}
	h.Dataplane.SetEndpoints(eps)
	h.Apply(t, dpt.Routes(t, routes...), nil, proxy.Settings{})
	client := &http.Client{Timeout: 5 * time.Second}
	for name := range targets {
		req, _ := http.NewRequest("GET", "http://"+h.HTTP+"/", nil)
		req.Host = name + ".example"
		begin := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || time.Since(begin) > time.Second {
			t.Errorf("%s (%s): %d after %v, want an immediate 502", name, targets[name], resp.StatusCode, time.Since(begin))
		}
	}
	if n := rec.Conns(); n != 0 {
		t.Errorf("the loopback backend saw %d connections", n)
	}
}
