package leasefence

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// fakeLock is a resourcelock.Interface whose writes succeed unless fail is set.
type fakeLock struct {
	resourcelock.Interface
	fail bool
}

func (l *fakeLock) Create(context.Context, resourcelock.LeaderElectionRecord) error { return l.err() }
func (l *fakeLock) Update(context.Context, resourcelock.LeaderElectionRecord) error { return l.err() }
func (l *fakeLock) err() error {
	if l.fail {
		return errors.New("conflict")
	}
	return nil
}

// A replica writes freely until it first leads; once it leads, only while its last renewal is
// within the bound. A failed renewal is no renewal; a paused leader that wakes up past the bound
// writes nothing (status included) until it has renewed again.
func TestFenceRefusesWritesOfAReplicaThatMayHaveLostItsLease(t *testing.T) {
	now := time.Unix(1000, 0)
	f := New(8 * time.Second)
	f.now = func() time.Time { return now }
	lock := &fakeLock{}
	l := f.Lock(lock)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}}
	c := f.Client(fake.NewClientBuilder().WithObjects(cm).WithStatusSubresource(&corev1.ConfigMap{}).Build())
	ctx := context.Background()
	patch := func() error {
		cur := &corev1.ConfigMap{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "ns", Name: "cm"}, cur); err != nil {
			t.Fatal(err)
		}
		orig := cur.DeepCopy()
		cur.Data = map[string]string{"at": now.String()}
		return c.Patch(ctx, cur, client.MergeFrom(orig))
	}
	fenced := func(what string, err error) {
		t.Helper()
		var fe *ErrFenced
		if !errors.As(err, &fe) {
			t.Fatalf("%s: %v, want a fenced write", what, err)
		}
	}

	if err := patch(); err != nil {
		t.Fatalf("before ever leading (non-leader runnables write): %v", err)
	}
	if err := l.Create(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(7 * time.Second)
	if err := patch(); err != nil {
		t.Fatalf("7 s after acquiring: %v", err)
	}
	lock.fail = true
	_ = l.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"})
	now = now.Add(2 * time.Second)
	fenced("9 s after the last successful renewal", patch())
	fenced("status", c.Status().Patch(ctx, cm, client.MergeFrom(cm.DeepCopy())))
	fenced("status subresource", c.SubResource("status").Update(ctx, cm))
	fenced("create", c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other"}}))
	fenced("delete", c.Delete(ctx, cm))
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ns", Name: "cm"}, &corev1.ConfigMap{}); err != nil {
		t.Fatalf("reads are never fenced: %v", err)
	}
	lock.fail = false
	if err := l.Update(ctx, resourcelock.LeaderElectionRecord{}); err != nil { // a release
		t.Fatal(err)
	}
	fenced("after releasing the lease (a release is no renewal)", patch())
	if err := l.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil {
		t.Fatal(err)
	}
	if err := patch(); err != nil {
		t.Fatalf("right after renewing again: %v", err)
	}
}
