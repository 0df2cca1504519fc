package translate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// annotationPrefix is ingress-nginx's default annotation prefix.
const annotationPrefix = "nginx.ingress.kubernetes.io/"

// AnnotationSupport is one row of the migration table: an ingress-nginx annotation and what
// Portico does with it.
type AnnotationSupport struct {
	Annotation string
	Behaviour  Behaviour
	Portico    string
}

// NginxAnnotations lists every ingress-nginx annotation Portico knows, in name order, with its
// behaviour. docs/ingress-nginx-migration.md is generated from it.
func NginxAnnotations() []AnnotationSupport {
	out := make([]AnnotationSupport, len(nginxAnnotations))
	for i, a := range nginxAnnotations {
		out[i] = AnnotationSupport{Annotation: annotationPrefix + a.name, Behaviour: a.behaviour, Portico: a.portico}
	}
	return out
}

// nginxAnnotation is one row of the table in annotations_table.go, the single source of truth for
// both the translation and the migration doc.
type nginxAnnotation struct {
	// name without the prefix.
	name string
	// behaviour in the usual case; parse reports values that behave otherwise.
	behaviour Behaviour
	// portico says what Portico does, for the migration doc; it is also the message of the notice
	// or error of an annotation without parse.
	portico string
	// parse reads the value into the config. Without it, an Exact annotation is read by another
	// one's parse (cors-max-age by enable-cors), an Approximated or Ignored one yields a notice, a
	// Refused one an error.
	parse func(p *annotationParser, value string)
}

// nginxConfig is what the annotations of one Ingress ask for, ready to be laid onto its rules.
type nginxConfig struct {
	useRegex bool
	// rewriteTarget is the target with nginx's $1..$9 turned into RE2's ${1}..${9}; nil when unset.
	rewriteTarget      *string
	rewriteHasCaptures bool
	appRoot            string
	// redirect, when set, replaces every backend of the Ingress.
	redirect         *gwapiv1.HTTPRequestRedirectFilter
	fromToWWW        bool
	serverAliases    []edgev1alpha1.Hostname
	upstreamVhost    string
	xForwardedPrefix string
	// requestHeaders and responseHeaders come from an allow-listed configuration-snippet.
	requestHeaders  *gwapiv1.HTTPHeaderFilter
	responseHeaders *gwapiv1.HTTPHeaderFilter
	timeouts        *gwapiv1.HTTPRouteTimeouts
	retry           *edgev1alpha1.RetryPolicy
	policy          edgev1alpha1.RoutePolicy
}

// edgeLimits are the EdgeProxy settings some annotations are measured against.
type edgeLimits struct {
	maxBodyBytes        int64
	requestTimeout      time.Duration
	redirectHTTPToHTTPS bool
}

// defaultRequestTimeout is the EdgeProxy's request timeout when it sets none (routing's default).
const defaultRequestTimeout = 60 * time.Second

func limitsOf(ep *edgev1alpha1.EdgeProxy, name string) edgeLimits {
	l := edgeLimits{maxBodyBytes: edgev1alpha1.DefaultMaxRequestBodyBytes, requestTimeout: defaultRequestTimeout}
	if ep == nil || ep.Name != name {
		return l
	}
	if t := ep.Spec.Traffic; t != nil {
		if t.MaxRequestBodySize != nil && t.MaxRequestBodySize.Value() > 0 {
			l.maxBodyBytes = t.MaxRequestBodySize.Value()
		}
		if t.RequestTimeout != nil && t.RequestTimeout.Duration > 0 {
			l.requestTimeout = t.RequestTimeout.Duration
		}
	}
	if ep.Spec.TLS != nil {
		l.redirectHTTPToHTTPS = ep.Spec.TLS.RedirectHTTPToHTTPS
	}
	return l
}

// annotationParser reads the ingress-nginx annotations of one Ingress.
type annotationParser struct {
	ing     *networkingv1.Ingress
	limits  edgeLimits
	cfg     nginxConfig
	errs    field.ErrorList
	notices *noticeList
	// current is the annotation being parsed, without the prefix.
	current string
}

func parseNginxAnnotations(ing *networkingv1.Ingress, limits edgeLimits, notices *noticeList) (nginxConfig, field.ErrorList) {
	p := &annotationParser{ing: ing, limits: limits, notices: notices}
	p.cfg.policy.Websocket = true // ingress-nginx upgrades connections on every location
	keys := make([]string, 0, len(ing.Annotations))
	for k := range ing.Annotations {
		if strings.HasPrefix(k, annotationPrefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, key := range keys {
		p.current = strings.TrimPrefix(key, annotationPrefix)
		value := ing.Annotations[key]
		a := lookupAnnotation(p.current)
		switch {
		case a == nil:
			p.notice(Ignored, "unknown ingress-nginx annotation; Portico ignores it")
		case a.parse != nil:
			a.parse(p, value)
		case a.behaviour == Refused:
			p.refuse(a.portico)
		case a.behaviour == Approximated || a.behaviour == Ignored:
			p.notice(a.behaviour, a.portico)
		}
	}
	return p.cfg, p.errs
}

func lookupAnnotation(name string) *nginxAnnotation {
	i, ok := slices.BinarySearchFunc(nginxAnnotations, name, func(a nginxAnnotation, n string) int {
		return strings.Compare(a.name, n)
	})
	if !ok {
		return nil
	}
	return &nginxAnnotations[i]
}

// value returns another annotation of the Ingress, by name without the prefix.
func (p *annotationParser) value(name string) (string, bool) {
	v, ok := p.ing.Annotations[annotationPrefix+name]
	return v, ok
}

func annotationPath(name string) *field.Path {
	return field.NewPath("metadata", "annotations").Key(annotationPrefix + name)
}

func (p *annotationParser) path() *field.Path { return annotationPath(p.current) }

func (p *annotationParser) invalid(value, why string) {
	p.errs = append(p.errs, field.Invalid(p.path(), value, why))
}

func (p *annotationParser) refuse(why string) {
	p.errs = append(p.errs, field.Forbidden(p.path(), why))
}

func (p *annotationParser) notice(b Behaviour, msg string) {
	p.notices.add(Notice{Annotation: annotationPrefix + p.current, Behaviour: b, Message: msg})
}

// boolValue parses the annotation as ingress-nginx does (strconv.ParseBool); ok is false after an error.
func (p *annotationParser) boolValue(value string) (v, ok bool) {
	b, err := parseBool(value)
	if err != nil {
		p.invalid(value, `must be "true" or "false"`)
		return false, false
	}
	return b, true
}

// secondsValue parses a positive whole number of seconds, the unit of ingress-nginx's timeouts.
func (p *annotationParser) secondsValue(value string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
	if err != nil || n <= 0 || n > maxSeconds {
		p.invalid(value, fmt.Sprintf("must be a whole number of seconds between 1 and %d", maxSeconds))
		return 0, false
	}
	return n, true
}

// maxSeconds bounds timeouts and cookie lifetimes (a year) so that durations never overflow.
const maxSeconds = 365 * 24 * 3600

func parseBool(v string) (bool, error) { return strconv.ParseBool(strings.TrimSpace(v)) }

// splitList splits a comma-separated annotation value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// gatewayDuration formats whole seconds the way the Gateway API's Duration pattern accepts
// (at most five digits per unit).
func gatewayDuration(seconds int64) gwapiv1.Duration {
	if seconds < 100000 {
		return gwapiv1.Duration(strconv.FormatInt(seconds, 10) + "s")
	}
	h, rest := seconds/3600, seconds%3600
	return gwapiv1.Duration(fmt.Sprintf("%dh%dm%ds", h, rest/60, rest%60))
}

// noticeList collects notices without duplicates.
type noticeList struct{ list []Notice }

func (l *noticeList) add(n Notice) {
	if !slices.Contains(l.list, n) {
		l.list = append(l.list, n)
	}
}

// sorted returns the notices by annotation, then message, so that Events and conditions are stable.
func (l *noticeList) sorted() []Notice {
	out := slices.Clone(l.list)
	slices.SortFunc(out, func(a, b Notice) int {
		if c := strings.Compare(a.Annotation, b.Annotation); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	return out
}
