package snapshot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	snapshotv1 "github.com/portico-dev/portico/api/snapshot/v1"
	"github.com/portico-dev/portico/dataplane/routing"
)

// ServerOptions configure the snapshot server.
type ServerOptions struct {
	// BindAddress is where it listens (":18000").
	BindAddress string
	// CASecret is the Secret holding the operator's CA (created when missing).
	CASecret types.NamespacedName
	// DNSNames and IPs go into the serving certificate: the snapshot Service's names.
	DNSNames []string
	IPs      []net.IP
	// Reader reads the CA Secret (uncached: the operator caches Secrets' metadata only); Writer creates it.
	Reader client.Reader
	Writer client.Writer
	Auth   *Authenticator
	Hub    *Hub
	// Tracker records ACKs and NACKs.
	Tracker *Tracker
	Log     logr.Logger
	// Elected is closed once this replica leads (manager.Elected(); nil serves at once). Until then
	// streams are refused with snapshotv1.NotLeaderMessage.
	Elected <-chan struct{}
}

// Server streams snapshots to authenticated proxies. It listens in every operator replica (a manager
// Runnable that does not need leader election, so the snapshot Service always has ready endpoints)
// but serves streams only on the leader, the one replica that writes status: Programmed then
// counts every connected proxy's ACKs. Other replicas refuse with snapshotv1.NotLeaderMessage, and
// the proxy dials again until the Service gives it the leader. A leader that loses its lease exits,
// which closes its streams.
type Server struct {
	snapshotv1.UnimplementedSnapshotServiceServer
	opts  ServerOptions
	mu    sync.Mutex
	addr  net.Addr
	ca    *CA
	ready chan struct{}
}

// NewServer prepares a Server; the manager starts it.
func NewServer(o ServerOptions) *Server { return &Server{opts: o, ready: make(chan struct{})} }

// NeedLeaderElection: every replica listens (Stream refuses until elected).
func (s *Server) NeedLeaderElection() bool { return false }

// Addr is the address the server listens on, once it does (tests bind port 0).
func (s *Server) Addr(ctx context.Context) (string, error) {
	select {
	case <-s.ready:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.addr.String(), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// CAPEM is the CA bundle proxies verify the server with (once the server runs).
func (s *Server) CAPEM() []byte {
	<-s.ready
	return s.ca.CertPEM
}

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	ca, err := EnsureCA(ctx, s.opts.Reader, s.opts.Writer, s.opts.CASecret)
	if err != nil {
		return err
	}
	cert, err := ca.ServingCertificate(s.opts.DNSNames, s.opts.IPs, time.Now())
	if err != nil {
		return fmt.Errorf("snapshot server certificate: %w", err)
	}
	lis, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("snapshot server: %w", err)
	}
	gs := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(1<<20),
		grpc.MaxSendMsgSize(256<<20),
	)
	snapshotv1.RegisterSnapshotServiceServer(gs, s)
	s.mu.Lock()
	s.addr, s.ca = lis.Addr(), ca
	s.mu.Unlock()
	close(s.ready)
	s.opts.Log.Info("snapshot server listening", "address", lis.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case <-ctx.Done():
		// Streams are endless: no graceful stop; proxies reconnect to another replica.
		gs.Stop()
		return nil
	case err := <-errc:
		return err
	}
}

// Stream serves one proxy replica: authenticate, read Hello, then send the latest snapshot (full
// on a new version, a delta when only endpoints changed) whenever it changes, while recording the
// replica's ACKs and NACKs.
func (s *Server) Stream(stream grpc.BidiStreamingServer[snapshotv1.ProxyMessage, snapshotv1.OperatorMessage]) error {
	ctx := stream.Context()
	if s.opts.Elected != nil {
		select {
		case <-s.opts.Elected:
		default:
			return status.Error(codes.Unavailable, snapshotv1.NotLeaderMessage)
		}
	}
	id, err := s.opts.Auth.Authenticate(ctx)
	if err != nil {
		s.opts.Log.Info("proxy refused", "error", err.Error())
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	switch {
	case hello == nil:
		return status.Error(codes.InvalidArgument, "the first message must be Hello")
	case hello.EdgeProxy != "" && hello.EdgeProxy != id.EdgeProxy:
		return status.Errorf(codes.PermissionDenied, "this identity serves EdgeProxy %q, not %q", id.EdgeProxy, hello.EdgeProxy)
	}
	pod := id.Pod
	if pod == "" {
		pod = hello.PodName
	}
	log := s.opts.Log.WithValues("edgeproxy", id.EdgeProxy, "pod", pod)
	rid := s.opts.Tracker.Connected(id.EdgeProxy, pod)
	defer s.opts.Tracker.Disconnected(id.EdgeProxy, rid)
	log.Info("proxy connected", "lastVersion", hello.LastVersion)

	errc := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			switch {
			case m.GetAck() != nil:
				s.opts.Tracker.Acked(id.EdgeProxy, rid, m.GetAck().Version)
			case m.GetNack() != nil:
				n := m.GetNack()
				log.Info("proxy refused snapshot", "version", n.Version, "reason", n.Error)
				s.opts.Tracker.Nacked(id.EdgeProxy, rid, n.Version, n.Error)
			}
		}
	}()

	var sent *Snapshot
	var sentRev uint64
	for {
		snap, rev, changed := s.opts.Hub.Current(id.EdgeProxy)
		if snap != nil && rev != sentRev {
			msg := fullMessage(snap, rev)
			if sent != nil && sent.Version == snap.Version {
				up, rm := DiffEndpoints(sent.Endpoints, snap.Endpoints)
				msg = &snapshotv1.OperatorMessage{Message: &snapshotv1.OperatorMessage_EndpointsDelta{EndpointsDelta: &snapshotv1.EndpointsDelta{
					Version: snap.Version, EndpointsRevision: rev, Updated: up, Removed: rm}}}
			}
			if msg.GetSnapshot() != nil {
				s.opts.Tracker.Sent(id.EdgeProxy, rid, snap.Version)
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
			sent, sentRev = snap, rev
		}
		select {
		case <-changed:
		case err := <-errc:
			log.Info("proxy disconnected", "reason", err.Error())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fullMessage is the snapshot with all its endpoints; the config's byte slices are shared, never copied.
func fullMessage(s *Snapshot, rev uint64) *snapshotv1.OperatorMessage {
	keys := make([]routing.BackendKey, 0, len(s.Endpoints))
	for k := range s.Endpoints {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b routing.BackendKey) int { return compareKeys(WireKey(a), WireKey(b)) })
	eps := make([]*snapshotv1.BackendEndpoints, 0, len(keys))
	for _, k := range keys {
		eps = append(eps, s.Endpoints[k])
	}
	c := s.Config
	return &snapshotv1.OperatorMessage{Message: &snapshotv1.OperatorMessage_Snapshot{Snapshot: &snapshotv1.Snapshot{
		Version: c.Version, EdgeProxy: c.EdgeProxy, TenantRoutes: c.TenantRoutes, TlsKeypairs: c.TlsKeypairs,
		Endpoints: eps, EndpointsRevision: rev}}}
}
