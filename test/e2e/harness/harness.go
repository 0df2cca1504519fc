package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/portico-dev/portico/internal/testenv"
)

// Options configure one harness instance.
type Options struct {
	// Name prefixes the instance's network namespaces, links and Node (1-5 characters). Two instances
	// with different names and subnets can run side by side; a second instance with the same name
	// refuses to start while the first is alive.
	Name string
	// Subnet is the pod network (IPv4, /26 or larger). The first address is the host's end of the
	// bridge, the top 16 addresses are LoadBalancer addresses.
	Subnet netip.Prefix
	// StateDir holds logs, kubeconfig, pod volumes. Default: a new temporary directory.
	StateDir string
	// Images the harness can run, by repository (the image reference without tag or digest).
	Images map[string]Image
	// HostAliases are written into every pod's /etc/hosts (e.g. a Service name → the host's gateway
	// address for components that run on the host rather than in pods).
	HostAliases map[string]string
	// NoControllerManager skips kube-controller-manager: Deployments then never get Pods.
	NoControllerManager bool
	// MaxProbePeriod caps readiness probe periods so tests do not wait for slow probes. Default 1s.
	MaxProbePeriod time.Duration
	// MaxGracePeriod caps the time a deleted pod's processes get after SIGTERM. Default 30s.
	MaxGracePeriod time.Duration
	// Log receives progress lines. Default os.Stderr.
	Log io.Writer
	// AuditPolicy, when set, is a kube-apiserver audit policy (YAML): the API server writes the
	// events it selects as JSON lines to Cluster.AuditLog (StateDir/audit.log), synchronously.
	AuditPolicy string
}

// Image tells the harness how to run containers of one image: the host command standing in for the
// image's ENTRYPOINT and CMD (Docker semantics: a container's command replaces Entrypoint, its args
// replace Cmd), environment the image would define, and an optional hook run before each container.
type Image struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	// Commands maps an absolute path inside the image to a host binary, for containers that set command.
	Commands map[string]string
	// Prepare may add files the image or the cluster would provide, as extra bind mounts
	// (container path → host path).
	Prepare func(ctx context.Context, c *Cluster, pod *corev1.Pod, container *corev1.Container) (mounts map[string]string, err error)
}

// Cluster is a running harness instance: a real control plane plus the harness playing kubelet,
// scheduler and load balancer on one Node.
type Cluster struct {
	Opts       Options
	Config     *rest.Config
	Client     client.Client
	Clientset  *kubernetes.Clientset
	Kubeconfig string // admin (system:masters) kubeconfig file
	NodeName   string
	// Gateway is the host's address on the pod network: pods reach host processes there.
	Gateway netip.Addr
	// AuditLog is the API server's audit log (JSON lines) when Options.AuditPolicy is set, else "".
	AuditLog string

	env     *envtest.Environment
	net     *network
	kubelet *kubelet
	lb      *loadBalancer
	cancel  context.CancelFunc
	mgrDone chan error

	mu    sync.Mutex
	procs []*Process
}

func (o *Options) defaults() error {
	if o.Name == "" {
		o.Name = "pe2e"
	}
	if !o.Subnet.IsValid() {
		o.Subnet = netip.MustParsePrefix("198.51.100.0/25")
	}
	if o.MaxProbePeriod == 0 {
		o.MaxProbePeriod = time.Second
	}
	if o.MaxGracePeriod == 0 {
		o.MaxGracePeriod = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.StateDir == "" {
		d, err := os.MkdirTemp("", "portico-"+o.Name+"-")
		if err != nil {
			return err
		}
		o.StateDir = d
	}
	return os.MkdirAll(o.StateDir, 0o755)
}

// Start brings up the control plane (kube-apiserver, etcd, kube-controller-manager) with the CRDs
// of internal/testenv, the pod network, a Ready Node and the harness's kubelet/scheduler/load
// balancer loops. It needs root (network namespaces). Stop undoes everything, also after failures.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the e2e harness needs root: it creates network namespaces and veth links (CI runs as root; locally use sudo)")
	}
	if err := o.defaults(); err != nil {
		return nil, err
	}
	nw, err := newNetwork(o.Name, o.Subnet)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Opts: o, NodeName: o.Name + "-node", Gateway: nw.gw, net: nw}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := c.lockInstance(); err != nil {
		return nil, err
	}
	c.logf("state directory %s", o.StateDir)
	if err := nw.setup(); err != nil {
		return nil, err
	}
	c.logf("starting kube-apiserver and etcd")
	if c.env, c.Config, err = c.startControlPlane(); err != nil {
		return nil, err
	}
	c.Config.QPS, c.Config.Burst = 200, 400
	if err := c.writeKubeconfig(); err != nil {
		return nil, err
	}
	if c.Client, err = client.New(c.Config, client.Options{Scheme: testenv.Scheme()}); err != nil {
		return nil, err
	}
	if c.Clientset, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}
	if !o.NoControllerManager {
		if err := c.startControllerManager(); err != nil {
			return nil, err
		}
	}
	if err := c.registerNode(ctx); err != nil {
		return nil, err
	}
	if err := c.startLoops(); err != nil {
		return nil, err
	}
	c.logf("control plane up: kubeconfig %s", c.Kubeconfig)
	return c, nil
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.Opts.Log, "harness[%s] %s %s\n", c.Opts.Name, time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// lockInstance refuses to start while another live process holds this instance name, then takes it.
func (c *Cluster) lockInstance() error {
	lock := filepath.Join(os.TempDir(), "portico-harness-"+c.Opts.Name+".pid")
	if data, err := os.ReadFile(lock); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("harness instance %q is in use by pid %d (%s); stop it or pick another Name", c.Opts.Name, pid, lock)
		}
	}
	return os.WriteFile(lock, []byte(strconv.Itoa(os.Getpid())), 0o644)
}

// startControlPlane is testenv.Start (kube-apiserver + etcd, the CRDs installed) with the audit
// log of Options.AuditPolicy when set.
func (c *Cluster) startControlPlane() (*envtest.Environment, *rest.Config, error) {
	if c.Opts.AuditPolicy == "" {
		return testenv.Start()
	}
	assets, err := testenv.AssetsDir()
	if err != nil {
		return nil, nil, err
	}
	policy := filepath.Join(c.Opts.StateDir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(c.Opts.AuditPolicy), 0o644); err != nil {
		return nil, nil, err
	}
	c.AuditLog = filepath.Join(c.Opts.StateDir, "audit.log")
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        testenv.CRDPaths(),
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
		Scheme:                   testenv.Scheme(),
	}
	env.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", policy).
		Set("audit-log-path", c.AuditLog).
		Set("audit-log-format", "json").
		Set("audit-log-mode", "blocking"). // each event is written before the response is sent
		Set("audit-log-maxsize", "4096")   // MB: never rotated during a run
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("start control plane from %s: %w", assets, err)
	}
	return env, cfg, nil
}

func (c *Cluster) writeKubeconfig() error {
	var err error
	c.Kubeconfig, err = c.UserKubeconfig("harness-admin", "system:masters")
	return err
}

// UserKubeconfig writes a kubeconfig for a client-certificate user of the API server (name and
// groups as given) to StateDir/kubeconfig-NAME and returns its path ("kubeconfig" for the admin).
// Processes started with their own user are told apart in the audit log by user.username.
func (c *Cluster) UserKubeconfig(name string, groups ...string) (string, error) {
	user, err := c.env.AddUser(envtest.User{Name: name, Groups: groups}, c.Config)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.Opts.StateDir, "kubeconfig-"+name)
	if name == "harness-admin" {
		path = filepath.Join(c.Opts.StateDir, "kubeconfig")
	}
	return path, os.WriteFile(path, data, 0o600)
}

// startControllerManager runs kube-controller-manager with the controllers a kubelet-less cluster
// needs: Deployments → ReplicaSets → Pods, Services → EndpointSlices, garbage collection,
// namespace deletion and default ServiceAccounts. No ServiceAccount token controller: pods get their
// tokens from the TokenRequest API (the harness projects them), so no signing key is shared.
func (c *Cluster) startControllerManager() error {
	bin, err := controlPlaneBinary("kube-controller-manager")
	if err != nil {
		return err
	}
	c.logf("starting kube-controller-manager")
	p, err := c.StartProcess("kube-controller-manager", []string{bin,
		"--kubeconfig=" + c.Kubeconfig,
		"--controllers=deployment-controller,replicaset-controller,endpointslice-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller,disruption-controller",
		"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10", "--concurrent-service-endpoint-syncs=10",
		"--v=1",
	}, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	return p.WaitForLog(ctx, "Starting controller")
}

// controlPlaneBinary returns bin/control-plane/NAME (or in KUBEBUILDER_ASSETS), building it with
// hack/control-plane.sh when missing.
func controlPlaneBinary(name string) (string, error) {
	dir, err := testenv.AssetsDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	target := map[string]string{"cert-manager-controller": "cert-manager"}[name]
	if target == "" {
		target = name
	}
	fmt.Fprintf(os.Stderr, "harness: %s missing; building it (hack/control-plane.sh %s, minutes on a cold cache)\n", path, target)
	if err := runStreaming(filepath.Join(testenv.RepoRoot(), "hack", "control-plane.sh"), target); err != nil {
		return "", err
	}
	return path, nil
}

// StartProcess starts a host process tracked by the cluster (stopped by Stop, logs in StateDir/logs,
// shown by Dump). env nil inherits the harness's environment.
func (c *Cluster) StartProcess(name string, argv, env []string) (*Process, error) {
	p, err := startProcess(name, filepath.Join(c.Opts.StateDir, "logs", name+".log"), argv, env, "")
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

func (c *Cluster) registerNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: c.NodeName, Labels: map[string]string{
		corev1.LabelHostname: c.NodeName, corev1.LabelOSStable: "linux", "edge.portico.dev/harness": c.Opts.Name,
	}}}
	if err := c.Client.Create(ctx, node); err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	now := metav1.Now()
	node.Status = corev1.NodeStatus{
		Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("250")},
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("250")},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "the e2e harness plays the kubelet", LastHeartbeatTime: now, LastTransitionTime: now}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: c.Gateway.String()}, {Type: corev1.NodeHostName, Address: c.NodeName}},
		NodeInfo:  corev1.NodeSystemInfo{KubeletVersion: "harness", OperatingSystem: "linux", Architecture: "amd64"},
	}
	return c.Client.Status().Update(ctx, node)
}

func (c *Cluster) startLoops() error {
	mgr, err := ctrl.NewManager(c.Config, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	c.kubelet = newKubelet(c, mgr)
	if err := c.kubelet.setup(mgr); err != nil {
		return err
	}
	c.lb = &loadBalancer{c: c, client: mgr.GetClient(), services: map[types.NamespacedName]*lbService{}}
	if err := c.lb.setup(mgr); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.mgrDone = make(chan error, 1)
	go func() { c.mgrDone <- mgr.Start(ctx) }()
	return nil
}

// Stop kills every pod process and host process, removes the pod network and stops the control
// plane. Safe to call more than once and on a partly started cluster.
func (c *Cluster) Stop() {
	if c.cancel != nil {
		c.cancel()
		select {
		case <-c.mgrDone:
		case <-time.After(10 * time.Second):
		}
		c.cancel = nil
	}
	if c.kubelet != nil {
		c.kubelet.killAll()
	}
	if c.lb != nil {
		c.lb.closeAll()
	}
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(5 * time.Second)
	}
	if c.net != nil {
		c.net.teardown()
	}
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			c.logf("stop control plane: %v", err)
		}
		c.env = nil
	}
	_ = os.Remove(filepath.Join(os.TempDir(), "portico-harness-"+c.Opts.Name+".pid"))
}
