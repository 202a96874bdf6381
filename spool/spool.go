package spool

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"
)

// Seq is the sequence number of a record: unique within a spool directory, increasing in
// append order, never handed out twice (not even across restarts and crashes).
type Seq uint64

// SyncPolicy says when appended records are fsynced. Every policy writes a record to the
// operating system before Append returns, so a crash of the process (kill -9) loses nothing;
// the policy decides what a power loss or a kernel crash can lose.
type SyncPolicy uint8

const (
	// SyncDefault is SyncInterval.
	SyncDefault SyncPolicy = iota
	// SyncNever leaves flushing to the operating system (segments are still fsynced when
	// the spool moves to the next one and on Close). A power loss can lose any recent record.
	SyncNever
	// SyncInterval fsyncs every Options.SyncInterval in the background. A power loss loses at
	// most that much of the latest records.
	SyncInterval
	// SyncAlways fsyncs before Append returns. Concurrent Appends share one fsync (group
	// commit). A power loss loses nothing Append returned.
	SyncAlways
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncDefault:
		return "default"
	case SyncNever:
		return "never"
	case SyncInterval:
		return "interval"
	case SyncAlways:
		return "always"
	}
	return fmt.Sprintf("SyncPolicy(%d)", uint8(p))
}

// FullPolicy says what Append does when the record does not fit in Options.MaxBytes.
type FullPolicy uint8

const (
	// Block waits until releases free the space, or the context is done (then the error
	// wraps ErrFull and the context's cause).
	Block FullPolicy = iota
	// Refuse returns ErrFull at once.
	Refuse
)

// Options configure a Spool. Every zero value means its default.
type Options struct {
	// MaxBytes bounds the bytes of the segment files (records plus 8 bytes of framing each).
	// Space comes back a segment at a time, when every record of the segment is released: one
	// record never released pins its segment, so keep SegmentBytes a small part of MaxBytes.
	// Default 1 GiB.
	MaxBytes int64
	// SegmentBytes is the size at which the spool starts a new segment file. A record larger
	// than it gets a segment of its own. Default MaxBytes/8, at least 4 KiB, at most 64 MiB.
	SegmentBytes int64
	// Sync is the fsync policy. Default SyncInterval.
	Sync SyncPolicy
	// SyncInterval is the period of SyncInterval. Default 100 ms.
	SyncInterval time.Duration
	// WhenFull is what Append does when the spool is full. Default Block.
	WhenFull FullPolicy
	// CheckpointInterval is how often the released set is written to disk when it changed
	// (and on Close). Releases newer than the last checkpoint are replayed again after a
	// crash. Default 1 s.
	CheckpointInterval time.Duration

	// writeOnly makes the segments be written with write(2), never memory-mapped: the tests
	// run both ways.
	writeOnly bool
}

const (
	defaultMaxBytes     = 1 << 30
	maxSegmentBytes     = 64 << 20
	minSegmentBytes     = 4 << 10
	defaultSyncInterval = 100 * time.Millisecond
	defaultCheckpoint   = time.Second
	// maxSpare is the largest write buffer kept for reuse after a flush.
	maxSpare = 1 << 20
)

func (o Options) withDefaults() Options {
	if o.MaxBytes <= 0 {
		o.MaxBytes = defaultMaxBytes
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = min(maxSegmentBytes, max(o.MaxBytes/8, minSegmentBytes))
	}
	if o.Sync == SyncDefault {
		o.Sync = SyncInterval
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = defaultSyncInterval
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = defaultCheckpoint
	}
	return o
}

// mapBytes is the size of a memory-mapped segment; 0: not mapped (see createSegFile).
func (o Options) mapBytes() int64 {
	if o.writeOnly {
		return 0
	}
	return o.SegmentBytes
}

var (
	// ErrFull: the record does not fit in Options.MaxBytes until records are released.
	ErrFull = errors.New("spool: full")
	// ErrTooLarge: the record is larger than Options.MaxBytes (or 4 GiB) and never fits.
	ErrTooLarge = errors.New("spool: record too large")
	// ErrClosed: the spool is closed.
	ErrClosed = errors.New("spool: closed")
)

// segment is one segment file. Its fields are guarded by Spool.mu.
type segment struct {
	base     Seq      // sequence number of its first record
	n        int      // records in it
	size     int64    // bytes of its complete records
	bits     []uint64 // released records: bit i is record base+i
	released int      // bits set
	path     string
	sealed   bool // fsynced in full and renamed: see sealedExt
	dropped  bool // all released and forgotten: its file is being removed
}

func (g *segment) isReleased(i int) bool { return g.bits[i/64]&(1<<(i%64)) != 0 }

// Spool is a crash-safe, append-only log of records on local disk, bounded in bytes, whose
// records are released one by one, in any order, once they are dealt with.
//
// A Spool is safe for concurrent use by multiple goroutines: Append, Release, Stats and Replay
// may be called at the same time; concurrent Appends under SyncAlways share fsyncs. It owns the
// files of its directory, which no other Spool (in this process or another) may open until it
// is closed. Append copies the record: the caller may reuse it when Append returns. Replay's
// record is valid only during the call of its function.
type Spool struct {
	dir  string
	opts Options
	lock *os.File

	// wmu orders the writes: it is held from taking a sequence number to writing the record,
	// so the file holds records in sequence order. Lock order: wmu, then mu.
	wmu        sync.Mutex
	f          segFile // the active segment's file
	wbuf       []byte
	writtenPos int64 // bytes written to the operating system over the life of the Spool

	// mu guards the rest. Fields changed under both locks (next, f's segment being the last of
	// segs) may be read under either.
	mu        sync.Mutex
	cond      sync.Cond  // broadcast when syncedPos, syncing or err change
	segs      []*segment // live segments by base; the last one is the active one
	next      Seq
	used      int64 // bytes of the live segments
	pending   int64 // records not released
	syncedPos int64 // bytes fsynced, at most writtenPos
	syncing   bool  // an Append is fsyncing for the others (SyncAlways)
	err       error // sticky write or fsync failure
	closed    bool
	space     chan struct{} // Appends waiting for space wait for its close; nil: none waits
	dirty     bool          // the released set changed since the last checkpoint
	replay    []*segment    // segments found by Open holding pending records, in order
	appends   uint64
	syncs     uint64
	torn      int64

	ckptMu sync.Mutex // one checkpoint write at a time
	stop   chan struct{}
	wg     sync.WaitGroup
}

// Open opens the spool in dir, creating dir if needed. It scans every segment, truncates a torn
// tail of the last one (an interrupted write: a frame cut short, zero-filled, or whose bytes did
// not all reach the disk) and keeps every complete record before it. Any other damaged record
// fails Open with a *CorruptError naming the file and offset. Records not released before the
// spool was closed (or crashed) are pending again: Replay hands them out.
func Open(dir string, opts Options) (*Spool, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lk, err := lockDir(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, opts: opts, lock: lk, stop: make(chan struct{})}
	s.cond.L = &s.mu
	if err := s.load(); err != nil {
		lk.Close()
		return nil, err
	}
	if opts.Sync == SyncInterval {
		s.every(opts.SyncInterval, s.syncWritten)
	}
	// A failed checkpoint is retried at the next tick, and on Close, which reports it.
	s.every(opts.CheckpointInterval, func() { _ = s.Checkpoint() })
	return s, nil
}

func (s *Spool) load() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var files []*segment
	for _, e := range entries {
		if base, sealed, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			files = append(files, &segment{base: base, sealed: sealed, path: filepath.Join(s.dir, e.Name())})
		}
	}
	slices.SortFunc(files, func(a, b *segment) int { return cmp.Compare(a.base, b.base) })
	ck := readCheckpoint(s.dir)
	next := Seq(1)
	for i, g := range files {
		if i > 0 && g.base < next || i > 0 && g.base == files[i-1].base {
			return &CorruptError{Segment: g.path, Offset: 0, Reason: fmt.Sprintf("starts at record %d, before the end of the previous segment (%d)", g.base, next)}
		}
		r, err := scanSegment(g.path)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if r.bad != "" {
			if g.sealed || !r.torn {
				return &CorruptError{Segment: g.path, Offset: r.end, Reason: r.bad}
			}
			if err := truncateFile(g.path, r.end); err != nil {
				return fmt.Errorf("spool: truncating the torn tail of %s: %w", g.path, err)
			}
			s.torn += r.size - r.end
		}
		g.n, g.size, g.bits = r.n, r.end, make([]uint64, (r.n+63)/64)
		if e, ok := ck.entries[g.base]; ok {
			for j := range min(e.n, r.n) {
				if e.bits[j/64]&(1<<(j%64)) != 0 {
					g.bits[j/64] |= 1 << (j % 64)
					g.released++
				}
			}
		}
		next = g.base + Seq(r.n)
	}
	next = max(next, ck.next)

	// Appends go to a new segment: the old ones are sealed and never written again, and
	// sequence numbers the checkpoint knows are never reused.
	var active *segment
	if k := len(files) - 1; k >= 0 && files[k].n == 0 && files[k].base == next && !files[k].sealed {
		active, files = files[k], files[:k]
	} else {
		active = &segment{base: next, path: segPath(s.dir, next, false)}
	}
	f, err := createSegFile(active.path, false, s.opts.mapBytes())
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.f = f
	for _, g := range files {
		if g.released == g.n {
			err = os.Remove(g.path)
		} else if !g.sealed {
			err = sealFile(g)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("spool: %w", err)
		}
		if g.released < g.n {
			s.segs = append(s.segs, g)
			s.replay = append(s.replay, g)
			s.used += g.size
			s.pending += int64(g.n - g.released)
		}
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	s.segs = append(s.segs, active)
	s.next = next
	return nil
}

// sealFile fsyncs the segment left open by an earlier run and renames it sealed.
func sealFile(g *segment) error {
	f, err := os.OpenFile(g.path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	sealed := segPath(filepath.Dir(g.path), g.base, true)
	if err := os.Rename(g.path, sealed); err != nil {
		return err
	}
	g.path, g.sealed = sealed, true
	return nil
}

func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Spool) active() *segment { return s.segs[len(s.segs)-1] }

// Append adds record to the spool and returns its sequence number once the record is written
// to the operating system and, under SyncAlways, fsynced. When the spool is full it blocks
// (Block, until ctx is done) or fails with ErrFull (Refuse); ctx only bounds that wait. After
// a write or fsync error every Append fails: Close and Open the spool again.
func (s *Spool) Append(ctx context.Context, record []byte) (Seq, error) {
	fsz := frameSize(len(record))
	if fsz > s.opts.MaxBytes || len(record) > math.MaxUint32 {
		return 0, fmt.Errorf("%w: %d bytes, the spool holds %d", ErrTooLarge, len(record), s.opts.MaxBytes)
	}
	s.wmu.Lock()
	s.mu.Lock()
	for {
		if s.closed || s.err != nil {
			err := s.err
			if s.closed {
				err = ErrClosed
			}
			s.mu.Unlock()
			s.wmu.Unlock()
			return 0, err
		}
		act := s.active()
		full := s.used+fsz > s.opts.MaxBytes
		drained := act.n > 0 && act.released == act.n
		if full && !drained {
			if s.opts.WhenFull == Refuse {
				s.mu.Unlock()
				s.wmu.Unlock()
				return 0, ErrFull
			}
			if s.space == nil {
				s.space = make(chan struct{})
			}
			ch := s.space
			s.mu.Unlock()
			s.wmu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return 0, fmt.Errorf("%w: %w", ErrFull, context.Cause(ctx))
			}
			s.wmu.Lock()
			s.mu.Lock()
			continue
		}
		// Start a new segment when this one is full, or, when the spool is full and every
		// record of the active segment is released, to reclaim it.
		if act.size > 0 && (act.size+fsz > s.opts.SegmentBytes || full) {
			s.mu.Unlock()
			err := s.roll()
			s.mu.Lock()
			if err != nil {
				s.mu.Unlock()
				s.wmu.Unlock()
				return 0, err
			}
			continue
		}
		break
	}
	act := s.active()
	seq := s.next
	s.next++
	if act.n%64 == 0 {
		act.bits = append(act.bits, 0)
	}
	act.n++
	act.size += fsz
	s.used += fsz
	s.pending++
	s.appends++
	s.mu.Unlock()

	// Under wmu alone: Release and Stats do not wait for the write.
	s.wbuf = appendFrame(s.wbuf[:0], record)
	_, err := s.f.Write(s.wbuf)
	if cap(s.wbuf) > maxSpare {
		s.wbuf = nil
	}
	if err == nil {
		s.writtenPos += fsz
	}
	pos := s.writtenPos
	s.wmu.Unlock()
	if err != nil {
		s.mu.Lock()
		err = s.fail(err)
		s.mu.Unlock()
		return 0, err
	}
	if s.opts.Sync == SyncAlways {
		if err := s.syncTo(pos); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

// syncTo returns once the log is fsynced up to pos. The first caller to find no fsync in
// progress fsyncs everything written so far, for every Append that wrote meanwhile: one fsync
// for all of them (group commit).
func (s *Spool) syncTo(pos int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.syncedPos >= pos:
			return nil
		case s.err != nil:
			return s.err
		case !s.syncing:
			s.syncing = true
			s.mu.Unlock()
			s.syncWritten()
			s.mu.Lock()
			s.syncing = false
			s.cond.Broadcast()
		default:
			s.cond.Wait()
		}
	}
}

// syncWritten fsyncs the active segment up to what is written now, unless it is already.
// Neither lock is held.
func (s *Spool) syncWritten() {
	s.wmu.Lock()
	f, end := s.f, s.writtenPos
	s.wmu.Unlock()
	s.mu.Lock()
	done := s.syncedPos >= end
	s.mu.Unlock()
	if done {
		return
	}
	err := f.Sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.syncedPos = max(s.syncedPos, end)
		s.syncs++
	case errors.Is(err, os.ErrClosed): // roll or its seal or Close fsynced it before closing it
	default:
		s.fail(err)
	}
}

// fail records a write or fsync failure: the log's tail is unknown from then on, so every
// later Append fails. s.mu is held.
func (s *Spool) fail(err error) error {
	if s.err == nil {
		s.err = fmt.Errorf("spool: %w (close and reopen the spool)", err)
		s.signalSpace()
		s.cond.Broadcast()
	}
	return s.err
}

// signalSpace wakes the Appends waiting for space. s.mu is held.
func (s *Spool) signalSpace() {
	if s.space != nil {
		close(s.space)
		s.space = nil
	}
}

// roll starts a new segment and seals the old one, or removes it if all its records are
// released. s.wmu is held, s.mu is not.
//
// Under SyncAlways the old segment is fsynced before the new one exists (Appends waiting for
// their group commit may have records in it). Otherwise it is sealed in the background: an
// fsync of a whole segment (64 MiB by default) would stall Append for as long as the disk
// takes, and until it is sealed its tail may be torn after a power loss, which Open allows
// for an open segment.
func (s *Spool) roll() error {
	always := s.opts.Sync == SyncAlways
	if always {
		if err := s.f.Sync(); err != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.fail(err)
		}
	}
	g := &segment{base: s.next, path: segPath(s.dir, s.next, false)}
	f, err := createSegFile(g.path, true, s.opts.mapBytes())
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(g.path)
		return fmt.Errorf("spool: %w", err)
	}
	s.mu.Lock()
	if always {
		s.syncs++
		s.syncedPos = max(s.syncedPos, s.writtenPos)
	}
	old := s.active()
	s.segs = append(s.segs, g)
	remove := old.released == old.n
	if remove {
		s.drop(old)
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	oldf := s.f
	s.f = f
	switch {
	case remove:
		oldf.Close()
		os.Remove(old.path) // if it fails, the next Open removes it
	case always:
		return s.seal(old, oldf)
	default:
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.seal(old, oldf)
		}()
	}
	return nil
}

// seal fsyncs and closes a finished segment's file and renames it sealed, unless all its
// records were released meanwhile. A failure is sticky, as any fsync failure.
func (s *Spool) seal(g *segment, f segFile) error {
	err := f.Trim()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		return s.fail(err)
	}
	s.syncs++
	if g.dropped {
		return nil
	}
	sealed := segPath(s.dir, g.base, true)
	if err := os.Rename(g.path, sealed); err != nil {
		return s.fail(err)
	}
	g.path, g.sealed = sealed, true
	return nil
}

// drop forgets a segment whose records are all released. s.mu is held.
func (s *Spool) drop(g *segment) {
	if i := slices.Index(s.segs, g); i >= 0 {
		s.segs = slices.Delete(s.segs, i, i+1)
		g.dropped = true
		s.used -= g.size
		s.signalSpace()
	}
}

// Release marks the record seq as done. It may be called in any order, from any goroutine;
// releasing a record twice, or a sequence number the spool does not hold, does nothing. A
// segment whose records are all released is deleted (unless it is the one being appended to)
// and its bytes are free again. Releases reach the disk with the next checkpoint.
func (s *Spool) Release(seq Seq) {
	s.mu.Lock()
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].base > seq }) - 1
	if s.closed || i < 0 || seq >= s.segs[i].base+Seq(s.segs[i].n) {
		s.mu.Unlock()
		return
	}
	g := s.segs[i]
	k := int(seq - g.base)
	if g.isReleased(k) {
		s.mu.Unlock()
		return
	}
	g.bits[k/64] |= 1 << (k % 64)
	g.released++
	s.pending--
	s.dirty = true
	var remove string
	if g.released == g.n && g != s.active() {
		s.drop(g)
		remove = g.path
	} else if g.released == g.n {
		s.signalSpace() // a full spool can reclaim the active segment by starting a new one
	}
	s.mu.Unlock()
	if remove != "" {
		os.Remove(remove) // if it fails, the next Open removes it
	}
}

// Replay calls fn, in append order, for every record that was pending when the spool was
// opened and is still not released: what a restart must dispatch again. Records appended since
// Open are not replayed. It reads one record at a time from disk, so an fn that blocks (until
// a store's queue has room) keeps memory bounded however large the backlog. It stops at fn's
// first error and returns it. The record passed to fn is valid only during the call. A record
// damaged since Open fails Replay with a *CorruptError.
func (s *Spool) Replay(fn func(seq Seq, record []byte) error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var views []segView
	for _, g := range s.replay {
		views = append(views, segView{g, g.n, g.size})
	}
	s.mu.Unlock()
	return s.read(views, 0, fn)
}

// Scan calls fn, in append order, for every record not released whose sequence number is
// above after, up to the last record written when Scan was called (a record whose Append is
// still waiting for its fsync may be among them). It is Replay for a running spool: after an
// outage during which records were dropped from memory, the spool, not memory, holds them
// until they are released. fn is called as by Replay.
func (s *Spool) Scan(after Seq, fn func(seq Seq, record []byte) error) error {
	s.wmu.Lock() // no write in progress: each segment's n and size cover written records
	s.mu.Lock()
	closed := s.closed
	var views []segView
	for _, g := range s.segs {
		if g.base+Seq(g.n) > after+1 && g.released < g.n {
			views = append(views, segView{g, g.n, g.size})
		}
	}
	s.mu.Unlock()
	s.wmu.Unlock()
	if closed {
		return ErrClosed
	}
	return s.read(views, after, fn)
}

// segView is a segment's first n records, size bytes.
type segView struct {
	g    *segment
	n    int
	size int64
}

func (s *Spool) read(views []segView, after Seq, fn func(Seq, []byte) error) error {
	for _, v := range views {
		if err := s.readSegment(v, after, fn); err != nil {
			return err
		}
	}
	return nil
}

// openSegment opens a segment's file for reading; nil, nil when all its records were released
// and its file removed. Its name changes once, when it is sealed.
func (s *Spool) openSegment(g *segment) (*os.File, string, error) {
	for {
		s.mu.Lock()
		path, dropped := g.path, g.dropped
		s.mu.Unlock()
		if dropped {
			return nil, path, nil
		}
		f, err := os.Open(path)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return f, path, err
		}
		s.mu.Lock()
		moved := g.path != path
		s.mu.Unlock()
		if !moved && !s.dropped(g) {
			return nil, path, err
		}
	}
}

func (s *Spool) dropped(g *segment) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return g.dropped
}

func (s *Spool) released(g *segment, i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return g.isReleased(i)
}

func (s *Spool) readSegment(v segView, after Seq, fn func(Seq, []byte) error) error {
	f, path, err := s.openSegment(v.g)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if f == nil {
		return nil
	}
	defer f.Close()
	rd := newFrameReader(bufio.NewReaderSize(f, 256<<10))
	var off int64
	for i := range v.n {
		rec, bad, err := rd.next(v.size - off)
		if err == errEnd {
			bad = "record missing"
		} else if err != nil {
			return fmt.Errorf("spool: reading %s: %w", path, err)
		}
		if bad != "" {
			return &CorruptError{Segment: path, Offset: off, Reason: bad}
		}
		if seq := v.g.base + Seq(i); seq > after && !s.released(v.g, i) {
			if err := fn(seq, rec); err != nil {
				return err
			}
		}
		off += frameSize(len(rec))
	}
	return nil
}

// Stats are a Spool's counters.
type Stats struct {
	Bytes    int64 // bytes of the segment files (released records too, until their segment goes)
	MaxBytes int64 // Options.MaxBytes
	Pending  int64 // records appended or found by Open, not released
	Segments int   // segment files
	Appends  uint64
	// Syncs counts the fsyncs of segment files since Open; under SyncAlways, Appends/Syncs is
	// how many records one fsync carried (group commit).
	Syncs uint64
	// TornBytes is how many bytes of a torn tail Open truncated (after a crash, with the
	// zeros reserved after the last record of a memory-mapped segment).
	TornBytes int64
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Bytes: s.used, MaxBytes: s.opts.MaxBytes, Pending: s.pending, Segments: len(s.segs),
		Appends: s.appends, Syncs: s.syncs, TornBytes: s.torn}
}

// Checkpoint writes the released set to disk now, if it changed. The spool does it every
// Options.CheckpointInterval and on Close.
func (s *Spool) Checkpoint() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	s.dirty = false
	var entries []ckptEntry
	for _, g := range s.segs {
		if g.released > 0 {
			entries = append(entries, ckptEntry{base: g.base, n: g.n, bits: slices.Clone(g.bits)})
		}
	}
	next := s.next
	s.mu.Unlock()
	if err := writeCheckpoint(s.dir, encodeCheckpoint(next, entries)); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("spool: checkpoint: %w", err)
	}
	return nil
}

// every runs fn every d until Close.
func (s *Spool) every(d time.Duration, fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// Close fsyncs the active segment, writes the checkpoint and closes the files. Appends waiting
// for space fail with ErrClosed; later calls do nothing (Append, Replay: ErrClosed). It
// returns the first fsync or checkpoint error.
func (s *Spool) Close() error {
	s.wmu.Lock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wmu.Unlock()
		return nil
	}
	s.closed = true
	s.signalSpace()
	err := s.err
	s.mu.Unlock()
	if err == nil {
		if err = s.f.Trim(); err == nil {
			err = s.f.Sync()
		}
		s.mu.Lock()
		if err != nil {
			err = s.fail(err)
		} else {
			s.syncs++
			s.syncedPos = s.writtenPos
		}
		s.cond.Broadcast()
		s.mu.Unlock()
	}
	s.wmu.Unlock()
	close(s.stop)
	s.wg.Wait()
	if cerr := s.Checkpoint(); err == nil {
		err = cerr
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.lock.Close()
	return err
}
