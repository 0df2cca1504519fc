// Package snapshotclient is the proxy's side of config delivery: it connects to the operator over
// TLS, authenticates with the pod's projected ServiceAccount token, applies every snapshot it is
// sent (validate → routing.Build → swap; endpoint deltas go to the endpoint store only) and answers
// each with ACK or NACK. When the operator is gone it keeps serving the last snapshot and
// reconnects with backoff, announcing the version it serves. Only the operator's leader serves
// streams; a replica that is not answers snapshotv1.NotLeaderMessage and the client dials again.
package snapshotclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	snapshotv1 "github.com/portico-dev/portico/api/snapshot/v1"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// Sink receives what the operator says to serve (server.Dataplane implements it).
type Sink interface {
	SetRoutes(*routing.Table, tlsstore.Keypairs, proxy.Settings)
	SetEndpoints(upstream.Endpoints)
}

// Options of a Client.
type Options struct {
	// Address of the operator's snapshot service, host:port.
	Address string
	// CAFile (or CAPEM) is the bundle the operator's certificate must chain to.
	CAFile string
	CAPEM  []byte
	// TokenFile is the projected ServiceAccount token, read again at every connection (the
	// kubelet rotates it).
	TokenFile string
	// EdgeProxy, PodName, NodeName go into Hello (optional).
	EdgeProxy, PodName, NodeName string
	// Settings are the defaults the EdgeProxy may override (trusted hops from a flag).
	Settings proxy.Settings
	// MinBackoff and MaxBackoff bound the reconnect delay (200 ms, 30 s).
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	// Now is the clock for certificate validity; time.Now when nil.
	Now func() time.Time
	// Check, when set, is one more validation of a decoded snapshot; an error NACKs it (tests).
	Check func(*Decoded) error
	// OnApply, when set, is told the outcome of every message applied.
	OnApply func(Apply)
}

// Apply is the outcome of one message from the operator.
type Apply struct {
	Version string
	// Full is true for a snapshot, false for an endpoints delta.
	Full bool
	// Rebuilt is true when a new routing table went live.
	Rebuilt bool
	// Err is the NACK reason.
	Err  error
	Took time.Duration
}

// Stats count what the client did.
type Stats struct {
	Connects, Snapshots, TableBuilds, Deltas, Nacks int64
	// NotLeader counts streams refused by operator replicas that are not the leader.
	NotLeader int64
}

// Client is one proxy replica's config stream.
type Client struct {
	opts Options
	sink Sink
	log  *slog.Logger
	mu   sync.Mutex // the applied state below
	ver  string
	eps  upstream.Endpoints
	// routes are the last snapshot's decoded routes (used by the stream goroutine only).
	routes RouteCache
	stats  struct{ connects, snapshots, builds, deltas, nacks, notLeader atomic.Int64 }
}

// New prepares a client; Run runs it.
func New(o Options, sink Sink) *Client {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Client{opts: o, sink: sink, log: o.Logger.With("operator", o.Address)}
}

// Version is the snapshot version live ("" before the first one).
func (c *Client) Version() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ver
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	return Stats{Connects: c.stats.connects.Load(), Snapshots: c.stats.snapshots.Load(),
		TableBuilds: c.stats.builds.Load(), Deltas: c.stats.deltas.Load(), Nacks: c.stats.nacks.Load(),
		NotLeader: c.stats.notLeader.Load()}
}

// Run connects and reconnects until ctx ends. The sink keeps serving whatever was last applied.
func (c *Client) Run(ctx context.Context) error {
	creds, err := c.credentials()
	if err != nil {
		return err
	}
	dial := func() (*grpc.ClientConn, error) {
		// No service config: the operator publishes none, and looking for one (a DNS TXT query the
		// pod's resolver may answer only after its timeout) delayed every new connection by seconds.
		conn, err := grpc.NewClient(c.opts.Address, grpc.WithTransportCredentials(creds), grpc.WithDisableServiceConfig(),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
		if err != nil {
			return nil, fmt.Errorf("operator address %q: %w", c.opts.Address, err)
		}
		return conn, nil
	}
	conn, err := dial()
	if err != nil {
		return err
	}
	defer func() { conn.Close() }()
	backoff, notLeaderBackoff := c.opts.MinBackoff, c.opts.MinBackoff
	for {
		got, err := c.stream(ctx, snapshotv1.NewSnapshotServiceClient(conn))
		if ctx.Err() != nil {
			return nil
		}
		if got {
			backoff, notLeaderBackoff = c.opts.MinBackoff, c.opts.MinBackoff
		}
		wait := backoff
		if notLeader(err) {
			// Only the leader serves. The connection is pinned to the replica that said no: drop
			// it, so the next dial can land on another one, and try again soon (the leader is
			// there, or will be within a lease duration), without the failure backoff.
			c.stats.notLeader.Add(1)
			conn.Close()
			if conn, err = dial(); err != nil {
				return err
			}
			wait = notLeaderBackoff
			notLeaderBackoff = min(notLeaderBackoff*2, maxNotLeaderBackoff)
			c.log.Info("operator replica is not the leader; dialling again", "retry_in", wait.String())
		} else {
			c.log.Warn("operator stream ended; serving the last snapshot and reconnecting",
				"error", err, "version", c.Version(), "retry_in", backoff.String())
			backoff = min(backoff*2, c.opts.MaxBackoff)
		}
		select {
		case <-time.After(wait/2 + rand.N(wait/2+1)):
		case <-ctx.Done():
			return nil
		}
	}
}

// maxNotLeaderBackoff caps the redial delay while replicas answer "not the leader" (during an
// election, or until the Service's load balancing lands on the leader).
const maxNotLeaderBackoff = 2 * time.Second

// notLeader reports whether a stream was refused by an operator replica that is not the leader.
func notLeader(err error) bool {
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Unavailable && s.Message() == snapshotv1.NotLeaderMessage
}

func (c *Client) credentials() (credentials.TransportCredentials, error) {
	pemBytes := c.opts.CAPEM
	if c.opts.CAFile != "" {
		b, err := os.ReadFile(c.opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("operator CA: %w", err)
		}
		pemBytes = b
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("operator CA: no certificate in the CA bundle (--operator-ca-file)")
	}
	return credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), nil
}

// stream runs one connection; got reports whether a message arrived (resets the backoff).
func (c *Client) stream(ctx context.Context, client snapshotv1.SnapshotServiceClient) (got bool, err error) {
	token, err := os.ReadFile(c.opts.TokenFile)
	if err != nil {
		return false, fmt.Errorf("read token: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(token)))
	st, err := client.Stream(ctx)
	if err != nil {
		return false, err
	}
	c.stats.connects.Add(1)
	hello := &snapshotv1.Hello{EdgeProxy: c.opts.EdgeProxy, PodName: c.opts.PodName, NodeName: c.opts.NodeName, LastVersion: c.Version()}
	if err := st.Send(&snapshotv1.ProxyMessage{Message: &snapshotv1.ProxyMessage_Hello{Hello: hello}}); err != nil {
		// io.EOF when the server ended the stream first (a follower refusing it): the status,
		// NotLeaderMessage say, is what Recv returns.
		if _, rerr := st.Recv(); rerr != nil {
			return false, rerr
		}
		return false, err
	}
	for {
		m, err := st.Recv()
		if err != nil {
			return got, err
		}
		if !got {
			got = true
			c.log.Info("connected to the operator", "version", c.Version())
		}
		var reply *snapshotv1.ProxyMessage
		switch {
		case m.GetSnapshot() != nil:
			reply = c.applySnapshot(m.GetSnapshot())
		case m.GetEndpointsDelta() != nil:
			c.applyDelta(m.GetEndpointsDelta())
		}
		if reply != nil {
			if err := st.Send(reply); err != nil {
				return got, err
			}
		}
	}
}

func (c *Client) applySnapshot(s *snapshotv1.Snapshot) *snapshotv1.ProxyMessage {
	start := time.Now()
	c.stats.snapshots.Add(1)
	d, err := decode(s, c.opts.Settings, c.opts.Now(), &c.routes)
	if err == nil && c.opts.Check != nil {
		err = c.opts.Check(d)
	}
	if err != nil {
		c.stats.nacks.Add(1)
		c.log.Error("snapshot refused; the previous configuration keeps serving", "version", s.Version, "error", err)
		c.report(Apply{Version: s.Version, Full: true, Err: err, Took: time.Since(start)})
		return &snapshotv1.ProxyMessage{Message: &snapshotv1.ProxyMessage_Nack{Nack: &snapshotv1.Nack{Version: s.Version, Error: err.Error()}}}
	}
	c.mu.Lock()
	// Endpoints first, so that a new route's backends exist when it goes live.
	c.eps = d.Endpoints
	c.sink.SetEndpoints(maps.Clone(d.Endpoints))
	rebuilt := c.ver != d.Version // a resumed stream resends the version already live: no swap
	if rebuilt {
		c.sink.SetRoutes(d.Table, d.Keypairs, d.Settings)
		c.ver = d.Version
		c.stats.builds.Add(1)
	}
	c.mu.Unlock()
	c.log.Info("snapshot applied", "version", d.Version, "routes", len(d.Routes), "backends", len(d.Endpoints),
		"routes_rebuilt", rebuilt, "took", time.Since(start).String())
	c.report(Apply{Version: d.Version, Full: true, Rebuilt: rebuilt, Took: time.Since(start)})
	return &snapshotv1.ProxyMessage{Message: &snapshotv1.ProxyMessage_Ack{Ack: &snapshotv1.Ack{Version: d.Version}}}
}

// applyDelta changes the endpoint store only. A backend whose endpoints do not parse keeps its
// previous ones (and is logged): one bad slice must not stop the others.
func (c *Client) applyDelta(d *snapshotv1.EndpointsDelta) {
	start := time.Now()
	c.mu.Lock()
	next := maps.Clone(c.eps)
	if next == nil {
		next = upstream.Endpoints{}
	}
	for _, be := range d.Updated {
		k, list, err := backend(be)
		if err != nil {
			c.log.Error("endpoints update refused", "error", err)
			continue
		}
		next[k] = list
	}
	for _, k := range d.Removed {
		delete(next, routing.BackendKey{Namespace: k.GetNamespace(), Name: k.GetService(), Port: k.GetPort()})
	}
	c.eps = next
	c.sink.SetEndpoints(maps.Clone(next))
	c.mu.Unlock()
	c.stats.deltas.Add(1)
	c.report(Apply{Version: d.Version, Took: time.Since(start)})
}

func (c *Client) report(a Apply) {
	if c.opts.OnApply != nil {
		c.opts.OnApply(a)
	}
}
