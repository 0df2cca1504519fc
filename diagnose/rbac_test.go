package diagnose

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/internal/testenv"
)

// An app team may read its own namespace only: the EdgeProxy, the proxy fleet and other
// namespaces' routes are "could not check (RBAC)", never failures, and the report stays healthy.
func TestRBACLimitedCallerIsNotAFailure(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	tn.backend(t, ctx, "web", true)
	tn.route(t, ctx, basicRoute)
	create(t, ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "dev"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"", "discovery.k8s.io", "edge.portico.dev", "networking.k8s.io"},
			Resources: []string{"services", "endpointslices", "tenantroutes", "ingresses", "secrets"}, Verbs: []string{"get", "list"}},
	}})
	create(t, ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "dev"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "dev"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "dev-" + tn.ns}}})
	user, err := testEnv.AddUser(envtest.User{Name: "dev-" + tn.ns}, nil)
	must(t, err)
	dev, err := client.New(user.Config(), client.Options{Scheme: testenv.Scheme()})
	must(t, err)

	r, err := TenantRoute(ctx, dev, types.NamespacedName{Namespace: tn.ns, Name: "web"}, Options{})
	must(t, err)
	show(t, r)
	found := false
	for _, s := range r.Find("EdgeProxy " + tn.ep) {
		found = found || s.Status == Unknown && strings.Contains(strings.Join(s.Evidence, " "), "could not check (RBAC)")
	}
	if !found {
		t.Error("want the EdgeProxy step reported as could not check (RBAC)")
	}
	if r.ExitCode() != 0 {
		t.Errorf("exit code %d: steps the caller may not read must not fail the report (first: %+v)", r.ExitCode(), r.Cause())
	}
}

// Hostname conflict: the route lost its host to an older route of another namespace. A caller who
// can read that route sees it named.
func TestHostnameConflictNamesVisibleOwner(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	other := tenant{ns: tn.ns + "-other", ep: tn.ep, host: tn.host}
	create(t, ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other.ns}})
	ep := &edgev1alpha1.EdgeProxy{}
	must(t, k8sClient.Get(ctx, types.NamespacedName{Name: tn.ep}, ep))
	ep.Spec.TenantNamespaces.Names = append(ep.Spec.TenantNamespaces.Names, other.ns)
	must(t, k8sClient.Update(ctx, ep))
	tn.backend(t, ctx, "web", true)
	other.backend(t, ctx, "web", true)
	other.route(t, ctx, basicRoute)
	tn.route(t, ctx, basicRoute, metav1.Condition{Type: "Accepted", Status: "False", Reason: "HostnameConflict",
		Message: `spec.hostnames[0]: hostname "` + tn.host + `" is already served by an older route in another namespace`})
	r, err := TenantRoute(ctx, k8sClient, types.NamespacedName{Namespace: tn.ns, Name: "web"}, Options{})
	must(t, err)
	show(t, r)
	wantStep(t, r, "ownership of "+tn.host, Failed, "belongs to the oldest accepted route of another namespace")
	for _, s := range r.Find("ownership of") {
		if !strings.Contains(strings.Join(s.Evidence, " "), "TenantRoute "+other.ns+"/web") {
			t.Errorf("evidence %q does not name the owner", s.Evidence)
		}
	}
}
