package controllers

// Names the reconcilers agree on: field indexes, controller names, the event reporter.
const (
	// ReporterName reports Events and names the reconcilers' logger.
	ReporterName = "portico-operator"

	edgeProxyControllerName   = "edgeproxy"
	tenantRouteControllerName = "tenantroute"

	// indexRouteEdgeProxy indexes TenantRoutes by spec.edgeProxy.
	indexRouteEdgeProxy = "spec.edgeProxy"
	// indexRouteBackend indexes TenantRoutes by "namespace/name" of every Service they send traffic to.
	indexRouteBackend = "portico.backendServices"
	// indexRouteSecret indexes TenantRoutes by "namespace/name" of every TLS Secret they use.
	indexRouteSecret = "portico.tlsSecrets"
	// indexProxyNamespace indexes EdgeProxies by spec.proxyNamespace.
	indexProxyNamespace = "spec.proxyNamespace"
	// indexIngressClassName indexes EdgeProxies by the name of their IngressClass.
	indexIngressClassName = "portico.ingressClassName"

	// eventActionAdmit and eventActionProvision are the events.k8s.io "action" of the Events we emit.
	eventActionAdmit     = "Admit"
	eventActionProvision = "Provision"
)
