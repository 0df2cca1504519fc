package render

import (
	"fmt"
	"maps"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

const (
	// TerminationGracePeriodSeconds covers the proxy's own shutdown: on SIGTERM it turns not ready,
	// keeps serving 10 s while endpoints update, then drains for up to 60 s. The image is distroless,
	// so there is no preStop sleep: the proxy does the waiting itself.
	TerminationGracePeriodSeconds = int64(75)
	// RunAsID is the distroless "nonroot" user and group.
	RunAsID = int64(65532)
	// memoryLimitPercent of the container memory limit becomes GOMEMLIMIT.
	memoryLimitPercent = 90
)

// DefaultResources of the proxy container when the EdgeProxy sets none.
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("250m"),
			corev1.ResourceMemory: resource.MustParse("128Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("512Mi"),
		},
	}
}

// Args are the proxy container's arguments.
func Args(p Params) []string {
	args := []string{
		"proxy",
		"--http-addr=:" + strconv.Itoa(int(PortHTTP)),
		"--https-addr=:" + strconv.Itoa(int(PortHTTPS)),
		"--admin-addr=:" + strconv.Itoa(int(PortAdmin)),
	}
	if p.OperatorAddress != "" {
		args = append(args, "--operator-address="+p.OperatorAddress)
	}
	return args
}

// gatewayNameLabel marks the EdgeProxies Portico generates for Gateways (translate.LabelGatewayName).
const gatewayNameLabel = "edge.portico.dev/gateway-name"

// proxyArgs are Args plus, for an EdgeProxy generated for a Gateway, --h2c: the Gateway API lets
// HTTP listeners serve cleartext HTTP/2 too ("Implementations MAY also support HTTP/2 over
// cleartext"), and a Gateway's proxies do, with prior knowledge (docs/gateway-api.md).
func proxyArgs(ep *edgev1alpha1.EdgeProxy, p Params) []string {
	args := Args(p)
	if ep.Labels[gatewayNameLabel] != "" {
		args = append(args, "--h2c")
	}
	return args
}

func deployment(ep *edgev1alpha1.EdgeProxy, p Params, image string) (*appsv1.Deployment, error) {
	spec := ep.Spec.Deployment
	if spec == nil {
		spec = &edgev1alpha1.ProxyDeploymentSpec{}
	}
	tmpl, err := podTemplate(ep, spec, p, image)
	if err != nil {
		return nil, err
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: objectMeta(ep, ObjectName(ep), ep.Spec.ProxyNamespace),
		Spec: appsv1.DeploymentSpec{
			Replicas: desiredReplicas(ep),
			Selector: &metav1.LabelSelector{MatchLabels: SelectorLabels(ep)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					// Never fewer ready proxies than asked for during a rollout.
					MaxUnavailable: ptr.To(intInt(0)),
					MaxSurge:       ptr.To(intInt(1)),
				},
			},
			Template: tmpl,
		},
	}, nil
}

// podTemplate depends only on the Deployment-related fields of the EdgeProxy (and the operator's
// Params): hostnames, tenant namespaces, routes or TLS settings never change it, so they never roll
// the fleet.
func podTemplate(ep *edgev1alpha1.EdgeProxy, spec *edgev1alpha1.ProxyDeploymentSpec, p Params, image string) (corev1.PodTemplateSpec, error) {
	resources := DefaultResources()
	if spec.Resources != nil {
		resources = *spec.Resources.DeepCopy()
	}
	env := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
	}
	if limit, ok := resources.Limits[corev1.ResourceMemory]; ok {
		b := limit.Value()
		if b <= 0 {
			return corev1.PodTemplateSpec{}, fmt.Errorf("render: spec.deployment.resources.limits.memory must be positive, got %s", limit.String())
		}
		// The Go runtime collects harder near the limit instead of being OOM-killed; the proxy itself
		// reads PORTICO_MEMORY_LIMIT to refuse new connections above 95%.
		env = append(env,
			corev1.EnvVar{Name: "GOMEMLIMIT", Value: strconv.FormatInt(b/100*memoryLimitPercent, 10)},
			corev1.EnvVar{Name: "PORTICO_MEMORY_LIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
				ContainerName: ContainerName, Resource: "limits.memory", Divisor: resource.MustParse("1"),
			}}},
		)
	}

	podLabels := maps.Clone(spec.PodLabels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	maps.Copy(podLabels, SelectorLabels(ep)) // Portico's selector labels always win.

	container := corev1.Container{
		Name:            ContainerName,
		Image:           image,
		ImagePullPolicy: spec.ImagePullPolicy,
		Args:            proxyArgs(ep, p),
		Env:             env,
		Ports: []corev1.ContainerPort{
			{Name: PortNameHTTP, ContainerPort: PortHTTP, Protocol: corev1.ProtocolTCP},
			{Name: PortNameHTTPS, ContainerPort: PortHTTPS, Protocol: corev1.ProtocolTCP},
			{Name: PortNameAdmin, ContainerPort: PortAdmin, Protocol: corev1.ProtocolTCP},
		},
		Resources: resources,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intStr(PortNameAdmin)}},
			PeriodSeconds:    2,
			TimeoutSeconds:   1,
			FailureThreshold: 1,
			SuccessThreshold: 1,
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intStr(PortNameAdmin)}},
			PeriodSeconds:    10,
			TimeoutSeconds:   2,
			FailureThreshold: 3,
			SuccessThreshold: 1,
		},
		VolumeMounts: []corev1.VolumeMount{{Name: TokenVolume, MountPath: TokenMountPath, ReadOnly: true}},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(RunAsID),
			RunAsGroup:               ptr.To(RunAsID),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}

	podSpec := corev1.PodSpec{
		ServiceAccountName:            ObjectName(ep),
		AutomountServiceAccountToken:  ptr.To(false),
		EnableServiceLinks:            ptr.To(false),
		TerminationGracePeriodSeconds: ptr.To(TerminationGracePeriodSeconds),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To(RunAsID),
			RunAsGroup:     ptr.To(RunAsID),
			FSGroup:        ptr.To(RunAsID),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{container},
		Volumes: []corev1.Volume{{
			Name: TokenVolume,
			VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				DefaultMode: ptr.To(int32(0o440)),
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience:          TokenAudience,
					ExpirationSeconds: ptr.To(TokenExpirationSeconds),
					Path:              TokenFile,
				}}},
			}},
		}},
		NodeSelector:              maps.Clone(spec.NodeSelector),
		PriorityClassName:         spec.PriorityClassName,
		TopologySpreadConstraints: topologySpread(ep, spec),
	}
	if p.OperatorAddress != "" {
		// The proxy verifies the operator's snapshot server with this bundle (its default
		// --operator-ca-file); the reconciler copies it from the operator's CA Secret.
		podSpec.Containers[0].VolumeMounts = append(podSpec.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: OperatorCAVolume, MountPath: OperatorCAMountPath, ReadOnly: true})
		podSpec.Volumes = append(podSpec.Volumes, corev1.Volume{
			Name: OperatorCAVolume,
			VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: OperatorCAName(ep)},
				DefaultMode:          ptr.To(int32(0o444)),
			}},
		})
	}
	for _, t := range spec.Tolerations {
		podSpec.Tolerations = append(podSpec.Tolerations, *t.DeepCopy())
	}
	if spec.Affinity != nil {
		podSpec.Affinity = spec.Affinity.DeepCopy()
	}

	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels:      podLabels,
			Annotations: copyMap(spec.PodAnnotations),
		},
		Spec: podSpec,
	}, nil
}

// topologySpread spreads the fleet across zones and nodes by default, best effort
// (ScheduleAnyway) so that a single-zone cluster still schedules every replica. pod-template-hash
// keeps a rollout's new pods spreading among themselves.
func topologySpread(ep *edgev1alpha1.EdgeProxy, spec *edgev1alpha1.ProxyDeploymentSpec) []corev1.TopologySpreadConstraint {
	if len(spec.TopologySpreadConstraints) > 0 {
		out := make([]corev1.TopologySpreadConstraint, 0, len(spec.TopologySpreadConstraints))
		for _, c := range spec.TopologySpreadConstraints {
			out = append(out, *c.DeepCopy())
		}
		return out
	}
	constraint := func(key string) corev1.TopologySpreadConstraint {
		return corev1.TopologySpreadConstraint{
			MaxSkew:           1,
			TopologyKey:       key,
			WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector:     &metav1.LabelSelector{MatchLabels: SelectorLabels(ep)},
			MatchLabelKeys:    []string{appsv1.DefaultDeploymentUniqueLabelKey},
		}
	}
	return []corev1.TopologySpreadConstraint{
		constraint(corev1.LabelTopologyZone),
		constraint(corev1.LabelHostname),
	}
}

func intStr(name string) intstr.IntOrString { return intstr.FromString(name) }

func intInt(i int) intstr.IntOrString { return intstr.FromInt32(int32(i)) }
