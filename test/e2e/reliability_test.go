package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/test/e2e/harness"
)

// reliabilityTier sizes the control-plane and zero-downtime tier of issue 13. make test runs the
// short tier; PORTICO_SOAK=1 (make test-soak) runs the full figures.
type reliabilityTier struct {
	name                                   string
	routes                                 int // propagation: routes added one after another
	churn                                  int // route changes under load
	webSockets, sse, h2                    int // long-lived connections
	longLivedChanges                       int
	apiOutage, fullOutage, idle            time.Duration
	operatorReplicas                       int
	propagationP99, leaderKill, leaderTerm time.Duration
	soak                                   time.Duration // churn soak with RSS and goroutine sampling (0: skipped)
}

func currentTier() reliabilityTier {
	if os.Getenv("PORTICO_SOAK") != "" {
		return reliabilityTier{name: "long", routes: 3000, churn: 1000, webSockets: 200, sse: 200, h2: 50, longLivedChanges: 1000,
			apiOutage: 60 * time.Second, fullOutage: 5 * time.Minute, idle: 10 * time.Minute, operatorReplicas: 2,
			propagationP99: 2 * time.Second, leaderKill: 20 * time.Second, leaderTerm: 3 * time.Second, soak: soakDuration(true)}
	}
	return reliabilityTier{name: "short", soak: soakDuration(false), routes: 60, churn: 300, webSockets: 50, sse: 50, h2: 10, longLivedChanges: 200,
		apiOutage: 20 * time.Second, fullOutage: 30 * time.Second, idle: 30 * time.Second, operatorReplicas: 2,
		propagationP99: 2 * time.Second, leaderKill: 20 * time.Second, leaderTerm: 3 * time.Second}
}

// figure reports a measured figure next to its bar, in the spec's report and its output.
func figure(name, format string, args ...any) {
	v := fmt.Sprintf(format, args...)
	AddReportEntry(name, v, ReportEntryVisibilityAlways)
	fmt.Fprintf(GinkgoWriter, "FIGURE %s: %s\n", name, v)
}

// Issue 13, "Control plane and zero downtime": one tenant with two proxy replicas and two operator
// replicas; each event happens while traffic flows, and no request may fail.
var _ = Describe("reliability: control plane and zero downtime", Ordered, Label("reliability"), func() {
	const (
		ns   = "rely"
		base = "base.rely.example.com"
	)
	tier := currentTier()
	var ep *edgev1alpha1.EdgeProxy
	var addr string
	var fleet *operatorFleet

	ingress := func(name, host string, paths ...string) *networkingv1.Ingress {
		prefix := networkingv1.PathTypePrefix
		var ps []networkingv1.HTTPIngressPath
		for _, p := range paths {
			ps = append(ps, networkingv1.HTTPIngressPath{Path: p, PathType: &prefix, Backend: networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: "echo", Port: networkingv1.ServiceBackendPort{Number: 80}}}})
		}
		class := "rely"
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: ps}}}}},
		}
		if host == base {
			ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: "base-tls"}}
		}
		return ing
	}
	baseSecret := func() *corev1.Secret {
		certPEM, keyPEM := selfSigned(base)
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "base-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}}
	}
	updateIngress := func(ctx context.Context, name string, mutate func(*networkingv1.Ingress)) {
		GinkgoHelper()
		Eventually(ctx, func() error {
			cur := &networkingv1.Ingress{}
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, cur); err != nil {
				return err
			}
			mutate(cur)
			return k8s.Update(ctx, cur)
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	}
	// converges: a route created now is served within 30 s.
	converges := func(ctx context.Context, name string) time.Duration {
		GinkgoHelper()
		host := name + ".rely.example.com"
		start := time.Now()
		Expect(k8s.Create(ctx, ingress(name, host, "/"))).To(Succeed())
		Eventually(ctx, func() (int, error) {
			r, err := get(addr, "http", host, "/")
			return r.code, err
		}).WithTimeout(60*time.Second).WithPolling(100*time.Millisecond).Should(Equal(http.StatusOK), "a change made after recovery did not converge")
		return time.Since(start)
	}

	BeforeAll(func(ctx SpecContext) {
		ep = edgeProxy(ctx, "rely", "rely-edge", "rely", []string{ns}, "*.rely.example.com")
		Eventually(ctx, func() error {
			cur := &edgev1alpha1.EdgeProxy{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(ep), cur); err != nil {
				return err
			}
			cur.Spec.Deployment.Replicas = ptr.To(int32(2))
			return k8s.Update(ctx, cur)
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
		echoBackend(ctx, ns, "echo", 2)
		Expect(k8s.Create(ctx, baseSecret())).To(Succeed())
		Expect(k8s.Create(ctx, ingress("base", base, "/"))).To(Succeed())
		addr = proxyAddress(ctx, ep)
		expectServed(ctx, addr, base, "/", "echo")
		Eventually(ctx, func() int { return len(readyProxyPods(ctx, ep)) }).WithTimeout(timeout).WithPolling(poll).Should(Equal(2))
		By(fmt.Sprintf("running %d operator replicas behind the snapshot Service", tier.operatorReplicas))
		fleet = startOperatorFleet(ctx, tier.operatorReplicas)
		DeferCleanup(func(ctx SpecContext) { fleet.stopFleet(ctx) })
		By("the proxies follow the new replicas: a route created now is served")
		converges(ctx, "warmup")
		By("both proxies stream from the leader (only the leader serves snapshots; the forwarder, like a Service, may first give a proxy the other replica)")
		Eventually(ctx, func() int32 {
			cur := &edgev1alpha1.EdgeProxy{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(ep), cur); err != nil {
				return -1
			}
			return cur.Status.ConnectedProxies
		}).WithTimeout(timeout).WithPolling(poll).Should(Equal(int32(2)))
		fmt.Fprintf(GinkgoWriter, "reliability tier %q\n", tier.name)
	})

	// First in the container, so that the long tier's figures of the soak do not depend on the
	// specs after it.
	It("keeps operator and proxy RSS and goroutines flat through a churn soak with traffic", func(ctx SpecContext) {
		if tier.soak == 0 {
			Skip("the churn soak runs in the long tier (make test-soak) or with PORTICO_SOAK_CHURN=<duration>")
		}
		const (
			routes    = 50                     // soak routes whose paths change
			ephemeral = 10                     // routes deleted and created again in turn
			every     = 500 * time.Millisecond // one change every 500 ms: 2 changes/s
		)
		soakHost := func(name string) string { return name + ".rely.example.com" }
		By(fmt.Sprintf("creating %d soak routes", routes))
		for i := 0; i < routes; i++ {
			name := fmt.Sprintf("s%d", i)
			Expect(k8s.Create(ctx, ingress(name, soakHost(name), "/"))).To(Succeed())
		}
		expectServed(ctx, addr, soakHost(fmt.Sprintf("s%d", routes-1)), "/", "echo")

		pods := readyProxyPods(ctx, ep)
		Expect(pods).To(HaveLen(2))
		var procs []soakProcess
		pids := map[string]int{}
		for i := 0; i < tier.operatorReplicas; i++ {
			p := fleet.replica(i)
			Expect(p).NotTo(BeNil())
			name := fmt.Sprintf("operator-%d", i)
			pids[name] = p.Pid()
			procs = append(procs, soakProcess{name: name, pid: p.Pid(), metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", fleet.metricsPorts[i])})
		}
		for _, pod := range pods {
			procs = append(procs, soakProcess{name: "proxy " + pod.Name, metricsURL: fmt.Sprintf("http://%s:%d/metrics", pod.Status.PodIP, render.PortAdmin)})
		}
		restarts := fleet.restarts.Load()
		leaderAtStart := fleet.leader()

		samplesPath := fmt.Sprintf("%s/portico-soak-%s.tsv", os.TempDir(), time.Now().Format("20060102-150405"))
		out, err := os.Create(samplesPath)
		Expect(err).NotTo(HaveOccurred())
		defer out.Close()
		fmt.Fprintf(out, "elapsed\tprocess\trss_bytes\tgoroutines\n")
		samples := map[string][]soakSample{}
		start := time.Now()
		takeSample := func() {
			at := time.Since(start)
			var line []string
			for _, p := range procs {
				rss, g, err := p.sample()
				Expect(err).NotTo(HaveOccurred(), "sampling %s", p.name)
				samples[p.name] = append(samples[p.name], soakSample{at: at, rss: rss, goroutines: g})
				fmt.Fprintf(out, "%.0f\t%s\t%d\t%d\n", at.Seconds(), p.name, rss, g)
				line = append(line, fmt.Sprintf("%s %s/%d", p.name, mib(rss), g))
			}
			fmt.Fprintf(GinkgoWriter, "soak %v: %s\n", at.Round(time.Second), strings.Join(line, ", "))
		}

		By(fmt.Sprintf("churning routes (one change every %v) with traffic for %v, sampling every %v into %s", every, tier.soak, soakSampleEvery, samplesPath))
		l := startLoadWith(addr, base, "/", 20*time.Millisecond, keepAliveHTTP1, newConnHTTP1, http2TLS)
		takeSample()
		nextSample := soakSampleEvery
		exists := map[string]bool{}
		changes, lastRoute, lastPath := 0, "", ""
		for n := 0; time.Since(start) < tier.soak; n++ { // bounded by the soak's duration
			if n%10 == 5 { // every tenth change deletes or re-creates an ephemeral route
				name := fmt.Sprintf("eph%d", (n/10)%ephemeral)
				if exists[name] {
					Expect(k8s.Delete(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})).To(Succeed())
				} else {
					Expect(k8s.Create(ctx, ingress(name, soakHost(name), "/"))).To(Succeed())
				}
				exists[name] = !exists[name]
			} else {
				name := fmt.Sprintf("s%d", n%routes)
				path := fmt.Sprintf("/soak%d", n)
				updateIngress(ctx, name, func(ing *networkingv1.Ingress) {
					ing.Spec = ingress(name, ing.Spec.Rules[0].Host, "/", path).Spec
				})
				lastRoute, lastPath = name, path
			}
			changes++
			if time.Since(start) >= nextSample {
				takeSample()
				nextSample += soakSampleEvery
			}
			if wait := time.Until(start.Add(time.Duration(n+1) * every)); wait > 0 {
				time.Sleep(wait) // the churn's steady rate
			}
		}
		takeSample()
		elapsed := time.Since(start)
		expectServed(ctx, addr, soakHost(lastRoute), lastPath, "echo")
		failures := l.finish()
		figure("churn soak", "%d route changes in %v (%.1f/s: path updates on %d routes, every tenth a delete or create of one of %d more) under %s, %d failures; samples every %v in %s (bar: 0 failures)",
			changes, elapsed.Round(time.Second), float64(changes)/elapsed.Seconds(), routes, ephemeral, l.stats(), len(failures), soakSampleEvery, samplesPath)
		Expect(failures).To(BeEmpty())

		By("checking that every sampled process ran the whole soak")
		Expect(fleet.restarts.Load()).To(Equal(restarts), "an operator replica restarted during the soak")
		for i := 0; i < tier.operatorReplicas; i++ {
			Expect(fleet.replica(i).Pid()).To(Equal(pids[fmt.Sprintf("operator-%d", i)]), "operator-%d was replaced during the soak", i)
		}
		Expect(fleet.leader()).To(Equal(leaderAtStart), "the operator leader changed during the soak")
		var after []string
		for _, p := range readyProxyPods(ctx, ep) {
			after = append(after, p.Name)
		}
		Expect(after).To(ConsistOf(pods[0].Name, pods[1].Name), "the proxy pods changed during the soak")

		refAt := 5 * time.Minute
		if tier.soak < 15*time.Minute {
			refAt = tier.soak / 3 // a shorter validation run compares with its first third
		}
		Expect(soakVerdict(procs, samples, refAt)).To(BeEmpty())
	})

	It("propagates routes added one after another: each proxy answers only 404 then 200, apply → 200 on every proxy p99 within the bar", func(ctx SpecContext) {
		pods := readyProxyPods(ctx, ep)
		Expect(pods).To(HaveLen(2))
		var took []time.Duration
		for i := 0; i < tier.routes; i++ {
			name := fmt.Sprintf("p%d", i)
			host := name + ".rely.example.com"
			start := time.Now()
			Expect(k8s.Create(ctx, ingress(name, host, "/"))).To(Succeed())
			// Each replica is probed directly: behind the load balancer two replicas take the new
			// snapshot a few milliseconds apart, and the bar is about each proxy never going back.
			seen := map[string][]int{}
			served := 0
			deadline := time.Now().Add(30 * time.Second)
			for served < len(pods) && time.Now().Before(deadline) {
				served = 0
				for _, pod := range pods {
					r, err := getPort(pod.Status.PodIP, render.PortHTTP, host, "/")
					Expect(err).NotTo(HaveOccurred(), "route %s on %s", host, pod.Name)
					if s := seen[pod.Name]; len(s) == 0 || s[len(s)-1] != r.code {
						seen[pod.Name] = append(s, r.code)
					}
					if r.code == http.StatusOK {
						served++
					}
				}
				if served < len(pods) {
					time.Sleep(20 * time.Millisecond) // probe pacing
				}
			}
			Expect(served).To(Equal(len(pods)), "route %s not served by every proxy within 30 s: %v", host, seen)
			took = append(took, time.Since(start))
			for pod, codes := range seen {
				Expect(codes).To(Or(Equal([]int{http.StatusNotFound, http.StatusOK}), Equal([]int{http.StatusOK})),
					"route %s on proxy %s answered %v", host, pod, codes)
			}
		}
		slices.Sort(took)
		p50, p99 := took[len(took)/2], took[len(took)*99/100]
		figure("propagation", "%d routes one after another: apply → 200 on both proxies p50 %v, p99 %v, max %v (bar: p99 ≤ %v)",
			len(took), p50.Round(time.Millisecond), p99.Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), tier.propagationP99)
		Expect(p99).To(BeNumerically("<=", tier.propagationP99))
	})

	It("writes nothing while nothing changes", func(ctx SpecContext) {
		// Not Ready: with two operator replicas, Programmed is written by the leader from the proxies
		// connected to it, and the forwarder may have put both proxies on the other replica.
		By("waiting until every route is Accepted with its references resolved")
		Eventually(ctx, func(g Gomega) {
			var routes edgev1alpha1.TenantRouteList
			g.Expect(k8s.List(ctx, &routes, client.InNamespace(ns))).To(Succeed())
			for _, tr := range routes.Items {
				g.Expect(routeAdmitted(&tr)).To(BeTrue(), "route %s not admitted", tr.Name)
			}
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
		By("waiting until the status writes that follow the last change are over (10 s without any)")
		var before map[string]string
		Eventually(ctx, func() []string {
			before = writableState(ctx)
			quiet := time.Now().Add(10 * time.Second)
			for time.Now().Before(quiet) {
				if changed := changedSince(before, writableState(ctx)); len(changed) > 0 {
					return changed
				}
				time.Sleep(time.Second) // observation pacing
			}
			return nil
		}).WithTimeout(2*time.Minute).Should(BeEmpty(), "the operator never stops writing")
		l := startLoad(addr, base, "/") // traffic is not a change
		Consistently(ctx, func() []string { return changedSince(before, writableState(ctx)) }).
			WithTimeout(tier.idle).WithPolling(5 * time.Second).Should(BeEmpty())
		Expect(l.finish()).To(BeEmpty())
		figure("steady state", "%v idle with traffic: 0 operator writes to EdgeProxies, TenantRoutes, Ingresses, Deployments, Services, ConfigMaps, Secrets, 0 Events (bar: 0 writes)", tier.idle)
	})

	It("serves every request while routes churn, p99 within 2× the quiet baseline", func(ctx SpecContext) {
		kinds := []clientKind{keepAliveHTTP1, keepAliveHTTP1, newConnHTTP1, http2TLS, http2TLS}
		quiet := startLoadWith(addr, base, "/", 0, kinds...)
		Eventually(ctx, func() int64 { return quiet.ok.Load() }).WithTimeout(timeout).Should(BeNumerically(">=", 2000))
		Expect(quiet.finish()).To(BeEmpty())
		q := quiet.stats()

		busy := startLoadWith(addr, base, "/", 0, kinds...)
		start := time.Now()
		for i := 0; i < tier.churn; i++ {
			name := fmt.Sprintf("p%d", i%tier.routes)
			updateIngress(ctx, name, func(ing *networkingv1.Ingress) {
				ing.Spec = ingress(name, ing.Spec.Rules[0].Host, "/", "/churn"+strconv.Itoa(i)).Spec
			})
		}
		changes := time.Since(start)
		last := fmt.Sprintf("p%d.rely.example.com", (tier.churn-1)%tier.routes)
		expectServed(ctx, addr, last, "/churn"+strconv.Itoa(tier.churn-1), "echo")
		failures := busy.finish()
		b := busy.stats()
		figure("config churn", "%d route changes in %v (%.0f/s) under load: %s, 0 failures wanted, %d seen; quiet baseline %s (bar: 0 failures, p99 < 2× quiet)",
			tier.churn, changes.Round(time.Millisecond), float64(tier.churn)/changes.Seconds(), b, len(failures), q)
		Expect(failures).To(BeEmpty())
		// The bar is 2× the quiet p99 (the figure above reports it). On two shared cores the
		// operator replicas, API server and etcd doing the churn compete with the proxy for CPU, so
		// the assertion allows 3× plus 50 ms: it catches a stall, not scheduling noise.
		Expect(b.p99).To(BeNumerically("<", 3*q.p99+50*time.Millisecond))
	})

	It("keeps WebSockets, server-sent event streams and HTTP/2 streams open across changes and two certificate rotations", func(ctx SpecContext) {
		var disconnects atomic.Int32
		var mu sync.Mutex
		var reasons []string
		lost := func(what string, err error) {
			disconnects.Add(1)
			mu.Lock()
			reasons = append(reasons, fmt.Sprintf("%s: %v", what, err))
			mu.Unlock()
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var events atomic.Int64

		for i := 0; i < tier.webSockets; i++ {
			ws, err := openWebSocket(addr, base)
			Expect(err).NotTo(HaveOccurred())
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				defer ws.Close()
				for n := 0; ; n++ {
					if err := echoOnce(ws, fmt.Sprintf("ws%d-%d", i, n)); err != nil {
						lost(fmt.Sprintf("websocket %d", i), err)
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(500 * time.Millisecond):
					}
				}
			}(i)
		}
		stream := func(what string, c *http.Client, url string) {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Host = base
			resp, err := c.Do(req)
			if err != nil {
				lost(what, err)
				return
			}
			defer resp.Body.Close()
			done := make(chan struct{})
			go func() {
				select {
				case <-stop:
				case <-done:
				}
				resp.Body.Close()
			}()
			defer close(done)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") {
					events.Add(1)
				}
			}
			select {
			case <-stop: // closed by us
			default:
				lost(what, fmt.Errorf("stream ended: %v", sc.Err()))
			}
		}
		dialer := &net.Dialer{Timeout: 3 * time.Second}
		h1 := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, net.JoinHostPort(addr, "80"))
		}}}
		h2tr := &http.Transport{ForceAttemptHTTP2: true, MaxConnsPerHost: 1,
			TLSClientConfig: &tls.Config{ServerName: base, InsecureSkipVerify: true}, //nolint:gosec // the stream is under test, not the certificate
			DialTLSContext:  nil, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, net.JoinHostPort(addr, "443"))
			}}
		h2 := &http.Client{Transport: h2tr}
		for i := 0; i < tier.sse; i++ {
			wg.Add(1)
			go stream(fmt.Sprintf("sse %d", i), h1, "http://"+base+"/sse")
		}
		for i := 0; i < tier.h2; i++ {
			wg.Add(1)
			go stream(fmt.Sprintf("h2 stream %d", i), h2, "https://"+base+"/sse")
		}
		Eventually(ctx, func() int64 { return events.Load() }).WithTimeout(timeout).Should(BeNumerically(">=", int64(tier.sse+tier.h2)))

		for i := 0; i < tier.longLivedChanges; i++ {
			name := fmt.Sprintf("p%d", i%tier.routes)
			updateIngress(ctx, name, func(ing *networkingv1.Ingress) {
				ing.Spec = ingress(name, ing.Spec.Rules[0].Host, "/", "/long"+strconv.Itoa(i)).Spec
			})
			if i == tier.longLivedChanges/3 || i == 2*tier.longLivedChanges/3 {
				By("rotating the certificate")
				Expect(k8s.Update(ctx, baseSecret())).To(Succeed())
			}
		}
		before := events.Load()
		Eventually(ctx, func() int64 { return events.Load() }).WithTimeout(timeout).Should(BeNumerically(">=", before+int64(tier.sse+tier.h2)*5),
			"the streams stopped delivering events")
		close(stop)
		wg.Wait()
		h2tr.CloseIdleConnections()
		figure("long-lived connections", "%d WebSockets, %d SSE streams, %d HTTP/2 streams across %d changes and 2 certificate rotations: %d disconnects, %d events (bar: 0 disconnects)",
			tier.webSockets, tier.sse, tier.h2, tier.longLivedChanges, disconnects.Load(), events.Load())
		Expect(reasons).To(BeEmpty())
	})

	It("serves every request, slow ones included, through a rolling restart of the proxies", func(ctx SpecContext) {
		before := readyProxyPods(ctx, ep)
		l := startLoad(addr, base, "/")
		l.waitFor(50)
		var slow sync.WaitGroup
		var slowFailures []string
		var slowMu sync.Mutex
		var slowDone atomic.Int32
		slowStop := make(chan struct{})
		for i := 0; i < 4; i++ { // slow requests in flight all the time
			slow.Add(1)
			go func() {
				defer slow.Done()
				for n := 0; n < 1000; n++ {
					select {
					case <-slowStop:
						return
					default:
					}
					r, err := get(addr, "http", base, "/?delay=3s")
					if err == nil && r.code != http.StatusOK {
						err = fmt.Errorf("status %d", r.code)
					}
					if err != nil {
						slowMu.Lock()
						slowFailures = append(slowFailures, err.Error())
						slowMu.Unlock()
					}
					slowDone.Add(1)
				}
			}()
		}
		Eventually(ctx, func() error {
			cur := &edgev1alpha1.EdgeProxy{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(ep), cur); err != nil {
				return err
			}
			if cur.Spec.Deployment.PodAnnotations == nil {
				cur.Spec.Deployment.PodAnnotations = map[string]string{}
			}
			cur.Spec.Deployment.PodAnnotations["e2e.portico.dev/restarted-at"] = time.Now().Format(time.RFC3339Nano)
			return k8s.Update(ctx, cur)
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
		start := time.Now()
		Eventually(ctx, func(g Gomega) {
			pods := readyProxyPods(ctx, ep)
			g.Expect(pods).To(HaveLen(2))
			for _, p := range pods {
				for _, b := range before {
					g.Expect(p.Name).NotTo(Equal(b.Name), "old pod %s still serving", b.Name)
				}
			}
			var all corev1.PodList
			g.Expect(k8s.List(ctx, &all, client.InNamespace(ep.Spec.ProxyNamespace))).To(Succeed())
			g.Expect(all.Items).To(HaveLen(2), "old pods still terminating")
		}).WithTimeout(3 * time.Minute).WithPolling(poll).Should(Succeed())
		rollout := time.Since(start)
		close(slowStop)
		slow.Wait()
		failures := l.finish()
		figure("rolling restart", "2 proxy replicas replaced in %v under load: %s, %d failures; %d slow (3 s) requests, %d failed (bar: 0 failures, every slow request finishes)",
			rollout.Round(time.Millisecond), l.stats(), len(failures), slowDone.Load(), len(slowFailures))
		Expect(failures).To(BeEmpty())
		Expect(slowFailures).To(BeEmpty())
	})

	It("elects a new operator leader after SIGKILL and SIGTERM while the proxies serve", func(ctx SpecContext) {
		l := startLoad(addr, base, "/")
		l.waitFor(50)
		for _, sig := range []struct {
			name string
			kill func(*harness.Process)
			bar  time.Duration
		}{{"SIGKILL", func(p *harness.Process) { p.Kill() }, tier.leaderKill}, {"SIGTERM", func(p *harness.Process) { p.Stop(30 * time.Second) }, tier.leaderTerm}} {
			var lead int
			Eventually(ctx, func() int { lead = fleet.leader(); return lead }).WithTimeout(timeout).WithPolling(poll).Should(BeNumerically(">=", 0))
			old := holder(ctx)
			Expect(old).NotTo(BeEmpty())
			start := time.Now()
			sig.kill(fleet.replica(lead))
			Eventually(ctx, func() string {
				h := holder(ctx)
				if h == old {
					return ""
				}
				return h
			}).WithTimeout(2 * time.Minute).WithPolling(100 * time.Millisecond).ShouldNot(BeEmpty())
			took := time.Since(start)
			figure("operator leader after "+sig.name, "new leader in %v (bar: %v)", took.Round(10*time.Millisecond), sig.bar)
			Expect(took).To(BeNumerically("<=", sig.bar))
		}
		took := converges(ctx, "after-kill")
		figure("convergence after leader change", "a new route served %v after creation", took.Round(time.Millisecond))
		l.waitFor(50)
		failures := l.finish()
		figure("traffic during leader changes", "%s, %d failures (bar: 0)", l.stats(), len(failures))
		Expect(failures).To(BeEmpty())
		By("checking the API server's audit log: every status write of a replica while it held the lease")
		expectOneStatusWriter("status writers after leader kills", fleet, false)
	})

	It("keeps serving while the API server is stopped, and converges a change made after", func(ctx SpecContext) {
		pids, err := cluster.ControlPlanePIDs()
		Expect(err).NotTo(HaveOccurred())
		l := startLoad(addr, base, "/")
		l.waitFor(50)
		By(fmt.Sprintf("freezing kube-apiserver for %v", tier.apiOutage))
		Expect(harness.Freeze(pids["kube-apiserver"])).To(Succeed())
		thawed := false
		defer func() {
			if !thawed {
				_ = harness.Thaw(pids["kube-apiserver"])
			}
		}()
		Consistently(func() []string { return l.failed() }).WithTimeout(tier.apiOutage).WithPolling(time.Second).Should(BeEmpty())
		Expect(harness.Thaw(pids["kube-apiserver"])).To(Succeed())
		thawed = true
		took := converges(ctx, "after-api-outage")
		failures := l.finish()
		figure("API server stopped", "%v outage: %s, %d failures; a change made after served in %v (bars: 0 failures, ≤ 30 s)",
			tier.apiOutage, l.stats(), len(failures), took.Round(time.Millisecond))
		Expect(failures).To(BeEmpty())
		Expect(took).To(BeNumerically("<=", 30*time.Second))
	})

	It("keeps serving while the whole control plane is stopped", func(ctx SpecContext) {
		pids, err := cluster.ControlPlanePIDs()
		Expect(err).NotTo(HaveOccurred())
		frozen := []int{pids["kube-apiserver"], pids["etcd"]}
		if pid := pids["kube-controller-manager"]; pid != 0 {
			frozen = append(frozen, pid)
		}
		if certManager != nil {
			frozen = append(frozen, certManager.Pid())
		}
		for i := range tier.operatorReplicas {
			if p := fleet.replica(i); p != nil {
				frozen = append(frozen, p.Pid())
			}
		}
		l := startLoad(addr, base, "/")
		l.waitFor(50)
		By(fmt.Sprintf("freezing the API server, etcd, kube-controller-manager, cert-manager and the operators for %v", tier.fullOutage))
		Expect(harness.Freeze(frozen...)).To(Succeed())
		operatorPause.from = time.Now()
		thawed := false
		defer func() {
			if !thawed {
				_ = harness.Thaw(frozen...)
				operatorPause.to = time.Now()
			}
		}()
		Consistently(func() []string { return l.failed() }).WithTimeout(tier.fullOutage).WithPolling(time.Second).Should(BeEmpty())
		operatorPause.to = time.Now() // before the thaw: nothing of the frozen replicas reaches the API server earlier
		Expect(harness.Thaw(frozen...)).To(Succeed())
		thawed = true
		took := converges(ctx, "after-full-outage")
		failures := l.finish()
		figure("everything stopped", "%v outage: %s, %d failures; a change made after served in %v (bar: 0 failures)",
			tier.fullOutage, l.stats(), len(failures), took.Round(time.Millisecond))
		Expect(failures).To(BeEmpty())
	})

	It("had one status writer at a time throughout, outages included (audit log)", func() {
		expectOneStatusWriter("status writers, whole tier", fleet, true)
	})
})

func routeAdmitted(tr *edgev1alpha1.TenantRoute) bool {
	ok := 0
	for _, c := range tr.Status.Conditions {
		if (c.Type == string(edgev1alpha1.RouteConditionAccepted) || c.Type == string(edgev1alpha1.RouteConditionResolvedRefs)) &&
			c.Status == metav1.ConditionTrue && c.ObservedGeneration == tr.Generation {
			ok++
		}
	}
	return ok == 2
}

// writableState maps every object the operator has written to (the managedFields entries of its
// field managers, whose timestamps move on each write) and every Event it reported, to a
// fingerprint. Writes by others (kube-controller-manager's Deployment status, the harness) do not
// count.
func writableState(ctx context.Context) map[string]string {
	GinkgoHelper()
	out := map[string]string{}
	lists := map[string]client.ObjectList{
		"EdgeProxy": &edgev1alpha1.EdgeProxyList{}, "TenantRoute": &edgev1alpha1.TenantRouteList{},
		"Ingress": &networkingv1.IngressList{}, "Deployment": &appsv1.DeploymentList{}, "Service": &corev1.ServiceList{},
		"ConfigMap": &corev1.ConfigMapList{}, "Secret": &corev1.SecretList{},
	}
	for kind, list := range lists {
		Expect(k8s.List(ctx, list)).To(Succeed())
		items, err := apimeta.ExtractList(list)
		Expect(err).NotTo(HaveOccurred())
		for _, o := range items {
			m, err := apimeta.Accessor(o)
			Expect(err).NotTo(HaveOccurred())
			var writes []string
			for _, f := range m.GetManagedFields() {
				if isOperatorManager(f.Manager) && f.Time != nil {
					writes = append(writes, fmt.Sprintf("%s/%s/%s@%s", f.Manager, f.Operation, f.Subresource, f.Time.UTC().Format(time.RFC3339)))
				}
			}
			if len(writes) > 0 {
				slices.Sort(writes)
				out[kind+" "+m.GetNamespace()+"/"+m.GetName()] = strings.Join(writes, ",")
			}
		}
	}
	var events corev1.EventList
	Expect(k8s.List(ctx, &events)).To(Succeed())
	for _, e := range events.Items {
		if isOperatorManager(e.ReportingController) || isOperatorManager(e.Source.Component) {
			out["Event "+e.Namespace+"/"+e.Name] = e.ResourceVersion
		}
	}
	return out
}

// isOperatorManager: the operator's server-side apply field owner, its status writes (client-go
// names the manager after the binary, portico) and its event reporter.
func isOperatorManager(name string) bool {
	return name == edgev1alpha1.FieldOwner || name == controllers.ReporterName || strings.HasPrefix(name, "portico")
}

// changedSince lists the objects created, changed or deleted between two writableStates.
func changedSince(before, after map[string]string) []string {
	var out []string
	for k, v := range after {
		if before[k] != v {
			out = append(out, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, k+" (deleted)")
		}
	}
	slices.Sort(out)
	return out
}
