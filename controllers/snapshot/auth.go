package snapshot

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
)

// podNameExtra is the TokenReview extra field naming the pod a bound token was issued for.
const podNameExtra = "authentication.kubernetes.io/pod-name"

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create

// Identity is an authenticated proxy replica.
type Identity struct {
	EdgeProxy string
	// Pod is the pod the token is bound to, when the token says (projected tokens do).
	Pod string
}

// Authenticator checks a proxy's projected ServiceAccount token with TokenReview and maps the
// ServiceAccount to the one EdgeProxy whose fleet runs under it: render.ObjectName(ep) in
// ep.spec.proxyNamespace. Anything else is refused.
type Authenticator struct {
	// Client creates TokenReviews and lists EdgeProxies (from the cache).
	Client client.Client
	// Audience the token must be issued for: render.TokenAudience.
	Audience string
}

// Authenticate reads "authorization: Bearer <token>" from the incoming gRPC metadata.
func (a *Authenticator) Authenticate(ctx context.Context) (Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var token string
	for _, v := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			token = strings.TrimSpace(t)
		}
	}
	if token == "" {
		return Identity{}, status.Error(codes.Unauthenticated, "no bearer token")
	}
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{a.Audience}}}
	if err := a.Client.Create(ctx, tr); err != nil {
		return Identity{}, status.Errorf(codes.Unavailable, "token review: %v", err)
	}
	if !tr.Status.Authenticated || !slices.Contains(tr.Status.Audiences, a.Audience) {
		return Identity{}, status.Error(codes.Unauthenticated, "token not valid for audience "+a.Audience)
	}
	rest, ok := strings.CutPrefix(tr.Status.User.Username, "system:serviceaccount:")
	ns, name, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return Identity{}, status.Error(codes.PermissionDenied, "not a ServiceAccount")
	}
	var eps edgev1alpha1.EdgeProxyList
	if err := a.Client.List(ctx, &eps); err != nil {
		return Identity{}, status.Errorf(codes.Unavailable, "list edgeproxies: %v", err)
	}
	var match []string
	for i := range eps.Items {
		ep := &eps.Items[i]
		if ep.DeletionTimestamp.IsZero() && ep.Spec.ProxyNamespace == ns && render.ObjectName(ep) == name {
			match = append(match, ep.Name)
		}
	}
	if len(match) != 1 {
		return Identity{}, status.Error(codes.PermissionDenied,
			fmt.Sprintf("ServiceAccount %s/%s is not the proxy identity of exactly one EdgeProxy", ns, name))
	}
	id := Identity{EdgeProxy: match[0]}
	if pods := tr.Status.User.Extra[podNameExtra]; len(pods) == 1 {
		id.Pod = pods[0]
	}
	return id, nil
}
