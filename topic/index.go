package topic

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Index holds a set of (topic filter, value) pairs and finds the values whose
// filters match a topic name, in time that depends on the topic's length and
// on how many filters match it, not on how many filters the Index holds.
//
// The zero value is an empty Index ready to use, as is the result of
// [NewIndex]. An Index must not be copied after first use.
//
// Add and Remove may be called concurrently with each other and with Match,
// MatchAppend and Len. Readers never wait and never block one another: they
// walk an immutable trie reached through an atomic pointer. A writer copies
// only the trie path it changes and then publishes the new root, so a reader
// sees each Add or Remove entirely or not at all. Writers are serialised by a
// mutex; an Add or Remove costs O(levels) small allocations plus a copy of
// the values already stored under the same filter.
//
// Filters are taken literally, exactly as by [Match]: they are not validated
// (an invalid filter is stored and matched as Match would match it), and a
// shared-subscription prefix is not stripped: "$share/g/a" matches only the
// topic "$share/g/a". Index a shared subscription under the filter returned
// by [ParseShared] so that it matches the topics it receives.
type Index[V comparable] struct {
	mu   sync.Mutex // serialises writers
	trie atomic.Pointer[trie[V]]
}

// trie is one immutable version of an Index.
type trie[V comparable] struct {
	root *node[V] // nil when empty
	seed maphash.Seed
	len  int
}

// node is the trie node reached by a sequence of filter levels.
type node[V comparable] struct {
	kids  *kids[V] // next literal levels (including a '#' that is not last)
	plus  *node[V] // next level '+'
	exact []V      // values of the filters that end here
	multi []V      // values of the filters that continue with a last level '#'
}

// NewIndex returns an empty Index.
func NewIndex[V comparable]() *Index[V] { return new(Index[V]) }

// Len returns the number of (filter, value) pairs in the index.
func (x *Index[V]) Len() int {
	if t := x.trie.Load(); t != nil {
		return t.len
	}
	return 0
}

// Add adds the pair (filter, v). Adding a pair that is already present does
// nothing; the same value may be added under any number of filters.
func (x *Index[V]) Add(filter string, v V) {
	x.mu.Lock()
	defer x.mu.Unlock()
	t := x.trie.Load()
	if t == nil {
		t = &trie[V]{seed: maphash.MakeSeed()}
	}
	if root, added := t.root.add(filter, v, t.seed); added {
		x.trie.Store(&trie[V]{root: root, seed: t.seed, len: t.len + 1})
	}
}

// Remove removes the pair (filter, v) and reports whether it was present.
func (x *Index[V]) Remove(filter string, v V) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	t := x.trie.Load()
	if t == nil {
		return false
	}
	root, removed := t.root.remove(filter, v, t.seed)
	if removed {
		x.trie.Store(&trie[V]{root: root, seed: t.seed, len: t.len - 1})
	}
	return removed
}

// Match returns the values of the filters that match topic, as [Match]
// decides, in no particular order: one element per matching (filter, value)
// pair, so a value added under two filters that both match appears twice.
// It returns nil when nothing matches, and otherwise allocates once, for the
// result.
func (x *Index[V]) Match(topic string) []V {
	var buf [8]V // most topics match few filters: collect on the stack
	if m := x.MatchAppend(buf[:0], topic); len(m) > 0 {
		return slices.Clone(m)
	}
	return nil
}

// MatchAppend appends to dst what [Index.Match] returns, and returns the
// extended slice. It allocates only when dst lacks capacity.
func (x *Index[V]) MatchAppend(dst []V, topic string) []V {
	t := x.trie.Load()
	if t == nil || t.root == nil {
		return dst
	}
	// The '$' rule: wildcards at the first level do not match "$SYS/...".
	dollar := topic != "" && topic[0] == '$'
	return t.root.collect(dst, topic, t.seed, dollar)
}

// collect appends the values of the filters below n that match topic, which
// holds the remaining topic levels (at least one). noWild skips n's wildcard
// children.
func (n *node[V]) collect(dst []V, topic string, seed maphash.Seed, noWild bool) []V {
	for {
		level, rest, more := strings.Cut(topic, "/")
		if !noWild {
			dst = append(dst, n.multi...)
			if p := n.plus; p != nil {
				if more {
					dst = p.collect(dst, rest, seed, false)
				} else {
					dst = append(append(dst, p.exact...), p.multi...)
				}
			}
		}
		if n.kids == nil {
			return dst
		}
		if n = n.kids.get(level, maphash.String(seed, level)); n == nil {
			return dst
		}
		if !more {
			// "a/#" matches "a": the parent of a multi-level wildcard.
			return append(append(dst, n.exact...), n.multi...)
		}
		topic, noWild = rest, false
	}
}

// child returns the child of n (which may be nil) at filter level.
func (n *node[V]) child(level string, seed maphash.Seed) *node[V] {
	switch {
	case n == nil:
		return nil
	case level == "+":
		return n.plus
	}
	return n.kids.get(level, maphash.String(seed, level))
}

// setChild sets n's child at filter level, or deletes it if child is nil
// (it must then be present).
func (n *node[V]) setChild(level string, child *node[V], seed maphash.Seed) {
	if level == "+" {
		n.plus = child
		return
	}
	if child != nil {
		n.kids = n.kids.with(level, child, func(s string) uint64 { return maphash.String(seed, s) }, 0)
	} else {
		n.kids = n.kids.without(level, maphash.String(seed, level), 0)
	}
}

// add returns a copy of n (nil is empty) with v added under the filter
// levels, and whether it was absent.
func (n *node[V]) add(filter string, v V, seed maphash.Seed) (*node[V], bool) {
	var c node[V]
	if n != nil {
		c = *n
	}
	level, rest, more := strings.Cut(filter, "/")
	if !more && level == "#" {
		if slices.Contains(c.multi, v) {
			return n, false
		}
		c.multi = append(c.multi[:len(c.multi):len(c.multi)], v)
		return &c, true
	}
	child := n.child(level, seed)
	if more {
		var added bool
		if child, added = child.add(rest, v, seed); !added {
			return n, false
		}
	} else {
		var cc node[V]
		if child != nil {
			cc = *child
		}
		if slices.Contains(cc.exact, v) {
			return n, false
		}
		cc.exact = append(cc.exact[:len(cc.exact):len(cc.exact)], v)
		child = &cc
	}
	c.setChild(level, child, seed)
	return &c, true
}

// remove returns a copy of n without v under the filter levels (nil if
// nothing is left), and whether it was present.
func (n *node[V]) remove(filter string, v V, seed maphash.Seed) (*node[V], bool) {
	if n == nil {
		return nil, false
	}
	c := *n
	var ok bool
	level, rest, more := strings.Cut(filter, "/")
	if !more && level == "#" {
		if c.multi, ok = deleteValue(c.multi, v); !ok {
			return n, false
		}
		return c.orNil(), true
	}
	child := n.child(level, seed)
	if more {
		child, ok = child.remove(rest, v, seed)
	} else if child != nil {
		cc := *child
		if cc.exact, ok = deleteValue(cc.exact, v); ok {
			child = cc.orNil()
		}
	}
	if !ok {
		return n, false
	}
	c.setChild(level, child, seed)
	return c.orNil(), true
}

// orNil returns n, or nil if n holds nothing.
func (n *node[V]) orNil() *node[V] {
	if n.kids == nil && n.plus == nil && len(n.exact) == 0 && len(n.multi) == 0 {
		return nil
	}
	return n
}

// deleteValue returns a copy of s without v (nil if empty), and whether v was
// there. It never writes to s's array, which readers may be using.
func deleteValue[V comparable](s []V, v V) ([]V, bool) {
	i := slices.Index(s, v)
	switch {
	case i < 0:
		return s, false
	case len(s) == 1:
		return nil, true
	}
	return append(s[:i:i], s[i+1:]...), true
}
