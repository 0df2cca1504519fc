// Package v1alpha1 holds Portico's API: EdgeProxy (one per tenant, cluster-scoped) and TenantRoute
// (the one normalized route every Ingress and HTTPRoute is lowered into).
//
// +kubebuilder:object:generate=true
// +groupName=edge.portico.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of Portico's kinds.
	GroupVersion = schema.GroupVersion{Group: "edge.portico.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this group with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this group to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
