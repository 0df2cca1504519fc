package diagnose

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/controllers/render"
)

// ProbeOptions configure the edge test: a real request through the proxy with the right Host and SNI.
type ProbeOptions struct {
	Enabled bool
	// HTTPAddress and HTTPSAddress ("host:port") override the EdgeProxy's address and Service ports
	// (port-forwards, NodePorts, tests).
	HTTPAddress, HTTPSAddress string
	// Path requested; "/" when empty.
	Path    string
	Timeout time.Duration
}

// probeRoutes probes the first hostname of the routes (one request per scheme).
func probeRoutes(ctx context.Context, r *Report, s *State, routes []edgev1alpha1.TenantRoute, o ProbeOptions) {
	if !o.Enabled || len(routes) == 0 {
		return
	}
	tr := routes[0]
	host := ""
	for _, h := range tr.Spec.Hostnames {
		if !strings.HasPrefix(string(h), "*.") {
			host = string(h)
			break
		}
	}
	if host == "" {
		r.add(Step{Section: "probe", Title: "probe", Status: Unknown, Evidence: []string{"the route has no exact hostname to send"}})
		return
	}
	ep := s.EdgeProxies[tr.Spec.EdgeProxy]
	httpAddr, httpsAddr := o.HTTPAddress, o.HTTPSAddress
	if ep != nil && len(ep.Status.Addresses) > 0 {
		a := ep.Status.Addresses[0].Value
		httpPort, httpsPort := render.DefaultServiceHTTPPort, render.DefaultServiceHTTPSPort
		if sp := ep.Spec.Service; sp != nil {
			if sp.HTTPPort != nil {
				httpPort = *sp.HTTPPort
			}
			if sp.HTTPSPort != nil {
				httpsPort = *sp.HTTPSPort
			}
		}
		if httpAddr == "" {
			httpAddr = net.JoinHostPort(a, strconv.Itoa(int(httpPort)))
		}
		if httpsAddr == "" {
			httpsAddr = net.JoinHostPort(a, strconv.Itoa(int(httpsPort)))
		}
	}
	if httpAddr == "" {
		r.add(Step{Section: "probe", Title: "probe " + host, Status: Unknown,
			Evidence: []string{"the EdgeProxy has no address to probe; pass --probe-address (a port-forward, say)"}})
		return
	}
	r.add(Probe(ctx, "http", httpAddr, host, o))
	if len(admission.SecretRefs(&tr)) > 0 {
		r.add(Probe(ctx, "https", httpsAddr, host, o))
	}
}

// Probe sends one request to addr with Host (and SNI) host, and reports the status, the proxy's
// reason for an answer of its own, and the certificate presented.
func Probe(ctx context.Context, scheme, addr, host string, o ProbeOptions) Step {
	path := o.Path
	if path == "" {
		path = "/"
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	target := fmt.Sprintf("%s://%s%s", scheme, host, path)
	st := Step{Section: "probe", Title: fmt.Sprintf("GET %s via %s", target, addr)}
	var presented string
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{ServerName: host, InsecureSkipVerify: true, // verified below, to report rather than fail
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) > 0 {
					leaf := cs.PeerCertificates[0]
					presented = fmt.Sprintf("certificate presented: SANs %v, valid until %s", leaf.DNSNames, leaf.NotAfter.UTC().Format(time.DateOnly))
					if err := leaf.VerifyHostname(host); err != nil {
						presented += " — does NOT cover " + host
					}
				}
				return nil
			}},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		st.Status, st.Evidence = Failed, []string{err.Error()}
		return st
	}
	req.Header.Set("User-Agent", "portico-diagnose")
	resp, err := cl.Do(req)
	if presented != "" {
		st.Evidence = append(st.Evidence, presented)
	}
	if err != nil {
		st.Status = Failed
		st.Evidence = append(st.Evidence, err.Error())
		if scheme == "https" {
			st.Cause = "HTTP works, HTTPS fails: TLS listener missing, firewall/LB issue, or no valid certificate for this SNI"
			st.Fix = fmt.Sprintf("openssl s_client -connect %s -servername %s -showcerts", addr, host)
		} else {
			st.Cause = "the proxy address is unreachable: LB or firewall issue, or no ready proxy replica"
			st.Fix = "check the EdgeProxy's Service and external load balancer"
		}
		return st
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	st.Evidence = append(st.Evidence, "status "+resp.Status)
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		st.Evidence = append(st.Evidence, "X-Request-Id "+id+" (find it in the proxy's access log)")
	}
	reason := proxyReason(resp, string(body))
	if reason != "" {
		st.Evidence = append(st.Evidence, "the proxy answered itself: "+reason)
	}
	st.Status = OK
	if strings.Contains(presented, "does NOT cover") {
		st.Status = Failed
		st.Cause = "TLS certificate mismatch: the proxy presents a certificate for other hosts (wrong Secret, wrong host, stale certificate)"
	}
	if c, ok := reasonCauses[reason]; ok {
		st.Status, st.Cause, st.Fix = Failed, c[0], c[1]
	} else if resp.StatusCode >= 500 {
		st.Status, st.Cause = Failed, "the backend itself answered "+resp.Status+": read the app's logs"
	}
	return st
}

// proxyReason extracts the reason from a proxy-made answer: "503 Service Unavailable: no_endpoints".
func proxyReason(resp *http.Response, body string) string {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		return ""
	}
	prefix := strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode) + ": "
	line, _, _ := strings.Cut(body, "\n")
	if r, ok := strings.CutPrefix(line, prefix); ok {
		return r
	}
	return ""
}

// reasonCauses maps the proxy's reasons to the symptom table.
var reasonCauses = map[string][2]string{
	"no_route":                {"404 from controller: host/path does not match any rule", "portico explain URL shows the candidates and why each did not match"},
	"no_endpoints":            {"502/503: Service has no endpoints, Pod not ready, or wrong Service port", "see the backend steps above"},
	"upstream_connect_failed": {"502: no endpoint accepted a connection: wrong targetPort, the app not listening, or a NetworkPolicy", "curl the Service directly from a Pod; check targetPort and NetworkPolicies"},
	"upstream_error":          {"502: the backend broke the exchange after connecting", "read the app's logs"},
	"upstream_timeout":        {"504 timeout: backend slow, timeout too low, network policy, or app not responding", "app logs, a direct Service curl, and the route's timeouts (spec.rules[].timeouts, EdgeProxy spec.traffic)"},
	"misdirected":             {"421: the Host is not served under the TLS connection's SNI", "send the same Host and SNI"},
	"forbidden_source":        {"403: the client is outside the route's source ranges", "check policy.sourceRanges (whitelist-source-range)"},
	"body_too_large":          {"413: request body over the limit", "raise policy.maxRequestBodySize (proxy-body-size) up to the EdgeProxy's limit"},
	"not_ready":               {"503: the proxy has no routing table yet (no operator connection)", "check the operator and the proxy logs"},
	"no_backend":              {"500: the rule has neither backends nor a redirect", "add a backend"},
}
