package cassastore

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/mqttstore/mqttstore/hook"
)

// TableWriterMark is the table of the writers' low-water marks (not EMQX's; see the package
// doc, "Several brokers").
const TableWriterMark = "writer_mark"

const (
	markInterval = 200 * time.Millisecond // how often a writer with messages republishes its mark
	markTTL      = 30                     // seconds a mark lives without being republished
)

// marks is a store's side of the low-water marks: the msgids of the messages it has queued and
// not written yet, and the publishing of their minimum.
type marks struct {
	id string // this store's row

	mu      sync.Mutex
	pending idHeap         // msgids queued, not written (with done ones not yet popped)
	done    map[string]int // msgids written or failed, still in pending
	// on: a mark was published (Activate); only then are msgids tracked, the mark
	// republished, and deleted at Close.
	on atomic.Bool

	stop chan struct{}
	wg   sync.WaitGroup
}

type idHeap []string

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newMarks() *marks {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &marks{id: hex.EncodeToString(b), done: make(map[string]int), stop: make(chan struct{})}
}

// add records a message about to be queued.
func (m *marks) add(id string) {
	m.mu.Lock()
	heap.Push(&m.pending, id)
	m.mu.Unlock()
}

// finish records that messages left the queue (written, failed for good, or not queued).
func (m *marks) finish(ids ...string) {
	m.mu.Lock()
	for _, id := range ids {
		m.done[id]++
	}
	m.mu.Unlock()
}

// current is this store's mark: the smallest msgid it has queued and not written, or the ID
// time prefix of now when there is none. Every message of this store not visible yet has a
// msgid at or above it (as long as its broker makes IDs with a hook.IDGenerator on the same
// clock, and calls Write as soon as it made the ID).
func (m *marks) current() string {
	now := hook.IDTimePrefix(time.Now())
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.pending) > 0 {
		top := m.pending[0]
		n := m.done[top]
		if n == 0 {
			break
		}
		heap.Pop(&m.pending)
		if n == 1 {
			delete(m.done, top)
		} else {
			m.done[top] = n - 1
		}
	}
	if len(m.pending) == 0 || m.pending[0] >= now {
		return now
	}
	// A message queued for longer than a mark lives (an outage) no longer holds the other
	// brokers' fetches back: its writer could have died as well.
	return max(m.pending[0], hook.IDTimePrefix(time.Now().Add(-markTTL*time.Second)))
}

// publishMark writes this store's mark, and starts republishing it every markInterval.
func (s *Store) publishMark(ctx context.Context) error {
	if !s.marksOK {
		return nil
	}
	m := s.marks
	if !m.on.Swap(true) {
		m.wg.Add(1)
		go s.republish()
	}
	return s.sess.Query(s.q.insMark, m.id, m.current(), markTTL).ExecContext(ctx)
}

func (s *Store) republish() {
	defer s.marks.wg.Done()
	t := time.NewTicker(markInterval)
	defer t.Stop()
	for {
		select {
		case <-s.marks.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.QueryTimeout)
			_ = s.sess.Query(s.q.insMark, s.marks.id, s.marks.current(), markTTL).ExecContext(ctx)
			cancel()
		}
	}
}

// closeMarks stops republishing and deletes this store's mark, so that it holds no fetch back.
func (s *Store) closeMarks(ctx context.Context) {
	close(s.marks.stop)
	s.marks.wg.Wait()
	if s.marks.on.Load() {
		_ = s.sess.Query(s.q.delMark, s.marks.id).ExecContext(ctx)
	}
}

// frontier is the msgid below which every message is visible: the smallest mark of the
// writers (this store's own, current, and the others' as published). "" means no limit.
func (s *Store) frontier(ctx context.Context) (string, error) {
	if !s.marksOK {
		return "", nil
	}
	f := s.marks.current()
	iter := s.sess.Query(s.q.selMarks).IterContext(ctx)
	var id, mark string
	for iter.Scan(&id, &mark) {
		if id != s.marks.id && mark < f {
			f = mark
		}
	}
	if err := iter.Close(); err != nil && err != gocql.ErrNotFound {
		return "", err
	}
	return f, nil
}
