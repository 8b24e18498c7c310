package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/metrics"
)

func TestCollectorCountsEvents(t *testing.T) {
	c := metrics.New("", func() celerity.Stats { return celerity.Stats{Active: 3, Processed: 42, Concurrency: 4, Prefetch: 16} })
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []celerity.TaskEvent{
		{Type: celerity.EventTaskReceived, TaskName: "tasks.add"},
		{Type: celerity.EventTaskReceived, TaskName: "tasks.add"},
		{Type: celerity.EventTaskSucceeded, TaskName: "tasks.add", Runtime: 2 * time.Millisecond},
		{Type: celerity.EventTaskFailed, TaskName: "tasks.add", Runtime: time.Millisecond},
		{Type: celerity.EventTaskFailed, TaskName: "tasks.nope"},
		{Type: celerity.EventTaskRetried, TaskName: "tasks.add"},
		{Type: celerity.EventTaskRevoked, TaskName: "tasks.add", Expired: true},
		{Type: celerity.EventTaskRejected, TaskName: "tasks.x", Requeue: false},
	} {
		c.TaskEvent(&ev)
	}
	want := `
# HELP celery_tasks_finished_total Tasks that ran to an end, by task name and state (SUCCESS or FAILURE).
# TYPE celery_tasks_finished_total counter
celery_tasks_finished_total{state="FAILURE",task="tasks.add"} 1
celery_tasks_finished_total{state="FAILURE",task="tasks.nope"} 1
celery_tasks_finished_total{state="SUCCESS",task="tasks.add"} 1
# HELP celery_tasks_received_total Task messages received, by task name.
# TYPE celery_tasks_received_total counter
celery_tasks_received_total{task="tasks.add"} 2
# HELP celery_tasks_retried_total Tasks that asked to be retried, by task name.
# TYPE celery_tasks_retried_total counter
celery_tasks_retried_total{task="tasks.add"} 1
# HELP celery_tasks_revoked_total Tasks discarded as revoked or expired, by task name and reason.
# TYPE celery_tasks_revoked_total counter
celery_tasks_revoked_total{reason="expired",task="tasks.add"} 1
# HELP celery_tasks_rejected_total Messages rejected (unknown, invalid or refused), by task name and requeue.
# TYPE celery_tasks_rejected_total counter
celery_tasks_rejected_total{requeue="false",task="tasks.x"} 1
# HELP celery_tasks_active Tasks running now.
# TYPE celery_tasks_active gauge
celery_tasks_active 3
# HELP celery_tasks_processed_total Tasks finished since the worker started.
# TYPE celery_tasks_processed_total counter
celery_tasks_processed_total 42
# HELP celery_worker_concurrency Executors now (pool_grow, pool_shrink and --autoscale change it).
# TYPE celery_worker_concurrency gauge
celery_worker_concurrency 4
# HELP celery_worker_prefetch_count Messages the worker may hold unacknowledged (Celery's prefetch count).
# TYPE celery_worker_prefetch_count gauge
celery_worker_prefetch_count 16
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"celery_tasks_finished_total", "celery_tasks_received_total", "celery_tasks_retried_total",
		"celery_tasks_revoked_total", "celery_tasks_rejected_total", "celery_tasks_active", "celery_tasks_processed_total",
		"celery_worker_concurrency", "celery_worker_prefetch_count"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "celery_task_runtime_seconds"); n != 1 {
		t.Errorf("runtime histogram series: %d, want 1", n)
	}
}
