package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// podRuntime is one running pod.
type podRuntime struct {
	k             *kubelet
	key           types.NamespacedName
	uid           types.UID
	dir           string
	net           *podNet
	startTime     metav1.Time
	restartPolicy corev1.RestartPolicy
	stop          chan struct{}
	stopOnce      sync.Once

	statusMu   sync.Mutex // serialises status writes
	mu         sync.Mutex
	containers []*containerRuntime
	ending     bool
}

type containerRuntime struct {
	spec   corev1.Container
	image  Image
	argv   []string // without the netns/mount wrapper
	env    []string
	mounts map[string]string // container path → host path

	proc      *Process
	ready     bool
	restarts  int32
	startedAt metav1.Time
	lastExit  *corev1.ContainerStateTerminated
}

func (rt *podRuntime) lock() func() { rt.mu.Lock(); return rt.mu.Unlock }

func (cr *containerRuntime) process() *Process { return cr.proc }

// prepare resolves volumes (service account tokens from the TokenRequest API, Secrets,
// ConfigMaps, emptyDirs), environment and command lines of every container.
func (rt *podRuntime) prepare(ctx context.Context, pod *corev1.Pod, images []Image) error {
	volumes := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(rt.dir, "volumes", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := rt.fillVolume(ctx, pod, v, dir); err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
		volumes[v.Name] = dir
	}
	podIP := rt.net.ip.String()
	for i := range pod.Spec.Containers {
		spec := pod.Spec.Containers[i]
		cr := &containerRuntime{spec: spec, image: images[i], mounts: map[string]string{}}
		for _, m := range spec.VolumeMounts {
			if src, ok := volumes[m.Name]; ok {
				cr.mounts[m.MountPath] = src
			}
		}
		if cr.image.Prepare != nil {
			extra, err := cr.image.Prepare(ctx, rt.k.c, pod, &spec)
			if err != nil {
				return fmt.Errorf("container %q: %w", spec.Name, err)
			}
			for dst, src := range extra {
				cr.mounts[dst] = src
			}
		}
		env, err := containerEnv(ctx, rt.k.c.Client, pod, &spec, podIP, rt.k.c.Gateway.String())
		if err != nil {
			return fmt.Errorf("container %q env: %w", spec.Name, err)
		}
		cr.env = append(append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + pod.Name}, cr.image.Env...), env...)
		if cr.argv, err = commandLine(cr.image, &spec, env); err != nil {
			return fmt.Errorf("container %q: %w", spec.Name, err)
		}
		rt.containers = append(rt.containers, cr)
	}
	return nil
}

func (rt *podRuntime) fillVolume(ctx context.Context, pod *corev1.Pod, v corev1.Volume, dir string) error {
	c := rt.k.c.Client
	switch {
	case v.EmptyDir != nil:
		return nil
	case v.Secret != nil:
		return writeSecret(ctx, c, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, dir)
	case v.ConfigMap != nil:
		return writeConfigMap(ctx, c, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, dir)
	}
	for _, s := range v.Projected.Sources {
		var err error
		switch {
		case s.ServiceAccountToken != nil:
			err = rt.projectToken(ctx, pod, *s.ServiceAccountToken, dir)
		case s.Secret != nil:
			err = writeSecret(ctx, c, pod.Namespace, s.Secret.Name, s.Secret.Items, s.Secret.Optional, dir)
		case s.ConfigMap != nil:
			err = writeConfigMap(ctx, c, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, dir)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// projectToken writes a pod-bound ServiceAccount token from the TokenRequest API, as the kubelet
// does, and refreshes it at 80% of its lifetime while the pod runs.
func (rt *podRuntime) projectToken(ctx context.Context, pod *corev1.Pod, p corev1.ServiceAccountTokenProjection, dir string) error {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	exp := int64(3600)
	if p.ExpirationSeconds != nil {
		exp = *p.ExpirationSeconds
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if p.Audience != "" {
		req.Spec.Audiences = []string{p.Audience}
	}
	write := func(ctx context.Context) error {
		tr, err := rt.k.c.Clientset.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req.DeepCopy(), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("TokenRequest for ServiceAccount %s/%s: %w", pod.Namespace, sa, err)
		}
		return atomicWrite(filepath.Join(dir, p.Path), []byte(tr.Status.Token))
	}
	if err := write(ctx); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(time.Duration(exp) * time.Second * 8 / 10)
		defer t.Stop()
		for {
			select {
			case <-rt.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := write(ctx); err != nil {
					rt.k.c.logf("pod %s: token refresh: %v", rt.key, err)
				}
				cancel()
			}
		}
	}()
	return nil
}

func writeSecret(ctx context.Context, c client.Client, ns, name string, items []corev1.KeyToPath, optional *bool, dir string) error {
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		if optional != nil && *optional {
			return client.IgnoreNotFound(err)
		}
		return err
	}
	return writeKeys(s.Data, items, dir)
}

func writeConfigMap(ctx context.Context, c client.Client, ns, name string, items []corev1.KeyToPath, optional *bool, dir string) error {
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, cm); err != nil {
		if optional != nil && *optional {
			return client.IgnoreNotFound(err)
		}
		return err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return writeKeys(data, items, dir)
}

func writeKeys(data map[string][]byte, items []corev1.KeyToPath, dir string) error {
	if len(items) == 0 {
		for k, v := range data {
			if err := atomicWrite(filepath.Join(dir, k), v); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		if err := atomicWrite(filepath.Join(dir, it.Path), data[it.Key]); err != nil {
			return err
		}
	}
	return nil
}

func atomicWrite(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// run starts (or restarts) one container: `ip netns exec NS sh -c '<bind mounts>; exec "$@"'`.
// ip netns exec gives the process a private mount namespace, so the bind mounts (volumes at their
// mountPath) are seen by that process only; missing mount points are created on the host.
func (rt *podRuntime) run(cr *containerRuntime) error {
	var script strings.Builder
	script.WriteString("set -e\n")
	for dst, src := range cr.mounts {
		fmt.Fprintf(&script, "mkdir -p %s\nmount --bind %s %s\n", shellQuote(dst), shellQuote(src), shellQuote(dst))
	}
	if cr.spec.WorkingDir != "" {
		fmt.Fprintf(&script, "cd %s\n", shellQuote(cr.spec.WorkingDir))
	}
	script.WriteString(`exec "$@"`)
	argv := append([]string{"ip", "netns", "exec", rt.net.netns, "sh", "-c", script.String(), cr.spec.Name}, cr.argv...)
	p, err := startProcess(rt.key.String()+"/"+cr.spec.Name, filepath.Join(rt.dir, cr.spec.Name+".log"), argv, cr.env, "")
	if err != nil {
		return err
	}
	defer rt.lock()()
	cr.proc, cr.ready, cr.startedAt = p, false, metav1.Now()
	go rt.watch(cr, p)
	go rt.probe(cr, p)
	return nil
}

// watch records a container's exit and restarts it as the pod's restartPolicy says.
func (rt *podRuntime) watch(cr *containerRuntime, p *Process) {
	code := p.ExitCode()
	unlock := rt.lock()
	if rt.ending {
		unlock()
		return
	}
	cr.ready = false
	cr.lastExit = &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: "Error", StartedAt: cr.startedAt, FinishedAt: metav1.Now()}
	if code == 0 {
		cr.lastExit.Reason = "Completed"
	}
	restart := rt.restartPolicy == corev1.RestartPolicyAlways || rt.restartPolicy == "" || (rt.restartPolicy == corev1.RestartPolicyOnFailure && code != 0)
	backoff := min(time.Duration(1<<min(cr.restarts, 5))*time.Second, 10*time.Second)
	unlock()
	rt.k.c.logf("pod %s: container %s exited with %d; last lines:\n%s", rt.key, cr.spec.Name, code, p.Tail(10))
	rt.writeStatus()
	if !restart {
		return
	}
	select {
	case <-rt.stop:
		return
	case <-time.After(backoff):
	}
	unlock = rt.lock()
	cr.restarts++
	unlock()
	if err := rt.run(cr); err != nil {
		rt.k.c.logf("pod %s: restart %s: %v", rt.key, cr.spec.Name, err)
	}
	rt.writeStatus()
}

// probe runs the container's readiness probe (periods capped at Options.MaxProbePeriod) and
// writes status when readiness changes. Without a probe a running container is ready.
func (rt *podRuntime) probe(cr *containerRuntime, p *Process) {
	pr := cr.spec.ReadinessProbe
	if pr == nil {
		rt.setReady(cr, p, true)
		return
	}
	period := min(time.Duration(max(pr.PeriodSeconds, 1))*time.Second, rt.k.c.Opts.MaxProbePeriod)
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	success, failure := max(pr.SuccessThreshold, 1), max(pr.FailureThreshold, 1)
	delay := time.Duration(pr.InitialDelaySeconds) * time.Second
	var ok, bad int32
	for {
		select {
		case <-rt.stop:
			return
		case <-p.Done():
			return
		case <-time.After(delay):
		}
		delay = period
		if err := rt.check(cr, pr, timeout); err == nil {
			ok, bad = ok+1, 0
			if ok >= success {
				rt.setReady(cr, p, true)
			}
		} else {
			ok, bad = 0, bad+1
			if bad >= failure {
				rt.setReady(cr, p, false)
			}
		}
	}
}

func (rt *podRuntime) setReady(cr *containerRuntime, p *Process, ready bool) {
	unlock := rt.lock()
	changed := cr.proc == p && cr.ready != ready && !rt.ending
	if changed {
		cr.ready = ready
	}
	unlock()
	if changed {
		rt.writeStatus()
	}
}

func (rt *podRuntime) check(cr *containerRuntime, pr *corev1.Probe, timeout time.Duration) error {
	port := func(p intstr.IntOrString) string {
		if p.Type == intstr.String {
			for _, cp := range cr.spec.Ports {
				if cp.Name == p.StrVal {
					return strconv.Itoa(int(cp.ContainerPort))
				}
			}
		}
		return p.String()
	}
	switch {
	case pr.HTTPGet != nil:
		h := pr.HTTPGet
		host := rt.net.ip.String()
		if h.Host != "" {
			host = h.Host
		}
		scheme := "http"
		if h.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		req, err := http.NewRequest(http.MethodGet, scheme+"://"+net.JoinHostPort(host, port(h.Port))+h.Path, nil)
		if err != nil {
			return err
		}
		for _, hd := range h.HTTPHeaders {
			req.Header.Set(hd.Name, hd.Value)
		}
		resp, err := probeClient(timeout).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil:
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(rt.net.ip.String(), port(pr.TCPSocket.Port)), timeout)
		if err == nil {
			conn.Close()
		}
		return err
	}
	return nil // exec and gRPC probes: treated as passing
}

// writeStatus reports the pod's current state to the API server.
func (rt *podRuntime) writeStatus() {
	rt.statusMu.Lock()
	defer rt.statusMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		pod := &corev1.Pod{}
		if err := rt.k.c.Client.Get(ctx, rt.key, pod); err != nil {
			return client.IgnoreNotFound(err)
		}
		if pod.UID != rt.uid {
			return nil
		}
		rt.fillStatus(pod)
		return rt.k.c.Client.Status().Update(ctx, pod)
	})
	if err != nil {
		rt.k.c.logf("pod %s: status: %v", rt.key, err)
	}
}

func (rt *podRuntime) fillStatus(pod *corev1.Pod) {
	defer rt.lock()()
	st := &pod.Status
	allReady := true
	st.ContainerStatuses = nil
	for _, cr := range rt.containers {
		cs := corev1.ContainerStatus{Name: cr.spec.Name, Image: cr.spec.Image, ImageID: "harness://" + cr.spec.Image,
			Ready: cr.ready, RestartCount: cr.restarts, Started: ptrBool(cr.proc != nil)}
		if cr.lastExit != nil {
			cs.LastTerminationState.Terminated = cr.lastExit
		}
		running := cr.proc != nil && !isDone(cr.proc)
		if running {
			cs.ContainerID = fmt.Sprintf("harness://%d", cr.proc.Pid())
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: cr.startedAt}
		} else {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "see the harness log of this container"}
		}
		allReady = allReady && cr.ready && running
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	st.Phase = corev1.PodRunning
	st.HostIP, st.PodIP = rt.k.c.Gateway.String(), rt.net.ip.String()
	st.HostIPs, st.PodIPs = []corev1.HostIP{{IP: st.HostIP}}, []corev1.PodIP{{IP: st.PodIP}}
	st.StartTime = &rt.startTime
	ready := corev1.ConditionFalse
	if allReady {
		ready = corev1.ConditionTrue
	}
	for _, c := range []struct {
		t corev1.PodConditionType
		s corev1.ConditionStatus
	}{{corev1.PodReadyToStartContainers, corev1.ConditionTrue}, {corev1.PodInitialized, corev1.ConditionTrue},
		{corev1.PodScheduled, corev1.ConditionTrue}, {corev1.ContainersReady, ready}, {corev1.PodReady, ready}} {
		setCondition(st, c.t, c.s)
	}
}

func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, s corev1.ConditionStatus) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != s {
				st.Conditions[i].Status, st.Conditions[i].LastTransitionTime = s, metav1.Now()
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.Now()})
}

// terminate plays graceful deletion: SIGTERM, wait up to grace, SIGKILL, remove the network
// namespace, then delete the pod object for good.
func (rt *podRuntime) terminate(grace time.Duration) {
	unlock := rt.lock()
	if rt.ending {
		unlock()
		return
	}
	rt.ending = true
	unlock()
	go func() {
		var wg sync.WaitGroup
		for _, cr := range rt.containers {
			if p := cr.proc; p != nil {
				wg.Add(1)
				go func() { defer wg.Done(); p.Stop(grace) }()
			}
		}
		wg.Wait()
		rt.release()
		if !rt.k.remove(rt) {
			return // killed meanwhile
		}
		pod := &corev1.Pod{}
		pod.Namespace, pod.Name, pod.UID = rt.key.Namespace, rt.key.Name, rt.uid
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rt.k.forceDelete(ctx, pod); err != nil {
			rt.k.c.logf("pod %s: delete: %v", rt.key, err)
		}
	}()
}

// kill stops everything at once (harness shutdown, pod gone).
func (rt *podRuntime) kill() {
	unlock := rt.lock()
	rt.ending = true
	unlock()
	for _, cr := range rt.containers {
		if cr.proc != nil {
			cr.proc.Kill()
		}
	}
	rt.release()
}

func (rt *podRuntime) release() {
	rt.stopOnce.Do(func() {
		close(rt.stop)
		rt.k.c.net.removePod(rt.net)
	})
}

func isDone(p *Process) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

func ptrBool(b bool) *bool { return &b }

func probeClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
