package topic

import (
	"math/bits"
	"slices"
)

// kids maps the literal levels below a trie node to child nodes. It is an
// immutable hash array mapped trie, 16 ways per level, keyed by a 64-bit hash
// of the level, so that an update copies a few small arrays rather than a
// whole map, which matters for nodes with many children ("devices/<id>").
// A nil *kids is empty. Past the 64 hash bits, a kids holds the keys whose
// hashes collide in full as a plain list.
type kids[V comparable] struct {
	bitmap uint16    // which of the 16 ways are used; 0 in a collision list
	slots  []slot[V] // one per set bit, in bit order
}

// slot is a leaf (key, node) or a branch (sub).
type slot[V comparable] struct {
	key  string
	node *node[V]
	sub  *kids[V]
}

const wayBits = 4 // hash bits used per kids level

func way(hash uint64, shift uint) (bit uint16) { return 1 << (hash >> shift & (1<<wayBits - 1)) }

func (k *kids[V]) get(key string, hash uint64) *node[V] {
	for shift := uint(0); k != nil; shift += wayBits {
		if shift >= 64 {
			for i := range k.slots {
				if k.slots[i].key == key {
					return k.slots[i].node
				}
			}
			return nil
		}
		bit := way(hash, shift)
		if k.bitmap&bit == 0 {
			return nil
		}
		s := &k.slots[bits.OnesCount16(k.bitmap&(bit-1))]
		if s.sub == nil {
			if s.key == key {
				return s.node
			}
			return nil
		}
		k = s.sub
	}
	return nil
}

// with returns a copy of k in which key, whose hash is hash(key), maps to n
// (non-nil).
func (k *kids[V]) with(key string, n *node[V], hash func(string) uint64, shift uint) *kids[V] {
	if k == nil {
		k = &kids[V]{}
	}
	leaf := slot[V]{key: key, node: n}
	if shift >= 64 {
		i := slices.IndexFunc(k.slots, func(s slot[V]) bool { return s.key == key })
		if i < 0 {
			return &kids[V]{slots: append(k.slots[:len(k.slots):len(k.slots)], leaf)}
		}
		c := &kids[V]{slots: slices.Clone(k.slots)}
		c.slots[i].node = n
		return c
	}
	bit := way(hash(key), shift)
	i := bits.OnesCount16(k.bitmap & (bit - 1))
	if k.bitmap&bit == 0 {
		return &kids[V]{bitmap: k.bitmap | bit, slots: slices.Insert(slices.Clip(k.slots), i, leaf)}
	}
	c := &kids[V]{bitmap: k.bitmap, slots: slices.Clone(k.slots)}
	s := &c.slots[i]
	switch {
	case s.sub != nil:
		s.sub = s.sub.with(key, n, hash, shift+wayBits)
	case s.key == key:
		s.node = n
	default: // two keys share this way: push both one level down
		var sub *kids[V]
		sub = sub.with(s.key, s.node, hash, shift+wayBits)
		*s = slot[V]{sub: sub.with(key, n, hash, shift+wayBits)}
	}
	return c
}

// without returns a copy of k without key, which must be present; nil if
// nothing is left.
func (k *kids[V]) without(key string, hash uint64, shift uint) *kids[V] {
	var i int
	var bit uint16
	if shift >= 64 {
		i = slices.IndexFunc(k.slots, func(s slot[V]) bool { return s.key == key })
	} else {
		bit = way(hash, shift)
		i = bits.OnesCount16(k.bitmap & (bit - 1))
		if sub := k.slots[i].sub; sub != nil {
			if sub = sub.without(key, hash, shift+wayBits); sub != nil {
				c := &kids[V]{bitmap: k.bitmap, slots: slices.Clone(k.slots)}
				if len(sub.slots) == 1 && sub.slots[0].sub == nil {
					c.slots[i] = sub.slots[0] // a lone leaf moves up
				} else {
					c.slots[i].sub = sub
				}
				return c
			}
		}
	}
	if len(k.slots) == 1 {
		return nil
	}
	return &kids[V]{bitmap: k.bitmap &^ bit, slots: slices.Delete(slices.Clone(k.slots), i, i+1)}
}
