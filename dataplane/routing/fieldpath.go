package routing

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// fpath is a field path that becomes a *field.Path only when an error needs one, so compiling a
// valid route allocates no paths (Build compiles every route of the snapshot). fpaths live on the
// stack: a step points at its parent, which is always a caller's local.
type fpath struct {
	parent *fpath
	name   string
	index  int // >= 0: this step is an index into parent; -1: a named child
}

func rootPath(name string) fpath { return fpath{name: name, index: -1} }

// child and idx return the next step; the receiver must outlive the result.
func (p *fpath) child(name string) fpath { return fpath{parent: p, name: name, index: -1} }
func (p *fpath) idx(i int) fpath         { return fpath{parent: p, index: i} }

// get materializes the path.
func (p *fpath) get() *field.Path {
	if p == nil {
		return nil
	}
	parent := p.parent.get()
	// Cloning the name keeps escape analysis from sending the whole chain of fpaths to the heap.
	name := strings.Clone(p.name)
	switch {
	case p.index >= 0:
		return parent.Index(p.index)
	case parent == nil:
		return field.NewPath(name)
	}
	return parent.Child(name)
}

// at materializes the path of a descendant named by names.
func (p *fpath) at(names ...string) *field.Path {
	fp := p.get()
	for _, n := range names {
		if fp == nil {
			fp = field.NewPath(n)
		} else {
			fp = fp.Child(n)
		}
	}
	return fp
}

// atIndex materializes p[i].names...
func (p *fpath) atIndex(i int, names ...string) *field.Path {
	fp := p.get().Index(i)
	for _, n := range names {
		fp = fp.Child(n)
	}
	return fp
}
