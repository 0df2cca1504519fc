package certificates

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// applyOverrides honours the per-Ingress annotations cert-manager's ingress-shim documents that map
// onto a Certificate field one to one: duration, renew-before, usages, private-key algorithm,
// encoding, size and rotation policy, revision-history-limit and secret-template. A value that does
// not parse is ignored and named in the returned notices; the Certificate is still created.
func applyOverrides(spec *cmv1.CertificateSpec, a map[string]string) []string {
	var notices []string
	bad := func(key, v string, err error) {
		notices = append(notices, fmt.Sprintf("annotation %s=%q ignored: %v", key, v, err))
	}
	duration := func(key string) *metav1.Duration {
		v, ok := a[key]
		if !ok {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err == nil && d <= 0 {
			err = fmt.Errorf("must be positive")
		}
		if err != nil {
			bad(key, v, err)
			return nil
		}
		return &metav1.Duration{Duration: d}
	}
	spec.Duration = duration(cmv1.DurationAnnotationKey)
	spec.RenewBefore = duration(cmv1.RenewBeforeAnnotationKey)

	if v, ok := a[cmv1.UsagesAnnotationKey]; ok {
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				spec.Usages = append(spec.Usages, cmv1.KeyUsage(u))
			}
		}
	}
	if v, ok := a[cmv1.RevisionHistoryLimitAnnotationKey]; ok {
		if n, err := strconv.ParseInt(v, 10, 32); err != nil || n < 1 {
			bad(cmv1.RevisionHistoryLimitAnnotationKey, v, fmt.Errorf("want an integer of at least 1"))
		} else {
			spec.RevisionHistoryLimit = ptr(int32(n))
		}
	}

	pk := &cmv1.CertificatePrivateKey{}
	if v, ok := a[cmv1.PrivateKeyAlgorithmAnnotationKey]; ok {
		switch alg := cmv1.PrivateKeyAlgorithm(v); alg {
		case cmv1.RSAKeyAlgorithm, cmv1.ECDSAKeyAlgorithm, cmv1.Ed25519KeyAlgorithm:
			pk.Algorithm = alg
		default:
			bad(cmv1.PrivateKeyAlgorithmAnnotationKey, v, fmt.Errorf("want RSA, ECDSA or Ed25519"))
		}
	}
	if v, ok := a[cmv1.PrivateKeyEncodingAnnotationKey]; ok {
		switch enc := cmv1.PrivateKeyEncoding(v); enc {
		case cmv1.PKCS1, cmv1.PKCS8:
			pk.Encoding = enc
		default:
			bad(cmv1.PrivateKeyEncodingAnnotationKey, v, fmt.Errorf("want PKCS1 or PKCS8"))
		}
	}
	if v, ok := a[cmv1.PrivateKeySizeAnnotationKey]; ok {
		if n, err := strconv.Atoi(v); err != nil || n < 1 {
			bad(cmv1.PrivateKeySizeAnnotationKey, v, fmt.Errorf("want a positive integer"))
		} else {
			pk.Size = n
		}
	}
	if v, ok := a[cmv1.PrivateKeyRotationPolicyAnnotationKey]; ok {
		switch p := cmv1.PrivateKeyRotationPolicy(v); p {
		case cmv1.RotationPolicyNever, cmv1.RotationPolicyAlways:
			pk.RotationPolicy = p
		default:
			bad(cmv1.PrivateKeyRotationPolicyAnnotationKey, v, fmt.Errorf("want Never or Always"))
		}
	}
	if *pk != (cmv1.CertificatePrivateKey{}) {
		spec.PrivateKey = pk
	}

	if v, ok := a[secretTemplate]; ok {
		t := &cmv1.CertificateSecretTemplate{}
		dec := json.NewDecoder(strings.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(t); err != nil {
			bad(secretTemplate, v, err)
		} else if len(t.Annotations)+len(t.Labels) > 0 {
			spec.SecretTemplate = t
		}
	}
	return notices
}
