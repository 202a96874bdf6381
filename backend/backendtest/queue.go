package backendtest

import (
	"testing"

	"github.com/mqttstore/mqttstore/hook"
)

// testQueue checks the one-to-one functions: a stored message goes to one subscriber, and is
// removed for everyone once acked.
func (s *suite) testQueue(t *testing.T) {
	s.require(t, hook.OnMessageFetchForQueue, hook.OnMessageAckedForQueue)
	open := func(t *testing.T) *famEnv {
		return s.openFamily(t, family{hook.OnMessageFetchForQueue, hook.OnMessageAckedForQueue})
	}
	t.Run("AckedMessageGoneForEveryone", func(t *testing.T) {
		x := open(t)
		q1, q2, q3 := x.msg("queue/a", 1, "q1"), x.msg("queue/a", 1, "q2"), x.msg("queue/a", 2, "q3")
		x.publish(x.store, q1, q2, q3)
		x.flush()
		checkMessages(t, "first fetch of queue/a by A", x.get("A", "queue/a"), q1, q2, q3)
		x.acked("A", q1, q3) // each acked message is removed, not a position moved
		x.flush()
		checkMessages(t, "fetch by B after A acked q1 and q3", x.get("B", "queue/a"), q2)
		checkMessages(t, "fetch by A after A acked q1 and q3", x.get("A", "queue/a"), q2)
		x.acked("B", q2)
		x.flush()
		checkMessages(t, "fetch by A after B acked q2", x.get("A", "queue/a"))
		checkMessages(t, "fetch by C after every message was acked", x.get("C", "queue/#"))
	})
	t.Run("FetchByWildcard", func(t *testing.T) {
		x := open(t)
		a, bc, other, b := x.msg("queue/a", 1, "a"), x.msg("queue/b/c", 1, "bc"), x.msg("queue2/x", 1, "other"), x.msg("queue/b", 1, "b")
		x.publish(x.store, a, bc, other, b)
		x.flush()
		if s.h.Features.WildcardFetch {
			checkMessages(t, "fetch of queue/#", x.get("A", "queue/#"), a, bc, b)
			checkMessages(t, "fetch of queue/+", x.get("A", "queue/+"), a, b)
		} else {
			x.checkWildcardRefused(x.fetcher, "A", "queue/#", false)
			x.checkWildcardRefused(x.fetcher, "A", "queue/+", false)
		}
		checkMessages(t, "fetch of queue/b/c", x.get("A", "queue/b/c"), bc)
	})
}

// testKeepLatest checks the _keep_latest functions: only the latest message of each topic is
// kept, and fetched while it is newer than the client's position on that topic.
func (s *suite) testKeepLatest(t *testing.T) {
	s.require(t, hook.OnMessageStoreKeepLatest, hook.OnMessageFetchForKeepLatest, hook.OnMessageAckedForKeepLatest)
	open := func(t *testing.T) (*env, hook.WriteAction, func(client, filter string) []*hook.Message, hook.WriteAction) {
		e := s.open(t)
		store := e.writer(hook.MessagePublish, hook.OnMessageStoreKeepLatest)
		fetch := e.looker(hook.SessionSubscribed, hook.OnMessageFetchForKeepLatest)
		ack := e.writer(hook.MessageAcked, hook.OnMessageAckedForKeepLatest)
		return e, store, func(client, filter string) []*hook.Message { t.Helper(); return e.fetch(fetch, client, filter) }, ack
	}
	t.Run("OnlyLatestPerTopic", func(t *testing.T) {
		e, store, get, _ := open(t)
		m1, m2, m3, m4 := e.msg("k/a", 1, "m1"), e.msg("k/a", 1, "m2"), e.msg("k/b", 0, "m3"), e.msg("k/a", 2, "m4")
		e.publish(store, m1, m2, m3, m4)
		e.flush()
		checkMessages(t, "fetch of k/#", get("A", "k/#"), m3, m4)
		checkMessages(t, "fetch of k/a", get("A", "k/a"), m4)
	})
	t.Run("ReturnedWhenNewerThanPosition", func(t *testing.T) {
		e, store, get, ack := open(t)
		m1, m2 := e.msg("k/a", 1, "m1"), e.msg("k/b", 1, "m2")
		e.publish(store, m1, m2)
		e.flush()
		e.ack(ack, "A", m1)
		e.flush()
		checkMessages(t, "fetch by A after acking m1 (k/a)", get("A", "k/#"), m2)
		e.ack(ack, "A", m2)
		e.flush()
		checkMessages(t, "fetch by A after acking both", get("A", "k/#"))
		m3 := e.msg("k/a", 1, "m3")
		e.publish(store, m3)
		e.flush()
		checkMessages(t, "fetch by A after m3 replaced m1", get("A", "k/#"), m3)
		checkMessages(t, "fetch by B, who acked nothing", get("B", "k/#"), m2, m3)
	})
	t.Run("AcksOutOfOrder", func(t *testing.T) {
		// A late ack of an older message never moves the position back.
		e, store, get, ack := open(t)
		m1 := e.msg("ko/a", 2, "m1")
		m2 := e.msg("ko/a", 2, "m2")
		e.publish(store, m1, m2)
		e.flush()
		e.ack(ack, "A", m2, m1)
		e.flush()
		checkMessages(t, "fetch by A after acking m2, then m1", get("A", "ko/a"))
		m3 := e.msg("ko/a", 1, "m3")
		e.publish(store, m3)
		e.ack(ack, "A", m3)
		e.flush()
		e.ack(ack, "A", m2) // later, on its own
		e.flush()
		checkMessages(t, "fetch by A after acking m3, then m2 again", get("A", "ko/a"))
	})
}
