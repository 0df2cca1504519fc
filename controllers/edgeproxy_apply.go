package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/controllers/snapshot"
)

// provision renders the fleet, applies it when it or any child changed since the last apply, and
// prunes children no longer rendered. It returns the live Deployment and Service for status.
func (r *EdgeProxyReconciler) provision(ctx context.Context, ep *edgev1alpha1.EdgeProxy) (observed, error) {
	var obs observed
	ns := &corev1.Namespace{}
	err := r.Get(ctx, types.NamespacedName{Name: ep.Spec.ProxyNamespace}, ns)
	switch {
	case apierrors.IsNotFound(err) || err == nil && !ns.DeletionTimestamp.IsZero():
		return obs, &stall{edgev1alpha1.EdgeProxyReasonProxyNamespaceMissing,
			fmt.Sprintf("spec.proxyNamespace: namespace %q does not exist; create it and the fleet will be provisioned", ep.Spec.ProxyNamespace)}
	case err != nil:
		return obs, fmt.Errorf("get namespace %s: %w", ep.Spec.ProxyNamespace, err)
	}

	objs, err := render.Render(ep, r.Params)
	if err != nil {
		return obs, &stall{edgev1alpha1.EdgeProxyReasonInvalid, err.Error()}
	}
	desired := objs.List()
	if r.Params.OperatorAddress != "" {
		// The proxies dial the operator: they need its CA bundle, which render mounts from this
		// ConfigMap. Until the snapshot server has created the CA, the fleet waits (transient error).
		bundle, err := snapshot.CABundle(ctx, r.Client, r.Params.OperatorNamespace)
		if err != nil {
			return obs, fmt.Errorf("operator CA bundle (Secret %s/%s): %w", r.Params.OperatorNamespace, snapshot.CASecretName, err)
		}
		// First, so that it exists before the Deployment's pods need it.
		desired = append([]render.Object{render.OperatorCAConfigMap(ep, bundle)}, desired...)
	}
	docs := make([]*unstructured.Unstructured, len(desired))
	hash := sha256.New()
	for i, obj := range desired {
		if docs[i], err = render.ToUnstructured(obj); err != nil {
			return obs, &stall{edgev1alpha1.EdgeProxyReasonInvalid, err.Error()}
		}
		b, err := json.Marshal(docs[i].Object) // map keys are sorted: deterministic
		if err != nil {
			return obs, &stall{edgev1alpha1.EdgeProxyReasonInvalid, err.Error()}
		}
		hash.Write(b)
	}
	record := appliedRecord{uid: ep.UID, versions: map[string]string{}}
	copy(record.hash[:], hash.Sum(nil))

	live := make([]client.Object, len(desired))
	for i, obj := range desired {
		if live[i], err = r.liveChild(ctx, ep, obj); err != nil {
			return obs, err
		}
	}
	if r.applied.upToDate(ep.Name, record, live) {
		observe(&obs, live)
	} else {
		applied := make([]client.Object, len(desired))
		for i, doc := range docs {
			if applied[i], err = r.apply(ctx, doc); err != nil {
				return obs, err
			}
			record.versions[childKey(applied[i])] = applied[i].GetResourceVersion()
		}
		r.applied.remember(ep.Name, record)
		observe(&obs, applied)
	}
	return obs, r.prune(ctx, ep, desired)
}

func observe(obs *observed, objs []client.Object) {
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			obs.deployment = o
		case *corev1.Service:
			obs.service = o
		}
	}
}

// configMapGVK is the operator CA ConfigMap's kind: applied with the rendered children (and covered
// by their hash and resourceVersion record) but not pruned: its name never changes, and the
// garbage collector removes it with the EdgeProxy.
var configMapGVK = corev1.SchemeGroupVersion.WithKind("ConfigMap")

// liveChild returns the cached child an object would replace, nil when there is none. It refuses to
// take over an existing object the EdgeProxy does not control, such as an IngressClass "nginx" still
// belonging to ingress-nginx, or another EdgeProxy's IngressClass.
func (r *EdgeProxyReconciler) liveChild(ctx context.Context, ep *edgev1alpha1.EdgeProxy, obj render.Object) (client.Object, error) {
	gvk := obj.GetObjectKind().GroupVersionKind()
	var cur client.Object
	if gvk == configMapGVK {
		// Read live, as unstructured: a typed Get would start an informer on every ConfigMap of the
		// cluster (CacheOptions filters only the rendered kinds by label).
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		cur = u
	} else {
		existing, err := r.Scheme.New(gvk)
		if err != nil {
			return nil, fmt.Errorf("new %s: %w", gvk, err)
		}
		cur = existing.(client.Object)
	}
	err := r.Get(ctx, client.ObjectKeyFromObject(obj), cur)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", gvk.Kind, client.ObjectKeyFromObject(obj), err)
	}
	if owner := metav1ControllerOf(cur); owner == nil || owner.UID != ep.UID {
		return nil, &stall{edgev1alpha1.EdgeProxyReasonResourceConflict,
			fmt.Sprintf("%s %q already exists and is not controlled by this EdgeProxy; Portico does not take it over (delete it, or rename ours)",
				gvk.Kind, client.ObjectKeyFromObject(obj).String())}
	}
	cur.GetObjectKind().SetGroupVersionKind(gvk)
	return cur, nil
}

// apply server-side applies one rendered document with the operator's field owner, forcing
// ownership so that edits by others are reverted, and returns the object the API server answered with.
func (r *EdgeProxyReconciler) apply(ctx context.Context, u *unstructured.Unstructured) (client.Object, error) {
	key := client.ObjectKeyFromObject(u)
	gvk := u.GroupVersionKind()
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner(edgev1alpha1.FieldOwner), client.ForceOwnership); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return nil, &stall{edgev1alpha1.EdgeProxyReasonApplyFailed, fmt.Sprintf("apply %s %s: %v", gvk.Kind, key, err)}
		}
		return nil, fmt.Errorf("apply %s %s: %w", gvk.Kind, key, err)
	}
	out, err := r.Scheme.New(gvk)
	if err != nil {
		return nil, fmt.Errorf("new %s: %w", gvk, err)
	}
	if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		return nil, fmt.Errorf("decode applied %s %s: %w", gvk.Kind, key, err)
	}
	obj := out.(client.Object)
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj, nil
}

// prune deletes children this EdgeProxy controls that it no longer renders: the PDB after scaling
// to one replica, the HPA after autoscaling is removed, the IngressClass after a rename.
func (r *EdgeProxyReconciler) prune(ctx context.Context, ep *edgev1alpha1.EdgeProxy, desired []render.Object) error {
	want := map[string]bool{}
	for _, obj := range desired {
		want[childKey(obj)] = true
	}
	for _, gvk := range render.Kinds {
		listObj, err := r.Scheme.New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err != nil {
			return fmt.Errorf("new %sList: %w", gvk.Kind, err)
		}
		list := listObj.(client.ObjectList)
		opts := []client.ListOption{client.MatchingLabels{edgev1alpha1.LabelEdgeProxy: render.LabelValue(ep)}}
		if gvk.Kind != "IngressClass" {
			opts = append(opts, client.InNamespace(ep.Spec.ProxyNamespace))
		}
		if err := r.List(ctx, list, opts...); err != nil {
			return fmt.Errorf("list %s: %w", gvk.Kind, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return err
		}
		for _, item := range items {
			o := item.(client.Object)
			o.GetObjectKind().SetGroupVersionKind(gvk)
			if want[childKey(o)] {
				continue
			}
			if owner := metav1ControllerOf(o); owner == nil || owner.UID != ep.UID {
				continue
			}
			if err := r.Delete(ctx, o, client.Preconditions{UID: ptrUID(o.GetUID())}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("delete %s %s: %w", gvk.Kind, client.ObjectKeyFromObject(o), err)
			}
			log.FromContext(ctx).Info("pruned object no longer rendered", "kind", gvk.Kind, "object", client.ObjectKeyFromObject(o))
		}
	}
	return nil
}

// childKey names a child by kind, namespace and name.
func childKey(o client.Object) string {
	return o.GetObjectKind().GroupVersionKind().Kind + "/" + o.GetNamespace() + "/" + o.GetName()
}

// appliedRecord is what one successful apply of a fleet produced: the hash of the rendered documents
// and the resourceVersion the API server returned for each child.
type appliedRecord struct {
	uid      types.UID
	hash     [sha256.Size]byte
	versions map[string]string
}

// appliedRecords are the last applies, by EdgeProxy name. A fleet is up to date when it renders to
// the same documents and every child in the cache still has the resourceVersion our apply returned:
// any edit or deletion by someone else changes that, and is repaired. A new leader starts empty and
// applies everything once.
type appliedRecords struct {
	mu sync.Mutex
	m  map[string]appliedRecord
}

func (a *appliedRecords) upToDate(name string, want appliedRecord, live []client.Object) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	got, ok := a.m[name]
	if !ok || got.uid != want.uid || got.hash != want.hash || len(got.versions) != len(live) {
		return false
	}
	for _, o := range live {
		if o == nil || got.versions[childKey(o)] != o.GetResourceVersion() {
			return false
		}
	}
	return true
}

func (a *appliedRecords) remember(name string, rec appliedRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]appliedRecord{}
	}
	a.m[name] = rec
}

func (a *appliedRecords) forget(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.m, name)
}
