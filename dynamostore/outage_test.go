package dynamostore_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/dynamostore"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// TestOutage30s: the endpoint is unreachable for 30 s under a steady, bounded publish load,
// through a TCP proxy between the SDK and dynalite: 15 s of Reset (connections refused and
// cut, as a stopped server) then 15 s of Blackhole (connections accepted, nothing answered:
// a partition, where only timeouts tell), then Pass. The publisher never stops. Afterwards
// every message is in mqtt_msg exactly once and in its topic's MsgId set, read back with
// Scans on dynalite directly (not through the proxy), and the writer counted no failure and
// no drop: the writer owns the retries (the SDK makes one attempt per write), so an outage
// longer than any timeout fails nothing for good.
func TestOutage30s(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s outage; run without -short")
	}
	t.Parallel()
	cfg := testConfig(t)
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	direct := testenv.DynamoConfig{Endpoint: cfg.Endpoint, Region: cfg.Region}.Client()
	cfg.Endpoint = "http://" + proxy.Addr()
	// Short timeouts and backoff so that the writer sees the outage, and its end, soon; the
	// retries are unlimited (MaxAttempts 0, the default).
	cfg.Options.QueryTimeout = 2 * time.Second
	cfg.Options.ConnectTimeout = time.Second
	cfg.Options.Retry = backend.Retry{MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second}
	f := newFixture(t, cfg)

	const (
		before, reset, blackhole, after = 2 * time.Second, 15 * time.Second, 15 * time.Second, 2 * time.Second
		every                           = 20 * time.Millisecond // 50 msg/s
		topics                          = 10
	)
	max := int((before+reset+blackhole+after)/every) + 1 // the bound on the count
	var (
		mu   sync.Mutex
		sent []*hook.Message
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; i < max; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			m := f.msg(fmt.Sprintf("outage/%d", i%topics), 1, fmt.Sprint("m", i))
			// Write only enqueues: it must not fail, nor block, while the endpoint is down.
			if err := f.act[hook.OnMessagePublish].(hook.WriteAction).Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			mu.Lock()
			sent = append(sent, m)
			mu.Unlock()
		}
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sent)
	}

	time.Sleep(before)
	proxy.Set(testenv.Reset)
	atReset := count()
	time.Sleep(reset)
	proxy.Set(testenv.Blackhole)
	retriedInReset := f.s.Stats().Retried
	time.Sleep(blackhole)
	proxy.Set(testenv.Pass)
	atPass := count()
	retriedInOutage := f.s.Stats().Retried
	time.Sleep(after)
	close(stop)
	<-done

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := f.s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := f.s.Stats()
	n := count()
	t.Logf("published %d messages (%d before the outage, %d during it, %d after); stats %+v; retried during Reset %d, by the end of Blackhole %d",
		n, atReset, atPass-atReset, n-atPass, st, retriedInReset, retriedInOutage)
	if retriedInReset == 0 || retriedInOutage <= retriedInReset {
		t.Errorf("retries counted by the end of Reset %d, of Blackhole %d: the writer did not see both outages", retriedInReset, retriedInOutage)
	}
	f.noFailures()
	if st.Success != uint64(n) {
		t.Errorf("stats %+v: want %d successes", st, n)
	}

	// Read back from dynalite: every message once in mqtt_msg, with its payload, and in its
	// topic's set; nothing else.
	stored := map[string]int{}
	payloads := map[string]string{}
	scan(t, direct, f.s.TableName(dynamostore.TableMsg), func(it map[string]types.AttributeValue) {
		id := it["msgid"].(*types.AttributeValueMemberS).Value
		stored[id]++
		payloads[id] = it["payload"].(*types.AttributeValueMemberS).Value
	})
	sets := map[string][]string{}
	scan(t, direct, f.s.TableName(dynamostore.TableTopicMsg), func(it map[string]types.AttributeValue) {
		tp := it["topic"].(*types.AttributeValueMemberS).Value
		sets[tp] = append(sets[tp], it["MsgId"].(*types.AttributeValueMemberSS).Value...)
	})
	want := map[string][]string{}
	missing, wrong := 0, 0
	for _, m := range sent {
		want[m.Topic] = append(want[m.Topic], m.ID)
		switch {
		case stored[m.ID] == 0:
			missing++
		case payloads[m.ID] != string(m.Payload):
			wrong++
		}
	}
	if missing > 0 || wrong > 0 || len(stored) != n {
		t.Errorf("mqtt_msg holds %d distinct messages of %d published: %d missing, %d with a wrong payload", len(stored), n, missing, wrong)
	}
	for tp, ids := range want {
		got := sets[tp]
		slices.Sort(got)
		slices.Sort(ids)
		if !slices.Equal(got, ids) {
			t.Errorf("mqtt_topic_msg_map[%s] holds %d ids; want the %d published there", tp, len(got), len(ids))
		}
	}
	if len(sets) != len(want) {
		t.Errorf("mqtt_topic_msg_map has %d topics; want %d", len(sets), len(want))
	}
	// And the store's own fetch agrees.
	if got := f.fetch("x", "outage/#"); len(got) != n {
		t.Errorf("fetch of outage/# returned %d messages; want %d", len(got), n)
	}
}

// scan calls fn with every item of table (consistent reads), page by page.
func scan(t *testing.T, db *dynamodb.Client, table string, fn func(map[string]types.AttributeValue)) {
	t.Helper()
	pages := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			fn(it)
		}
	}
}
