// Package testenv starts a real kube-apiserver and etcd (built from Go modules by
// hack/control-plane.sh into bin/control-plane) with Portico's, the Gateway API's and cert-manager's
// CRDs installed. Tests of reconcilers and CRD validation use it; nothing here fakes the API server.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// RepoRoot is the repository's root directory, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Scheme knows every kind Portico reads or writes.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{
		clientgoscheme.AddToScheme, edgev1alpha1.AddToScheme, gwapiv1.Install, gwapiv1beta1.Install, cmv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// AssetsDir returns the directory holding kube-apiserver and etcd. KUBEBUILDER_ASSETS wins; otherwise
// bin/control-plane, built by hack/control-plane.sh when missing (minutes on a cold machine, so the
// build prints progress; a cached build is a symlink away).
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	root := RepoRoot()
	dir := filepath.Join(root, "bin", "control-plane")
	if haveBinaries(dir) {
		return dir, nil
	}
	fmt.Fprintln(os.Stderr, "testenv: kube-apiserver/etcd not in bin/control-plane; building them (hack/control-plane.sh)")
	cmd := exec.Command(filepath.Join(root, "hack", "control-plane.sh"), "etcd", "kube-apiserver")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build control plane: %w", err)
	}
	return dir, nil
}

func haveBinaries(dir string) bool {
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return false
		}
	}
	return true
}

// CRDPaths are the CRD directories installed into every test control plane.
func CRDPaths() []string {
	root := RepoRoot()
	return []string{
		filepath.Join(root, "config", "crd", "bases"),
		filepath.Join(root, "config", "crd", "thirdparty", "gateway-api"),
		filepath.Join(root, "config", "crd", "thirdparty", "cert-manager"),
	}
}

// Start launches the control plane and installs the CRDs. Call Stop on the returned environment.
func Start() (*envtest.Environment, *rest.Config, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        CRDPaths(),
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 90 * time.Second, // a 2-core CI machine under -race load
		ControlPlaneStopTimeout:  30 * time.Second,
		Scheme:                   Scheme(),
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("start control plane from %s: %w", assets, err)
	}
	return env, cfg, nil
}
