// Package leasefence keeps an operator replica that may have lost its leadership from writing.
//
// Leader election alone does not stop a leader that was paused (a frozen VM, a long GC or
// SIGSTOP, a partition) from finishing the writes it had started once it runs again: its
// elector only notices the lost lease at its next renewal, and by then another replica may lead
// and write the same objects (two status writers at once). A Fence records when this replica last
// renewed its lease (by wrapping the resource lock) and refuses every write of the manager's
// client once that renewal is older than a bound below the lease duration: a replica that was
// stopped for longer than the lease writes nothing until it has renewed again, which it can only do
// if nobody took over (else its elector gives up and the process exits).
package leasefence

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Fence says whether writes are safe. Its zero value is not usable; see New.
type Fence struct {
	maxAge time.Duration
	now    func() time.Time

	events lateProvider

	mu sync.Mutex
	// renewed is when the request of the last successful renewal (or acquisition) was sent; zero
	// until this replica first leads: until then only the runnables that need no leadership run,
	// and their writes (the snapshot CA, say) are not fenced.
	renewed time.Time
}

// New returns a Fence that refuses writes once the last renewal is older than maxAge. maxAge must
// be below the lease duration (the other replicas wait that long after the last renewal they saw
// before they take over); the renew deadline is a good value.
func New(maxAge time.Duration) *Fence {
	return &Fence{maxAge: maxAge, now: time.Now}
}

// ErrFenced is returned for a write refused because the lease may have been lost.
type ErrFenced struct {
	Since time.Duration
}

func (e *ErrFenced) Error() string {
	return fmt.Sprintf("write refused: this operator replica last renewed its leader lease %v ago (bound: a replica that may no longer lead does not write)", e.Since.Round(time.Millisecond))
}

// Check returns nil when a write is safe: this replica never led, or renewed its lease recently.
func (f *Fence) Check() error {
	f.mu.Lock()
	renewed := f.renewed
	f.mu.Unlock()
	if renewed.IsZero() {
		return nil
	}
	if age := f.now().Sub(renewed); age > f.maxAge {
		return &ErrFenced{Since: age}
	}
	return nil
}

// Lock wraps the leader election lock so that every successful Create or Update (acquisition and
// renewal: the elector writes the lock only while it holds it or takes it) counts as a renewal.
func (f *Fence) Lock(l resourcelock.Interface) resourcelock.Interface {
	return &renewalRecorder{Interface: l, f: f}
}

type renewalRecorder struct {
	resourcelock.Interface
	f *Fence
}

func (r *renewalRecorder) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	return r.record(func() error { return r.Interface.Create(ctx, ler) })
}

func (r *renewalRecorder) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if ler.HolderIdentity == "" { // a release (ReleaseOnCancel), not a renewal
		return r.Interface.Update(ctx, ler)
	}
	return r.record(func() error { return r.Interface.Update(ctx, ler) })
}

func (r *renewalRecorder) record(write func() error) error {
	sent := r.f.now()
	if err := write(); err != nil {
		return err
	}
	r.f.mu.Lock()
	if sent.After(r.f.renewed) {
		r.f.renewed = sent
	}
	r.f.mu.Unlock()
	return nil
}

// Client wraps c so that every write (create, update, patch, apply, delete, and the same on
// subresources such as status) is refused while the Fence says the lease may have been lost.
// Reads pass.
func (f *Fence) Client(c client.Client) client.Client {
	return &fencedClient{Client: c, f: f}
}

type fencedClient struct {
	client.Client
	f *Fence
}

func (c *fencedClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if err := c.f.Check(); err != nil {
		return err
	}
	return c.Client.Create(ctx, obj, opts...)
}

func (c *fencedClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := c.f.Check(); err != nil {
		return err
	}
	return c.Client.Update(ctx, obj, opts...)
}

func (c *fencedClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if err := c.f.Check(); err != nil {
		return err
	}
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c *fencedClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	if err := c.f.Check(); err != nil {
		return err
	}
	return c.Client.Apply(ctx, obj, opts...)
}

func (c *fencedClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if err := c.f.Check(); err != nil {
		return err
	}
	return c.Client.Delete(ctx, obj, opts...)
}

func (c *fencedClient) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	if err := c.f.Check(); err != nil {
		return err
	}
	return c.Client.DeleteAllOf(ctx, obj, opts...)
}

func (c *fencedClient) Status() client.SubResourceWriter {
	return &fencedSubResource{SubResourceWriter: c.Client.Status(), f: c.f}
}

func (c *fencedClient) SubResource(name string) client.SubResourceClient {
	sc := c.Client.SubResource(name)
	return struct {
		client.SubResourceReader
		client.SubResourceWriter
	}{sc, &fencedSubResource{SubResourceWriter: sc, f: c.f}}
}

type fencedSubResource struct {
	client.SubResourceWriter
	f *Fence
}

func (w *fencedSubResource) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	if err := w.f.Check(); err != nil {
		return err
	}
	return w.SubResourceWriter.Create(ctx, obj, sub, opts...)
}

func (w *fencedSubResource) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if err := w.f.Check(); err != nil {
		return err
	}
	return w.SubResourceWriter.Update(ctx, obj, opts...)
}

func (w *fencedSubResource) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if err := w.f.Check(); err != nil {
		return err
	}
	return w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

func (w *fencedSubResource) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	if err := w.f.Check(); err != nil {
		return err
	}
	return w.SubResourceWriter.Apply(ctx, obj, opts...)
}
