package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EdgeProxySpec is what a platform team declares for one tenant: which namespaces it serves, which
// hostnames they may claim, and how its own proxy fleet runs.
//
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(self.deployment) || !has(self.deployment.replicas)",message="deployment.replicas and autoscaling are mutually exclusive"
type EdgeProxySpec struct {
	// TenantNamespaces selects the namespaces whose routes this EdgeProxy serves.
	TenantNamespaces TenantNamespaces `json:"tenantNamespaces"`

	// Hostnames the tenant's routes may claim: exact names or "*.example.com" wildcards (one extra
	// label). A route claiming anything else is refused with HostnameNotAllowed.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	Hostnames []Hostname `json:"hostnames"`

	// ProxyNamespace is the namespace the proxy fleet runs in: the tenant's own, never a shared one.
	// It cannot change once set; create a new EdgeProxy to move a fleet.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="proxyNamespace is immutable"
	ProxyNamespace string `json:"proxyNamespace"`

	// IngressClass created for this tenant.
	// +optional
	IngressClass *IngressClassSpec `json:"ingressClass,omitempty"`

	// Deployment knobs of the proxy fleet.
	// +optional
	Deployment *ProxyDeploymentSpec `json:"deployment,omitempty"`

	// Autoscaling, when set, creates a HorizontalPodAutoscaler and leaves replicas to it.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Service exposing the proxy fleet.
	// +optional
	Service *ProxyServiceSpec `json:"service,omitempty"`

	// TLS defaults for the tenant's routes.
	// +optional
	TLS *TLSDefaults `json:"tls,omitempty"`

	// Traffic defaults; routes may lower these limits, never raise them.
	// +optional
	Traffic *TrafficDefaults `json:"traffic,omitempty"`

	// Observability of the proxy fleet.
	// +optional
	Observability *Observability `json:"observability,omitempty"`

	// AllowExternalNameServices lets routes use ExternalName Services as backends. Off by default:
	// an ExternalName can point a tenant's traffic anywhere, including at other tenants.
	// +optional
	AllowExternalNameServices bool `json:"allowExternalNameServices,omitempty"`

	// AllowUnmanagedEndpointSlices lets the proxies use EndpointSlices written by hand (not by
	// kube-controller-manager) for Services without a selector. Off by default, and unsafe where
	// tenants are not trusted: a tenant owns its Services and their slices, so it could aim the
	// proxies, whose source address other namespaces' NetworkPolicies admit, at any Pod or node
	// address, past ReferenceGrants. Loopback, link-local, metadata and the proxies' own addresses
	// stay refused either way. Services with a selector only ever use the controller's slices.
	// Gateways of a GatewayClass annotated edge.portico.dev/allow-unmanaged-endpointslices: "true"
	// get it on their generated EdgeProxies.
	// +optional
	AllowUnmanagedEndpointSlices bool `json:"allowUnmanagedEndpointSlices,omitempty"`
}

// TenantNamespaces selects namespaces by name, by labels, or both (a namespace matching either is served).
//
// +kubebuilder:validation:XValidation:rule="(has(self.names) && size(self.names) > 0) || has(self.selector)",message="tenantNamespaces needs names or a selector"
type TenantNamespaces struct {
	// Names of namespaces served.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	// +optional
	Names []string `json:"names,omitempty"`
	// Selector over namespace labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// IngressClassSpec describes the IngressClass created for the tenant.
type IngressClassSpec struct {
	// Name of the IngressClass; defaults to the EdgeProxy's name. "nginx" is allowed, so that manifests
	// written for ingress-nginx keep working unchanged.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +optional
	Name string `json:"name,omitempty"`
	// Default marks the IngressClass as the cluster default (ingressclass.kubernetes.io/is-default-class).
	// +optional
	Default bool `json:"default,omitempty"`
}

// ProxyDeploymentSpec holds the knobs of the proxy Deployment.
type ProxyDeploymentSpec struct {
	// Replicas of the proxy; 2 when unset.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`
	// Image overrides the operator's own image. The same image runs operator and proxy so that
	// control and data plane versions cannot drift; override only to test a build.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[^\s\x00-\x1f\x7f]+$`
	// +optional
	Image string `json:"image,omitempty"`
	// ImagePullPolicy of the proxy container.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// Resources of the proxy container.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
	// NodeSelector of the proxy pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations of the proxy pods.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// Affinity of the proxy pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// TopologySpreadConstraints replace the default spread across zones and nodes.
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	// PodLabels are added to the proxy pods (they never replace Portico's own selector labels).
	// +optional
	PodLabels map[string]string `json:"podLabels,omitempty"`
	// PodAnnotations are added to the proxy pods.
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`
	// PriorityClassName of the proxy pods.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
}

// AutoscalingSpec configures a HorizontalPodAutoscaler for the proxy fleet.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas"
type AutoscalingSpec struct {
	// MinReplicas; 2 when unset.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// MaxReplicas.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas int32 `json:"maxReplicas"`
	// TargetCPUUtilizationPercentage; 70 when unset.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilizationPercentage *int32 `json:"targetCPUUtilizationPercentage,omitempty"`
}

// ProxyServiceSpec describes the Service in front of the proxy fleet.
type ProxyServiceSpec struct {
	// Type of the Service; LoadBalancer when unset.
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`
	// Annotations of the Service (cloud load balancer settings).
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// LoadBalancerClass of the Service.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	LoadBalancerClass *string `json:"loadBalancerClass,omitempty"`
	// ExternalTrafficPolicy of the Service; Local keeps client source addresses.
	// +kubebuilder:validation:Enum=Cluster;Local
	// +optional
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`
	// HTTPPort is the Service port for plain HTTP; 80 when unset.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	HTTPPort *int32 `json:"httpPort,omitempty"`
	// HTTPSPort is the Service port for HTTPS; 443 when unset.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	HTTPSPort *int32 `json:"httpsPort,omitempty"`
}

// TLSDefaults apply to every route of the tenant unless the route says otherwise.
type TLSDefaults struct {
	// Issuer used for Certificates of routes that name none.
	// +optional
	Issuer *IssuerReference `json:"issuer,omitempty"`
	// RedirectHTTPToHTTPS answers plain HTTP requests for hosts with TLS by a 308 to https.
	// +optional
	RedirectHTTPToHTTPS bool `json:"redirectHTTPToHTTPS,omitempty"`
	// MinVersion of TLS accepted by the proxy; 1.2 when unset.
	// +kubebuilder:validation:Enum="1.2";"1.3"
	// +optional
	MinVersion string `json:"minVersion,omitempty"`
}

// TrafficDefaults are the tenant-wide limits and timeouts.
type TrafficDefaults struct {
	// ConnectTimeout to a backend endpoint; 5s when unset.
	// +optional
	ConnectTimeout *metav1.Duration `json:"connectTimeout,omitempty"`
	// RequestTimeout is the total time for a request; 60s when unset.
	// +optional
	RequestTimeout *metav1.Duration `json:"requestTimeout,omitempty"`
	// BackendTimeout is the time to wait for a backend's response headers; 60s when unset.
	// +optional
	BackendTimeout *metav1.Duration `json:"backendTimeout,omitempty"`
	// IdleTimeout of downstream keep-alive connections; 60s when unset.
	// +optional
	IdleTimeout *metav1.Duration `json:"idleTimeout,omitempty"`
	// MaxRequestBodySize is the largest request body a route may accept; 1Mi when unset.
	// Routes may lower it.
	// +optional
	MaxRequestBodySize *resource.Quantity `json:"maxRequestBodySize,omitempty"`
	// TrustedHops is the number of proxies in front of Portico whose X-Forwarded-For entries are
	// trusted. 0 (the default) means the peer address is the client.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	// +optional
	TrustedHops int32 `json:"trustedHops,omitempty"`
}

// AccessLogFormat is the shape of access log lines.
// +kubebuilder:validation:Enum=JSON;Text
type AccessLogFormat string

const (
	AccessLogJSON AccessLogFormat = "JSON"
	AccessLogText AccessLogFormat = "Text"
)

// Observability configures access logs and tracing of the proxy fleet.
type Observability struct {
	// AccessLog of the proxy.
	// +optional
	AccessLog *AccessLogSpec `json:"accessLog,omitempty"`
	// Tracing exports OpenTelemetry spans.
	// +optional
	Tracing *TracingSpec `json:"tracing,omitempty"`
}

// AccessLogSpec switches and shapes the access log.
type AccessLogSpec struct {
	// Enabled; true when unset.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// Format of each line; JSON when unset.
	// +optional
	Format AccessLogFormat `json:"format,omitempty"`
}

// TracingSpec exports spans over OTLP.
type TracingSpec struct {
	// Endpoint of the OTLP/HTTP collector: host:port (plain HTTP to /v1/traces) or an http(s):// URL.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^([A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}|https?://[^\s\x00-\x1f\x7f]+)$`
	Endpoint string `json:"endpoint"`
	// SamplingPercent of requests traced when no parent decided; 1 when unset.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	SamplingPercent *int32 `json:"samplingPercent,omitempty"`
}

// EdgeProxyAddress is where the tenant's proxies can be reached.
type EdgeProxyAddress struct {
	// Type is IPAddress or Hostname.
	// +kubebuilder:validation:Enum=IPAddress;Hostname
	Type string `json:"type"`
	// Value of the address.
	Value string `json:"value"`
}

// EdgeProxyStatus is what the operator observed.
type EdgeProxyStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Replicas of the proxy Deployment.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas of the proxy Deployment.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Addresses of the proxy Service.
	// +optional
	Addresses []EdgeProxyAddress `json:"addresses,omitempty"`
	// AcceptedRoutes counts TenantRoutes admitted to this EdgeProxy.
	// +optional
	AcceptedRoutes int32 `json:"acceptedRoutes,omitempty"`
	// RejectedRoutes counts TenantRoutes naming this EdgeProxy that were refused.
	// +optional
	RejectedRoutes int32 `json:"rejectedRoutes,omitempty"`
	// ConnectedProxies counts the proxy replicas connected to the operator (its leader, the one
	// replica that serves configuration) for this EdgeProxy's configuration.
	// +optional
	ConnectedProxies int32 `json:"connectedProxies,omitempty"`
	// Proxies are the connected proxy replicas and the configuration version each one serves, by
	// pod name; at most 100 are listed (connectedProxies counts them all).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	Proxies []ConnectedProxy `json:"proxies,omitempty"`
}

// ConnectedProxy is one proxy replica connected to the operator.
type ConnectedProxy struct {
	// Pod is the replica's pod name.
	// +kubebuilder:validation:MaxLength=253
	Pod string `json:"pod"`
	// Version is the snapshot version the replica acknowledged, i.e. serves; empty until it applied one.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Version string `json:"version,omitempty"`
	// RejectedVersion is the last snapshot version the replica refused (it kept serving Version),
	// until it acknowledges that version.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	RejectedVersion string `json:"rejectedVersion,omitempty"`
	// ConnectedSince is when its current connection was accepted.
	ConnectedSince metav1.Time `json:"connectedSince"`
}

// EdgeProxy is one tenant's edge: the namespaces and hostnames it serves and its own proxy fleet.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ep,categories=portico
// +kubebuilder:printcolumn:name="Proxy Namespace",type=string,JSONPath=`.spec.proxyNamespace`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Routes",type=integer,JSONPath=`.status.acceptedRoutes`
// +kubebuilder:printcolumn:name="Connected",type=integer,JSONPath=`.status.connectedProxies`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.status.addresses[0].value`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EdgeProxy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   EdgeProxySpec   `json:"spec"`
	Status EdgeProxyStatus `json:"status,omitempty"`
}

// EdgeProxyList is a list of EdgeProxy.
//
// +kubebuilder:object:root=true
type EdgeProxyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EdgeProxy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&EdgeProxy{}, &EdgeProxyList{})
}
