package server

import (
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// Dataplane is where a configuration source (files today, the operator's snapshot stream next)
// delivers what the proxy serves. Routes and endpoints travel separately: an endpoint change
// swaps one map and never rebuilds the routing table.
type Dataplane struct {
	Proxy     *proxy.Proxy
	TLS       *tlsstore.Store
	Endpoints *upstream.Store
	// OnRoutes, when set, is told about every table made live, after the swap (metrics, and the
	// EdgeProxy's observability settings).
	OnRoutes func(*routing.Table, tlsstore.Keypairs, proxy.Settings)
}

// SetRoutes makes a new table live, with the key pairs its TLS blocks name and the EdgeProxy's
// settings. The certificate set goes first, so that by the time a request can route to a new
// TLS host, its handshake already works.
func (d *Dataplane) SetRoutes(t *routing.Table, keypairs tlsstore.Keypairs, s proxy.Settings) {
	d.TLS.Set(t, keypairs)
	d.Proxy.SetTable(t, s)
	if d.OnRoutes != nil {
		d.OnRoutes(t, keypairs, s)
	}
}

// SetEndpoints replaces every backend's endpoints.
func (d *Dataplane) SetEndpoints(eps upstream.Endpoints) {
	d.Endpoints.Set(eps)
}
