package hook

import (
	"hash/fnv"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// IDLen is the length in bytes of the IDs an IDGenerator makes.
const IDLen = 24

// IDTimeLen is the length of the time part that starts every ID an IDGenerator makes.
const IDTimeLen = 13 // 65 bits: the whole uint64 of nanoseconds

const (
	idNodeLen     = 8                             // 40 bits of the node name's hash
	idInstanceLen = IDLen - IDTimeLen - idNodeLen // 15 random bits per generator
	idDigits      = "0123456789abcdefghijklmnopqrstuv"
)

// IDGenerator makes message IDs: unique, increasing in time order within a node, and sortable
// as strings, so that "newer than the acked position" is a string comparison in every store.
//
// An ID is IDLen (24) characters of base32hex in lower case ("0-9a-v", an alphabet whose
// byte order, and order under case-insensitive collations, is its numeric order):
//
//	13 chars  nanoseconds since the Unix epoch, big-endian (the clock, or the previous ID's
//	          time + 1 ns when the clock has not moved forward: after a step back, or at more
//	          than one ID per nanosecond)
//	 8 chars  40 bits of the FNV-1a hash of the node name (random when the name is empty)
//	 3 chars  15 random bits chosen when the generator is made
//
// The IDs of one generator strictly increase, in bytes and in time order, however the wall
// clock moves: after a step back the time part runs ahead of the clock until the clock catches
// up. IDs of different nodes are only approximately time-ordered (by their clocks), and never
// equal unless the node names' hashes collide and their clocks agree to the nanosecond. The
// random instance bits keep the IDs of a restarted node (whose clock may have stepped back
// across the restart), and of two generators given the same name, apart.
//
// An IDGenerator is safe for concurrent use. Use one per node: it is the single source of
// order for that node.
type IDGenerator struct {
	last   atomic.Uint64 // time part of the last ID
	suffix [idNodeLen + idInstanceLen]byte
	now    func() int64 // the clock in Unix nanoseconds; nil means time.Now (tests replace it)
}

// NewIDGenerator returns a generator for the node with the given name (e.g. the broker's
// node name, "emqx@10.0.0.1"). With an empty name, the node part is random.
func NewIDGenerator(node string) *IDGenerator {
	var nodeBits uint64
	if node == "" {
		nodeBits = rand.Uint64()
	} else {
		h := fnv.New64a()
		h.Write([]byte(node))
		nodeBits = h.Sum64()
	}
	g := &IDGenerator{}
	encodeBase32(g.suffix[:idNodeLen], nodeBits>>(64-5*idNodeLen))
	encodeBase32(g.suffix[idNodeLen:], rand.Uint64())
	return g
}

// Next returns a new ID, greater than every ID this generator returned before.
func (g *IDGenerator) Next() string {
	var now int64
	if g.now != nil {
		now = g.now()
	} else {
		now = time.Now().UnixNano()
	}
	t := uint64(max(now, 0))
	for {
		last := g.last.Load()
		next := max(t, last+1)
		if g.last.CompareAndSwap(last, next) {
			var b [IDLen]byte
			encodeBase32(b[:IDTimeLen], next)
			copy(b[IDTimeLen:], g.suffix[:])
			return string(b[:])
		}
	}
}

// IDTimePrefix returns the time part (IDTimeLen characters) of the IDs an IDGenerator makes
// at t: the IDs made earlier by a clock in step sort below it. A time before the Unix epoch
// gives that of the epoch.
func IDTimePrefix(t time.Time) string {
	var b [IDTimeLen]byte
	encodeBase32(b[:], uint64(max(t.UnixNano(), 0)))
	return string(b[:])
}

// IsGeneratedID reports whether id has the form of the IDs an IDGenerator makes: IDLen
// characters of base32hex in lower case. Only such IDs tell their time (IDTimePrefix).
func IsGeneratedID(id string) bool {
	if len(id) != IDLen {
		return false
	}
	for i := range len(id) {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'v') {
			return false
		}
	}
	return true
}

// encodeBase32 writes the low 5*len(dst) bits of v into dst, big-endian, in idDigits.
func encodeBase32(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = idDigits[v&31]
		v >>= 5
	}
}
