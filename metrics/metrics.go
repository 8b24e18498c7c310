// Package metrics exposes a worker's task events as Prometheus metrics. A
// Collector is a celerity.Observer: add it to Config.Observers and
// register it with a prometheus.Registerer.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/celerity-go/celerity"
)

// Collector counts task events by task name and outcome.
type Collector struct {
	received  *prometheus.CounterVec
	finished  *prometheus.CounterVec
	retried   *prometheus.CounterVec
	revoked   *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	runtime   *prometheus.HistogramVec
	collector []prometheus.Collector
}

// New returns a Collector whose metric names start with namespace
// ("celery" when empty). When stats is not nil (Worker.Stats), the
// Collector also reports the running and processed task counts, the
// number of executors and the prefetch count.
func New(namespace string, stats func() celerity.Stats) *Collector {
	if namespace == "" {
		namespace = "celery"
	}
	c := &Collector{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tasks_received_total",
			Help: "Task messages received, by task name.",
		}, []string{"task"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tasks_finished_total",
			Help: "Tasks that ran to an end, by task name and state (SUCCESS or FAILURE).",
		}, []string{"task", "state"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tasks_retried_total",
			Help: "Tasks that asked to be retried, by task name.",
		}, []string{"task"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tasks_revoked_total",
			Help: "Tasks discarded as revoked or expired, by task name and reason.",
		}, []string{"task", "reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tasks_rejected_total",
			Help: "Messages rejected (unknown, invalid or refused), by task name and requeue.",
		}, []string{"task", "requeue"}),
		runtime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "task_runtime_seconds",
			Help:    "Handler run time, by task name.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 30, 120},
		}, []string{"task"}),
	}
	c.collector = []prometheus.Collector{c.received, c.finished, c.retried, c.revoked, c.rejected, c.runtime}
	if stats != nil {
		c.collector = append(c.collector,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Name: "tasks_active", Help: "Tasks running now.",
			}, func() float64 { return float64(stats().Active) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: namespace, Name: "tasks_processed_total", Help: "Tasks finished since the worker started.",
			}, func() float64 { return float64(stats().Processed) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Name: "worker_concurrency",
				Help: "Executors now (pool_grow, pool_shrink and --autoscale change it).",
			}, func() float64 { return float64(stats().Concurrency) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Name: "worker_prefetch_count",
				Help: "Messages the worker may hold unacknowledged (Celery's prefetch count).",
			}, func() float64 { return float64(stats().Prefetch) }),
		)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.collector {
		m.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.collector {
		m.Collect(ch)
	}
}

// TaskEvent implements celerity.Observer.
func (c *Collector) TaskEvent(ev *celerity.TaskEvent) {
	name := ev.TaskName
	switch ev.Type {
	case celerity.EventTaskReceived:
		c.received.WithLabelValues(name).Inc()
	case celerity.EventTaskSucceeded:
		c.finished.WithLabelValues(name, "SUCCESS").Inc()
		c.runtime.WithLabelValues(name).Observe(ev.Runtime.Seconds())
	case celerity.EventTaskFailed:
		if ev.Runtime > 0 {
			c.runtime.WithLabelValues(name).Observe(ev.Runtime.Seconds())
		}
		c.finished.WithLabelValues(name, "FAILURE").Inc()
	case celerity.EventTaskRetried:
		c.retried.WithLabelValues(name).Inc()
	case celerity.EventTaskRevoked:
		reason := "revoked"
		if ev.Expired {
			reason = "expired"
		} else if ev.Terminated {
			reason = "terminated"
		}
		c.revoked.WithLabelValues(name, reason).Inc()
	case celerity.EventTaskRejected:
		requeue := "false"
		if ev.Requeue {
			requeue = "true"
		}
		c.rejected.WithLabelValues(name, requeue).Inc()
	}
}
