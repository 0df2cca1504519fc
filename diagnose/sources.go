package diagnose

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/controllers/snapshot"

	"github.com/portico-dev/portico/dataplane/files"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/internal/filesmode"
)

// FromFiles loads a files-mode directory exactly as `portico proxy --files DIR` does
// (files.LoadWith and the same hooks: Ingress/TenantRoute translation, admission by the directory's
// EdgeProxy, routing.Build and endpoints) and returns the table to explain against.
func FromFiles(dir string, now time.Time) (Table, error) {
	cfg, err := files.LoadWith(dir, proxy.Settings{}, now, filesmode.Hooks())
	if err != nil {
		return Table{}, err
	}
	t := Table{
		EdgeProxy:           cfg.Settings.Tenant,
		Table:               cfg.Table,
		RedirectHTTPToHTTPS: cfg.Settings.RedirectHTTPToHTTPS,
		Endpoints: func(k routing.BackendKey) ([]string, bool) {
			eps, ok := cfg.Endpoints[k]
			out := make([]string, 0, len(eps))
			for _, e := range eps {
				out = append(out, e.Addr.String())
			}
			return out, ok
		},
	}
	if t.EdgeProxy == "" {
		t.EdgeProxy = "(files: " + dir + ")"
	}
	for _, p := range cfg.Problems {
		kind := "error"
		if p.Warning {
			kind = "warning"
		}
		t.Notes = append(t.Notes, fmt.Sprintf("%s: %s", kind, p))
	}
	return t, nil
}

// FromCluster builds the routing table of the EdgeProxy serving host (or of edgeProxy when set)
// from its admitted TenantRoutes with routing.Build, and resolves backends to ready endpoints with
// the operator's own snapshot builder: the table and endpoints its proxies receive.
func FromCluster(ctx context.Context, c client.Reader, host, edgeProxy string, now time.Time) (Table, error) {
	var eps edgev1alpha1.EdgeProxyList
	if err := c.List(ctx, &eps); err != nil {
		return Table{}, fmt.Errorf("list EdgeProxies (pass --files to explain without a cluster): %w", err)
	}
	var all edgev1alpha1.TenantRouteList
	if err := c.List(ctx, &all); err != nil {
		return Table{}, fmt.Errorf("list TenantRoutes: %w", err)
	}
	// The EdgeProxy named, else among those allowing the host the first whose admitted routes
	// serve it, else the first allowing it.
	serves := map[string]bool{}
	for i := range all.Items {
		if tr := &all.Items[i]; snapshot.Admitted(tr) && claimsOverlap(tr.Spec.Hostnames, host) {
			serves[tr.Spec.EdgeProxy] = true
		}
	}
	var ep *edgev1alpha1.EdgeProxy
	var allowing []string
	for i := range eps.Items {
		e := &eps.Items[i]
		if edgeProxy != "" && e.Name == edgeProxy || edgeProxy == "" && admission.HostnameAllowed(e.Spec.Hostnames, host) {
			if ep == nil || serves[e.Name] && !serves[ep.Name] {
				ep = e
			}
			allowing = append(allowing, e.Name)
		}
	}
	if ep == nil {
		if edgeProxy != "" {
			return Table{}, fmt.Errorf("EdgeProxy %s not found", edgeProxy)
		}
		return Table{}, fmt.Errorf("no EdgeProxy allows host %q (spec.hostnames): requests for it reach no Portico proxy", host)
	}
	in := snapshot.Input{EdgeProxy: ep, Services: map[types.NamespacedName]*corev1.Service{},
		Slices: map[types.NamespacedName][]*discoveryv1.EndpointSlice{}, Now: now}
	var routes []edgev1alpha1.TenantRoute
	for _, tr := range all.Items {
		if tr.Spec.EdgeProxy == ep.Name && snapshot.Admitted(&tr) {
			routes = append(routes, tr)
		}
	}
	in.Routes = routes
	t := Table{EdgeProxy: ep.Name, RedirectHTTPToHTTPS: ep.Spec.TLS != nil && ep.Spec.TLS.RedirectHTTPToHTTPS}
	if len(allowing) > 1 {
		t.Notes = append(t.Notes, fmt.Sprintf("several EdgeProxies allow this host (%v); explaining %s (choose with --edgeproxy)", allowing, ep.Name))
	}
	for i := range routes {
		for _, k := range snapshot.BackendKeys(&routes[i]) {
			nn := types.NamespacedName{Namespace: k.Namespace, Name: k.Name}
			if _, done := in.Services[nn]; done {
				continue
			}
			svc := &corev1.Service{}
			if err := c.Get(ctx, nn, svc); err != nil {
				in.Services[nn] = nil
				if !apierrors.IsNotFound(err) {
					t.Notes = append(t.Notes, couldNotCheck("Service "+nn.String(), err))
				}
				continue
			}
			in.Services[nn] = svc
			var sl discoveryv1.EndpointSliceList
			if err := c.List(ctx, &sl, client.InNamespace(nn.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: nn.Name}); err != nil {
				t.Notes = append(t.Notes, couldNotCheck(keySlices(nn), err))
			}
			for j := range sl.Items {
				in.Slices[nn] = append(in.Slices[nn], &sl.Items[j])
			}
		}
	}
	snap, err := snapshot.Build(in)
	if err != nil {
		return Table{}, err
	}
	var errs []routing.RouteError
	t.Table, errs = routing.Build(routing.Snapshot{Version: snap.Version, Defaults: admission.Defaults(ep), Routes: routes})
	for _, e := range errs {
		t.Notes = append(t.Notes, fmt.Sprintf("TenantRoute %s/%s left out of the table: %v", e.Namespace, e.Name, e.Errors))
	}
	t.Endpoints = func(k routing.BackendKey) ([]string, bool) {
		svc := in.Services[types.NamespacedName{Namespace: k.Namespace, Name: k.Name}]
		if svc == nil || servicePort(svc, k.Port) == nil {
			return nil, false
		}
		var out []string
		if be := snap.Endpoints[k]; be != nil {
			for _, e := range be.Endpoints {
				out = append(out, net.JoinHostPort(e.Address, strconv.Itoa(int(e.Port))))
			}
		}
		return out, true
	}
	return t, nil
}
