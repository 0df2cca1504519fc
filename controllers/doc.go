// Package controllers holds Portico's reconcilers: one thin reconciler per kind, each reading objects,
// calling the pure translate/render/routing packages, applying the result and writing status.
package controllers

// RBAC the operator needs, kept beside the code that uses it; controller-gen turns these markers into
// config/rbac/role.yaml.
//
// +kubebuilder:rbac:groups=edge.portico.dev,resources=edgeproxies;tenantroutes,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=edge.portico.dev,resources=edgeproxies/status;tenantroutes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=edge.portico.dev,resources=edgeproxies/finalizers;tenantroutes/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
