// Package metrics exports the write counters of a Dispatcher's stores (backend.Stats) and of
// its spool in the Prometheus format, as a prometheus.Collector that a broker adds to its own
// registry:
//
//	reg.MustRegister(metrics.NewCollector(d, sp))
//
// The metrics, each labelled with the store's registered name:
//
//	mqttstore_writes_matched_total   writes handed to the store
//	mqttstore_writes_stored_total    writes stored
//	mqttstore_writes_failed_total    writes that failed for good (or were refused)
//	mqttstore_writes_retried_total   retries of batches or single writes
//	mqttstore_writes_dropped_total   writes not queued, with a reason label
//	mqttstore_writes_queued          writes waiting in the queue now
//	mqttstore_writes_inflight        writes being flushed now
//
// and, with a spool, mqttstore_spool_bytes and mqttstore_spool_pending_records. A store that
// does not count its writes (no backend.StatsReporter) has none. The values are read when
// Prometheus scrapes: the Collector keeps no state, and is safe for concurrent use.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/spool"
)

// Collector is a prometheus.Collector of a Dispatcher's store counters.
type Collector struct {
	d  *hook.Dispatcher
	sp *spool.Spool
}

// NewCollector returns a Collector of the stores registered with d at each scrape, and of
// sp's records when sp is not nil.
func NewCollector(d *hook.Dispatcher, sp *spool.Spool) *Collector {
	return &Collector{d: d, sp: sp}
}

var (
	storeLabel   = []string{"store"}
	descMatched  = prometheus.NewDesc("mqttstore_writes_matched_total", "Writes handed to the store.", storeLabel, nil)
	descStored   = prometheus.NewDesc("mqttstore_writes_stored_total", "Writes stored.", storeLabel, nil)
	descFailed   = prometheus.NewDesc("mqttstore_writes_failed_total", "Writes that failed for good, or were refused.", storeLabel, nil)
	descRetried  = prometheus.NewDesc("mqttstore_writes_retried_total", "Retries of batches or single writes.", storeLabel, nil)
	descDropped  = prometheus.NewDesc("mqttstore_writes_dropped_total", "Writes not queued, by reason.", []string{"store", "reason"}, nil)
	descQueued   = prometheus.NewDesc("mqttstore_writes_queued", "Writes waiting in the queue.", storeLabel, nil)
	descInflight = prometheus.NewDesc("mqttstore_writes_inflight", "Writes being flushed.", storeLabel, nil)
	descSpoolB   = prometheus.NewDesc("mqttstore_spool_bytes", "Bytes of the spool's segment files.", nil, nil)
	descSpoolP   = prometheus.NewDesc("mqttstore_spool_pending_records", "Spooled events not yet stored.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMatched, descStored, descFailed, descRetried, descDropped, descQueued, descInflight, descSpoolB, descSpoolP} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for name, b := range c.d.Backends() {
		sr, ok := b.(backend.StatsReporter)
		if !ok {
			continue
		}
		st := sr.Stats()
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name)
		}
		counter(descMatched, st.Matched)
		counter(descStored, st.Success)
		counter(descFailed, st.Failed)
		counter(descRetried, st.Retried)
		for reason, n := range st.Dropped {
			ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(n), name, reason)
		}
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(st.Queued), name)
		ch <- prometheus.MustNewConstMetric(descInflight, prometheus.GaugeValue, float64(st.Inflight), name)
	}
	if c.sp != nil {
		st := c.sp.Stats()
		ch <- prometheus.MustNewConstMetric(descSpoolB, prometheus.GaugeValue, float64(st.Bytes))
		ch <- prometheus.MustNewConstMetric(descSpoolP, prometheus.GaugeValue, float64(st.Pending))
	}
}
