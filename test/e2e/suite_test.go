package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portico-dev/portico/internal/testenv"
	"github.com/portico-dev/portico/test/e2e/harness"
)

// The suite shares one platform: control plane, kube-controller-manager, the harness's kubelet and
// load balancer, the real cert-manager controller, and the Portico operator. Each Ordered container owns its namespaces, EdgeProxies
// and hostnames, so containers do not depend on one another.
var (
	cluster  *harness.Cluster
	k8s      client.Client
	operator *harness.Process
	// operatorBinary is the portico binary the operator and the proxies run.
	operatorBinary string
	certManager    *harness.Process
)

const operatorNamespace = "portico-system"

func TestMain(m *testing.M) {
	harness.RunRoleIfRequested() // pods of the echo image are this binary
	os.Exit(m.Run())
}

func TestE2E(t *testing.T) {
	if os.Getenv("PORTICO_E2E") == "" {
		t.Skip("end-to-end suite: run `make test-e2e` (or set PORTICO_E2E=1)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("test/e2e needs root: the harness creates network namespaces and veth links for the pods it runs " +
			"(CI runs as root). Run `sudo make test-e2e`.")
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter)))
	RegisterFailHandler(Fail)
	RunSpecs(t, "Portico end-to-end")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	bin := filepath.Join(testenv.RepoRoot(), "bin", "e2e", "portico")
	operatorBinary = bin
	By("building " + bin)
	Expect(harness.BuildPortico(bin)).To(Succeed())
	echo, err := harness.EchoImageSpec()
	Expect(err).NotTo(HaveOccurred())
	By("starting the control plane and the harness")
	// PORTICO_E2E_INSTANCE and PORTICO_E2E_SUBNET let a second suite run beside this one (another
	// network-namespace prefix and pod network; the conformance runner takes 198.51.100.128/25).
	instance, subnet := "pe2e", "198.51.100.0/25"
	if v := os.Getenv("PORTICO_E2E_INSTANCE"); v != "" {
		instance = v
	}
	if v := os.Getenv("PORTICO_E2E_SUBNET"); v != "" {
		subnet = v
	}
	cluster, err = harness.Start(ctx, harness.Options{
		Name:   instance,
		Subnet: netip.MustParsePrefix(subnet),
		Images: map[string]harness.Image{
			harness.PorticoImageRepository: harness.PorticoImage(bin),
			harness.EchoImage:              echo,
			harness.AgnhostImage:           echo,
		},
		Log:         GinkgoWriter,
		AuditPolicy: auditPolicy(),
	})
	Expect(err).NotTo(HaveOccurred())
	k8s = cluster.Client
	By("starting cert-manager")
	certManager, err = cluster.StartCertManager(ctx)
	Expect(err).NotTo(HaveOccurred())
	By("starting the operator")
	operator, err = cluster.StartOperator(ctx, harness.OperatorOptions{Binary: bin, Namespace: operatorNamespace,
		ProxyImage: harness.PorticoImageRepository + ":e2e"})
	Expect(err).NotTo(HaveOccurred())
}, NodeTimeout(5*time.Minute))

// anyFailed keeps the state directory (logs, dumps) after a failed run; a passing run removes it.
var anyFailed bool

var _ = AfterSuite(func() {
	if cluster != nil {
		cluster.Stop()
		if !anyFailed {
			_ = os.RemoveAll(cluster.Opts.StateDir)
		} else {
			fmt.Fprintf(GinkgoWriter, "logs and dumps kept in %s\n", cluster.Opts.StateDir)
		}
	}
})

// On failure: every object and the tail of every log, into a file and the spec's output.
var _ = AfterEach(func() {
	if !CurrentSpecReport().Failed() || cluster == nil {
		return
	}
	anyFailed = true
	dir := filepath.Join(cluster.Opts.StateDir, "failures")
	_ = os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, fmt.Sprintf("%d.txt", time.Now().UnixNano()))
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	cluster.Dump(f)
	if data, err := os.ReadFile(path); err == nil {
		GinkgoWriter.Write(data)
	}
	fmt.Fprintf(GinkgoWriter, "\nobjects and logs dumped to %s\n", path)
})
