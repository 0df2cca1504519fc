package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// kubelet plays scheduler and kubelet for one Node: it binds unscheduled pods to the Node, runs the
// containers of known images as processes in a per-pod network namespace, reports status and
// readiness, and on deletion stops the processes and removes the pod.
type kubelet struct {
	c        *Cluster
	cache    client.Reader
	recorder events.EventRecorder

	mu     sync.Mutex
	pods   map[types.NamespacedName]*podRuntime
	warned map[types.UID]bool
}

func newKubelet(c *Cluster, mgr manager.Manager) *kubelet {
	return &kubelet{c: c, cache: mgr.GetClient(), recorder: mgr.GetEventRecorder("harness-kubelet"),
		pods: map[types.NamespacedName]*podRuntime{}, warned: map[types.UID]bool{}}
}

func (k *kubelet) setup(mgr manager.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("harness-kubelet").For(&corev1.Pod{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).Complete(k)
}

// Reconcile drives one pod towards: bound to our Node, processes running, status reported.
func (k *kubelet) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pod := &corev1.Pod{}
	if err := k.cache.Get(ctx, req.NamespacedName, pod); err != nil {
		if apierrors.IsNotFound(err) {
			if rt := k.take(req.NamespacedName, ""); rt != nil {
				rt.kill()
			}
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != k.c.NodeName {
		return reconcile.Result{}, nil
	}
	if rt := k.take(req.NamespacedName, pod.UID); rt != nil { // a new pod under an old name
		rt.kill()
	}
	rt := k.get(req.NamespacedName)
	switch {
	case pod.DeletionTimestamp != nil:
		if rt != nil {
			rt.terminate(k.gracePeriod(pod))
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, k.forceDelete(ctx, pod)
	case pod.Spec.NodeName == "":
		return reconcile.Result{}, k.bind(ctx, pod)
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || rt != nil:
		return reconcile.Result{}, nil
	}
	return k.start(ctx, pod)
}

func (k *kubelet) get(key types.NamespacedName) *podRuntime {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pods[key]
}

// take removes and returns the runtime under key unless it belongs to keepUID.
func (k *kubelet) take(key types.NamespacedName, keepUID types.UID) *podRuntime {
	k.mu.Lock()
	defer k.mu.Unlock()
	rt := k.pods[key]
	if rt == nil || (keepUID != "" && rt.uid == keepUID) {
		return nil
	}
	delete(k.pods, key)
	return rt
}

// remove forgets rt if it is still the runtime of its pod.
func (k *kubelet) remove(rt *podRuntime) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.pods[rt.key] != rt {
		return false
	}
	delete(k.pods, rt.key)
	return true
}

func (k *kubelet) gracePeriod(pod *corev1.Pod) time.Duration {
	g := int64(30)
	if pod.DeletionGracePeriodSeconds != nil {
		g = *pod.DeletionGracePeriodSeconds
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		g = *pod.Spec.TerminationGracePeriodSeconds
	}
	return min(time.Duration(g)*time.Second, k.c.Opts.MaxGracePeriod)
}

func (k *kubelet) bind(ctx context.Context, pod *corev1.Pod) error {
	err := k.c.Clientset.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: k.c.NodeName},
	}, metav1.CreateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (k *kubelet) forceDelete(ctx context.Context, pod *corev1.Pod) error {
	err := k.c.Client.Delete(ctx, pod, client.GracePeriodSeconds(0), client.Preconditions{UID: &pod.UID})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// start runs a bound pod: images resolved, network namespace, volumes, processes, probes.
func (k *kubelet) start(ctx context.Context, pod *corev1.Pod) (reconcile.Result, error) {
	var images []Image
	for i := range pod.Spec.Containers {
		img, ok := k.c.Opts.Images[imageRepository(pod.Spec.Containers[i].Image)]
		if !ok {
			return reconcile.Result{}, k.unrunnable(ctx, pod, "ErrImageNeverPull",
				fmt.Sprintf("image %q of container %q is not one the e2e harness can run (known: %s)", pod.Spec.Containers[i].Image, pod.Spec.Containers[i].Name, strings.Join(k.knownImages(), ", ")))
		}
		images = append(images, img)
	}
	if why := unsupported(pod); why != "" {
		return reconcile.Result{}, k.unrunnable(ctx, pod, "Unsupported", why)
	}
	rt := &podRuntime{k: k, key: client.ObjectKeyFromObject(pod), uid: pod.UID, stop: make(chan struct{}),
		dir:       filepath.Join(k.c.Opts.StateDir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, string(pod.UID)[:8])),
		startTime: metav1.Now(), restartPolicy: pod.Spec.RestartPolicy}
	pn, err := k.c.net.addPod(k.hostsFile(pod))
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("pod network for %s: %w", rt.key, err)
	}
	rt.net = pn
	if err := rt.prepare(ctx, pod, images); err != nil {
		k.c.net.removePod(pn)
		k.event(pod, corev1.EventTypeWarning, "FailedMount", err.Error())
		return reconcile.Result{RequeueAfter: 2 * time.Second}, nil
	}
	k.mu.Lock()
	k.pods[rt.key] = rt
	k.mu.Unlock()
	for _, cr := range rt.containers {
		if err := rt.run(cr); err != nil {
			k.event(pod, corev1.EventTypeWarning, "Failed", err.Error())
		} else {
			k.event(pod, corev1.EventTypeNormal, "Started", fmt.Sprintf("container %s: pid %d in netns %s (%s)", cr.spec.Name, cr.proc.Pid(), pn.netns, pn.ip))
		}
	}
	rt.writeStatus()
	return reconcile.Result{}, nil
}

func (k *kubelet) knownImages() []string {
	var out []string
	for repo := range k.c.Opts.Images {
		out = append(out, repo)
	}
	return out
}

// unrunnable leaves the pod Pending with a waiting reason and one Warning Event.
func (k *kubelet) unrunnable(ctx context.Context, pod *corev1.Pod, reason, msg string) error {
	k.mu.Lock()
	seen := k.warned[pod.UID]
	k.warned[pod.UID] = true
	k.mu.Unlock()
	if seen {
		return nil
	}
	k.event(pod, corev1.EventTypeWarning, reason, msg)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &corev1.Pod{}
		if err := k.c.Client.Get(ctx, client.ObjectKeyFromObject(pod), cur); err != nil {
			return client.IgnoreNotFound(err)
		}
		cur.Status.Phase = corev1.PodPending
		cur.Status.ContainerStatuses = nil
		for _, ct := range cur.Spec.Containers {
			cur.Status.ContainerStatuses = append(cur.Status.ContainerStatuses, corev1.ContainerStatus{Name: ct.Name, Image: ct.Image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}})
		}
		return k.c.Client.Status().Update(ctx, cur)
	})
}

func (k *kubelet) event(pod *corev1.Pod, typ, reason, msg string) {
	k.recorder.Eventf(pod, nil, typ, reason, "Run", "%s", msg)
	k.c.logf("pod %s/%s: %s: %s", pod.Namespace, pod.Name, reason, msg)
}

func (k *kubelet) hostsFile(pod *corev1.Pod) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
	for name, ip := range k.c.hostAliases() {
		fmt.Fprintf(&b, "%s\t%s\n", ip, name)
	}
	for _, a := range pod.Spec.HostAliases {
		fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, " "))
	}
	return b.String()
}

func (k *kubelet) killAll() {
	k.mu.Lock()
	pods := k.pods
	k.pods = map[types.NamespacedName]*podRuntime{}
	k.mu.Unlock()
	for _, rt := range pods {
		rt.kill()
	}
}

// Pods lists the pods the harness runs (for Dump and for tests that kill a process).
func (c *Cluster) Pods() map[types.NamespacedName]*PodProcesses {
	c.kubelet.mu.Lock()
	defer c.kubelet.mu.Unlock()
	out := map[types.NamespacedName]*PodProcesses{}
	for key, rt := range c.kubelet.pods {
		pp := &PodProcesses{IP: rt.net.ip.String(), Netns: rt.net.netns, Dir: rt.dir}
		for _, cr := range rt.containers {
			if p := cr.process(); p != nil {
				pp.Containers = append(pp.Containers, p)
			}
		}
		out[key] = pp
	}
	return out
}

// PodProcesses are a running pod's address, network namespace, state directory and processes.
type PodProcesses struct {
	IP, Netns, Dir string
	Containers     []*Process
}

// imageRepository strips the tag and digest: "ghcr.io/x/y:v1" → "ghcr.io/x/y".
func imageRepository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// unsupported names a pod feature the harness cannot play, or "".
func unsupported(pod *corev1.Pod) string {
	if len(pod.Spec.InitContainers) > 0 {
		return "init containers are not supported by the e2e harness"
	}
	if pod.Spec.HostNetwork {
		return "hostNetwork pods are not supported by the e2e harness"
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.EmptyDir != nil, v.Secret != nil, v.ConfigMap != nil:
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken == nil && s.Secret == nil && s.ConfigMap == nil {
					return fmt.Sprintf("volume %q: only serviceAccountToken, secret and configMap projections are supported", v.Name)
				}
			}
		default:
			return fmt.Sprintf("volume %q: only emptyDir, secret, configMap and projected volumes are supported", v.Name)
		}
	}
	for _, c := range pod.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if m.SubPath != "" || m.SubPathExpr != "" {
				return fmt.Sprintf("container %q: subPath mounts are not supported", c.Name)
			}
		}
	}
	return ""
}
