package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// BenchmarkProxyHTTP1 measures a keep-alive HTTP/1.1 GET through the whole data plane (raw
// checks, routing, forwarding headers, pooled upstream) against a trivial backend; "direct" is
// the same client and backend without the proxy, to subtract their share.
func BenchmarkProxyHTTP1(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer backend.Close()
	h := dpt.Start(b, dpt.Options{})
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(b, backend.URL)}})
	h.Apply(b, dpt.Routes(b, simpleRoute), nil, proxy.Settings{})

	run := func(b *testing.B, url, host string) {
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			req, _ := http.NewRequest("GET", url, nil)
			req.Host = host
			for pb.Next() {
				resp, err := c.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	b.Run("direct", func(b *testing.B) { run(b, backend.URL+"/bench", "app.example") })
	b.Run("proxied", func(b *testing.B) { run(b, "http://"+h.HTTP+"/bench", "app.example") })
}
