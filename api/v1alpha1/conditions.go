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
)

// TenantRoute conditions.
const (
	RouteConditionAccepted         ConditionType = "Accepted"
	RouteConditionResolvedRefs     ConditionType = "ResolvedRefs"
	RouteConditionCertificateReady ConditionType = "CertificateReady"
	RouteConditionProgrammed       ConditionType = "Programmed"

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

	// CertificateReady reasons.
	RouteReasonCertificateIssued            ConditionReason = "Issued"
	RouteReasonCertificatePending           ConditionReason = "Pending"
	RouteReasonCertificateManagedExternally ConditionReason = "CertificateManagedExternally"
	RouteReasonNoTLS                        ConditionReason = "NoTLS"

	// Programmed reasons.
	RouteReasonProgrammed ConditionReason = "Programmed"
	RouteReasonPending    ConditionReason = "Pending"
	RouteReasonRejected   ConditionReason = "RejectedByProxy"
)
