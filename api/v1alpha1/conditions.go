package v1alpha1

// ConditionType and ConditionReason are typed so that a misspelt condition cannot compile.
type (
	ConditionType   string
	ConditionReason string
)

// EdgeProxy conditions, kstatus-compatible: Ready is the summary, Reconciling is true while the
// observed state is converging, Stalled is true when progress needs a human.
const (
	EdgeProxyConditionReady       ConditionType = "Ready"
	EdgeProxyConditionReconciling ConditionType = "Reconciling"
	EdgeProxyConditionStalled     ConditionType = "Stalled"

	EdgeProxyReasonAvailable             ConditionReason = "Available"
	EdgeProxyReasonProgressing           ConditionReason = "Progressing"
	EdgeProxyReasonProxyNamespaceMissing ConditionReason = "ProxyNamespaceNotFound"
	EdgeProxyReasonInvalid               ConditionReason = "Invalid"
	EdgeProxyReasonApplyFailed           ConditionReason = "ApplyFailed"
	// EdgeProxyReasonResourceConflict: an object the EdgeProxy would create exists and is not
	// controlled by it (an IngressClass "nginx" left by ingress-nginx, say); Portico never takes it over.
	EdgeProxyReasonResourceConflict ConditionReason = "ResourceConflict"
	// EdgeProxyReasonProgressDeadlineExceeded: the proxy Deployment stopped making progress.
	EdgeProxyReasonProgressDeadlineExceeded ConditionReason = "ProgressDeadlineExceeded"
)

// TenantRoute conditions.
const (
	RouteConditionAccepted         ConditionType = "Accepted"
	RouteConditionResolvedRefs     ConditionType = "ResolvedRefs"
	RouteConditionCertificateReady ConditionType = "CertificateReady"
	RouteConditionProgrammed       ConditionType = "Programmed"
	// RouteConditionTranslated is set on routes generated from an Ingress. True: the route is the
	// translation of the source's current version, with reason Translated, or UnsupportedAnnotation
	// when some annotation was ignored or only approximated (the message names each). False, reason
	// Invalid: the source's latest version cannot be translated and the route keeps serving its last
	// good translation. It never makes a route unaccepted, and kstatus ignores it.
	RouteConditionTranslated ConditionType = "Translated"

	// kstatus summary conditions of a TenantRoute, computed from the ones above only
	// (controllers/tenantroute_summary.go). Ready is True when the route is accepted, its references
	// resolved, its certificate not failing and every proxy serves it. Stalled is True (reason: the
	// failing condition's) when progress needs a human: Accepted or ResolvedRefs False, a failed
	// certificate, or a route the proxies rejected. Reconciling is True (reason Pending or
	// Progressing) while the route waits for its certificate or the proxies. Both are absent
	// otherwise, as kstatus expects.
	RouteConditionReady       ConditionType = "Ready"
	RouteConditionReconciling ConditionType = "Reconciling"
	RouteConditionStalled     ConditionType = "Stalled"

	// Accepted reasons.
	RouteReasonAccepted              ConditionReason = "Accepted"
	RouteReasonHostnameNotAllowed    ConditionReason = "HostnameNotAllowed"
	RouteReasonHostnameConflict      ConditionReason = "HostnameConflict"
	RouteReasonNamespaceNotServed    ConditionReason = "NamespaceNotServed"
	RouteReasonEdgeProxyNotFound     ConditionReason = "EdgeProxyNotFound"
	RouteReasonInvalid               ConditionReason = "Invalid"
	RouteReasonUnsupportedAnnotation ConditionReason = "UnsupportedAnnotation"

	// ResolvedRefs reasons.
	RouteReasonResolvedRefs    ConditionReason = "ResolvedRefs"
	RouteReasonBackendNotFound ConditionReason = "BackendNotFound"
	RouteReasonRefNotPermitted ConditionReason = "RefNotPermitted"
	RouteReasonSecretNotFound  ConditionReason = "SecretNotFound"
	// RouteReasonInvalidCertificate: the TLS Secret is not a kubernetes.io/tls key pair that parses
	// and covers the route's hosts.
	RouteReasonInvalidCertificate ConditionReason = "InvalidCertificate"
	// RouteReasonNoReadyEndpoints: every reference resolves, but a backend Service has no ready
	// endpoint, so requests for it answer 503. It clears by itself when a Pod becomes Ready, so
	// the route is Reconciling, not Stalled.
	RouteReasonNoReadyEndpoints ConditionReason = "NoReadyEndpoints"

	// CertificateReady reasons.
	RouteReasonCertificateIssued            ConditionReason = "Issued"
	RouteReasonCertificatePending           ConditionReason = "Pending"
	RouteReasonCertificateManagedExternally ConditionReason = "CertificateManagedExternally"
	RouteReasonNoTLS                        ConditionReason = "NoTLS"

	// Translated reasons (besides UnsupportedAnnotation and Invalid).
	RouteReasonTranslated ConditionReason = "Translated"

	// Programmed reasons.
	RouteReasonProgrammed ConditionReason = "Programmed"
	RouteReasonPending    ConditionReason = "Pending"
	RouteReasonRejected   ConditionReason = "RejectedByProxy"

	// Ready and Reconciling reasons (besides Pending, and the failing condition's reason on Ready
	// and Stalled).
	RouteReasonReady       ConditionReason = "Ready"
	RouteReasonProgressing ConditionReason = "Progressing"
)
