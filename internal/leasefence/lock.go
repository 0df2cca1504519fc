package leasefence

import (
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/leaderelection"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// NewLock creates the leader election lock controller-runtime would create for opts (a Lease),
// wrapped by the fence, for manager.Options.LeaderElectionResourceLockInterface. The lock's Events
// (a new leader) go through the manager's recorders once BindRecorder is given the manager: the
// lock must exist before the manager does.
func (f *Fence) NewLock(cfg *rest.Config, opts leaderelection.Options) (resourcelock.Interface, error) {
	lock, err := leaderelection.NewResourceLock(cfg, &f.events, opts)
	if err != nil {
		return nil, fmt.Errorf("leader election lock: %w", err)
	}
	return f.Lock(lock), nil
}

// BindRecorder hands the lock's Events to p (the manager).
func (f *Fence) BindRecorder(p recorder.Provider) { f.events.bind(p) }

// lateProvider is a recorder.Provider whose recorders forward to the one bound later, dropping
// what comes before (nothing does: the elector starts with the manager).
type lateProvider struct {
	mu sync.Mutex
	p  recorder.Provider
}

func (l *lateProvider) bind(p recorder.Provider) {
	l.mu.Lock()
	l.p = p
	l.mu.Unlock()
}

func (l *lateProvider) bound() recorder.Provider {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.p
}

//nolint:staticcheck // the leader election lock takes the old events API's recorder
func (l *lateProvider) GetEventRecorderFor(name string) record.EventRecorder {
	return &lateRecorder{l: l, name: name}
}

func (l *lateProvider) GetEventRecorder(name string) recorder.EventRecorder {
	if p := l.bound(); p != nil {
		return p.GetEventRecorder(name)
	}
	return nil
}

type lateRecorder struct {
	l    *lateProvider
	name string
}

func (r *lateRecorder) target() record.EventRecorder {
	if p := r.l.bound(); p != nil {
		return p.GetEventRecorderFor(r.name) //nolint:staticcheck // see GetEventRecorderFor
	}
	return nil
}

func (r *lateRecorder) Event(object runtime.Object, eventtype, reason, message string) {
	if t := r.target(); t != nil {
		t.Event(object, eventtype, reason, message)
	}
}

func (r *lateRecorder) Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	if t := r.target(); t != nil {
		t.Eventf(object, eventtype, reason, messageFmt, args...)
	}
}

func (r *lateRecorder) AnnotatedEventf(object runtime.Object, annotations map[string]string, eventtype, reason, messageFmt string, args ...any) {
	if t := r.target(); t != nil {
		t.AnnotatedEventf(object, annotations, eventtype, reason, messageFmt, args...)
	}
}
