package harness

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// containerEnv resolves a container's env and envFrom as the kubelet does: literal values with
// $(VAR) expansion, the downward API (fieldRef, resourceFieldRef), Secret and ConfigMap keys.
func containerEnv(ctx context.Context, c client.Client, pod *corev1.Pod, ct *corev1.Container, podIP, hostIP string) ([]string, error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, from := range ct.EnvFrom {
		data := map[string]string{}
		switch {
		case from.ConfigMapRef != nil:
			cm := &corev1.ConfigMap{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: from.ConfigMapRef.Name}, cm); err != nil {
				if from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
					continue
				}
				return nil, err
			}
			data = cm.Data
		case from.SecretRef != nil:
			s := &corev1.Secret{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: from.SecretRef.Name}, s); err != nil {
				if from.SecretRef.Optional != nil && *from.SecretRef.Optional {
					continue
				}
				return nil, err
			}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		for k, v := range data {
			set(from.Prefix+k, v)
		}
	}
	for _, e := range ct.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vals))
			continue
		}
		v, err := envValueFrom(ctx, c, pod, ct, e.ValueFrom, podIP, hostIP)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name, err)
		}
		set(e.Name, v)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

func envValueFrom(ctx context.Context, c client.Client, pod *corev1.Pod, ct *corev1.Container, from *corev1.EnvVarSource, podIP, hostIP string) (string, error) {
	switch {
	case from.FieldRef != nil:
		path := from.FieldRef.FieldPath
		switch path {
		case "metadata.name":
			return pod.Name, nil
		case "metadata.namespace":
			return pod.Namespace, nil
		case "metadata.uid":
			return string(pod.UID), nil
		case "spec.nodeName":
			return pod.Spec.NodeName, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, nil
		case "status.podIP", "status.podIPs":
			return podIP, nil
		case "status.hostIP", "status.hostIPs":
			return hostIP, nil
		}
		for prefix, m := range map[string]map[string]string{"metadata.labels['": pod.Labels, "metadata.annotations['": pod.Annotations} {
			if strings.HasPrefix(path, prefix) && strings.HasSuffix(path, "']") {
				return m[strings.TrimSuffix(strings.TrimPrefix(path, prefix), "']")], nil
			}
		}
		return "", fmt.Errorf("fieldRef %q not supported by the harness", path)
	case from.ResourceFieldRef != nil:
		r := from.ResourceFieldRef
		list := ct.Resources.Limits
		name := strings.TrimPrefix(r.Resource, "limits.")
		if strings.HasPrefix(r.Resource, "requests.") {
			list, name = ct.Resources.Requests, strings.TrimPrefix(r.Resource, "requests.")
		}
		q, ok := list[corev1.ResourceName(name)]
		if !ok {
			return "0", nil // the kubelet would use node allocatable; none here
		}
		div := int64(1)
		if !r.Divisor.IsZero() {
			div = r.Divisor.Value()
		}
		if name == "cpu" {
			milli := int64(1000)
			if !r.Divisor.IsZero() {
				milli = r.Divisor.MilliValue()
			}
			return strconv.FormatInt((q.MilliValue()+milli-1)/milli, 10), nil
		}
		return strconv.FormatInt((q.Value()+div-1)/div, 10), nil
	case from.SecretKeyRef != nil:
		s := &corev1.Secret{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: from.SecretKeyRef.Name}, s); err != nil {
			return "", err
		}
		return string(s.Data[from.SecretKeyRef.Key]), nil
	case from.ConfigMapKeyRef != nil:
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: from.ConfigMapKeyRef.Name}, cm); err != nil {
			return "", err
		}
		return cm.Data[from.ConfigMapKeyRef.Key], nil
	}
	return "", fmt.Errorf("unsupported valueFrom")
}

// commandLine applies Docker's ENTRYPOINT/CMD rules and $(VAR) expansion to a container.
func commandLine(img Image, ct *corev1.Container, env []string) ([]string, error) {
	vals := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vals[k] = v
	}
	words, args := append([]string{}, img.Entrypoint...), img.Cmd
	if len(ct.Command) > 0 {
		bin, ok := img.Commands[ct.Command[0]]
		if !ok {
			return nil, fmt.Errorf("command %q: the harness does not know this path in image %s", ct.Command[0], ct.Image)
		}
		words, args = []string{bin}, nil
		for _, a := range ct.Command[1:] {
			words = append(words, expand(a, vals))
		}
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("image %s has no entrypoint", ct.Image)
	}
	if len(ct.Args) > 0 {
		args = nil
		for _, a := range ct.Args {
			args = append(args, expand(a, vals))
		}
	}
	return append(words, args...), nil
}

// expand replaces $(VAR) with its value (unknown references stay as written) and $$ with $.
func expand(s string, vals map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) {
			if s[i+1] == '$' {
				b.WriteByte('$')
				i++
				continue
			}
			if s[i+1] == '(' {
				if end := strings.IndexByte(s[i:], ')'); end > 0 {
					if v, ok := vals[s[i+2:i+end]]; ok {
						b.WriteString(v)
						i += end
						continue
					}
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
