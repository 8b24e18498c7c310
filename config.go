package celerity

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/celerity-go/celerity/transports"
)

// ResultJSON chooses how JSON results encode values that JSON lacks
// (datetime, Decimal, UUID, bytes).
type ResultJSON int

const (
	// ResultJSONAuto answers each task in the dialect of its producer:
	// kombu ≥ 5.3 {"__type__", "__value__"} markers when the message came
	// from Celery ≥ 5.3 (it carries the stamped_headers header), kombu 5.2
	// plain strings otherwise. Both read their own dialect back as the
	// original types; the other dialect would reach them as strings or
	// dicts.
	ResultJSONAuto ResultJSON = iota
	// ResultJSONPlain always writes kombu 5.2 style plain values.
	ResultJSONPlain
	// ResultJSONTyped always writes kombu ≥ 5.3 typed markers.
	ResultJSONTyped
)

// Config configures a Worker. Field names follow Celery's settings; the
// defaults are Celery's.
type Config struct {
	// Hostname is the node name (-n), default "celery@" + os.Hostname().
	Hostname string
	// Queues are the queues consumed (-Q), default ["celery"].
	Queues []string
	// Declare describes how to declare the consumed queues (task_queues).
	// A consumed queue not described here is declared the way Celery
	// declares a queue it creates on demand: a durable direct exchange
	// named after the queue, bound with the queue's name.
	Declare []transports.Queue
	// WorkerDirect is worker_direct: the worker also consumes its own
	// queue "<Hostname>.dq2", bound to the direct exchange "C.dq2" with
	// the node name, where celery.utils.worker_direct routes a task meant
	// for this worker alone.
	WorkerDirect bool
	// Concurrency is worker_concurrency (-c): tasks run at once. Default:
	// the number of CPUs.
	Concurrency int
	// AutoscaleMax and AutoscaleMin are celery worker --autoscale=max,min.
	// With AutoscaleMax > 0 the worker starts AutoscaleMin executors
	// (Concurrency is then unused), adds executors up to AutoscaleMax as
	// tasks arrive, and removes idle ones down to AutoscaleMin once
	// AutoscaleKeepalive has passed since the last addition. The prefetch
	// window is AutoscaleMax × PrefetchMultiplier, as in Celery.
	AutoscaleMax, AutoscaleMin int
	// AutoscaleKeepalive is Celery's AUTOSCALE_KEEPALIVE, default 30 s.
	AutoscaleKeepalive time.Duration
	// PrefetchMultiplier is worker_prefetch_multiplier: up to
	// Concurrency × PrefetchMultiplier messages are reserved ahead of
	// execution. Default 4; a negative value means unlimited (Celery's 0).
	PrefetchMultiplier int
	// AcksLate is task_acks_late: acknowledge after the task finished and
	// its result was stored, instead of when it starts.
	AcksLate bool
	// TrackStarted is task_track_started: store STARTED before running.
	TrackStarted bool
	// ResultExtended is result_extended: store name, args, kwargs, worker,
	// retries and queue with the result.
	ResultExtended bool
	// AcceptContent is accept_content, default ["json"].
	AcceptContent []string
	// ResultJSON selects the JSON dialect of stored results.
	ResultJSON ResultJSON
	// MaxRetries is the default max_retries for Retry (3); negative means
	// retry forever.
	MaxRetries *int
	// DefaultRetryDelay is the default retry countdown (180 s).
	DefaultRetryDelay time.Duration
	// Logger receives the worker's log lines; default slog.Default().
	Logger *slog.Logger

	// TimeLimit is task_time_limit, the hard time limit (0: none). When it
	// passes, FAILURE TimeLimitExceeded is stored and the execution slot
	// is freed at once. Go cannot kill a goroutine: a handler that ignores
	// its context keeps running in the background until it returns, and
	// its result is discarded.
	TimeLimit time.Duration
	// SoftTimeLimit is task_soft_time_limit (0: none): the handler's
	// context is cancelled with cause ErrSoftTimeLimitExceeded.
	SoftTimeLimit time.Duration
	// AcksOnFailureOrTimeout is task_acks_on_failure_or_timeout (nil:
	// true). With acks late, a failed or timed-out task is acknowledged
	// when true and rejected without requeue when false, as Celery does.
	AcksOnFailureOrTimeout *bool
	// RejectOnWorkerLost is task_reject_on_worker_lost. Celery requeues a
	// late-acked task whose pool process died. A Go handler cannot die on
	// its own (panics become FAILURE, hard time limits store
	// TimeLimitExceeded as in Celery); when the whole worker dies, its
	// unacknowledged late-ack messages go back to the broker anyway, which
	// is what this setting asks for. It is accepted for parity and has no
	// further effect.
	RejectOnWorkerLost bool
	// StoreErrorsEvenIfIgnored is task_store_errors_even_if_ignored: store
	// FAILURE, RETRY and REVOKED for tasks whose result is ignored.
	StoreErrorsEvenIfIgnored bool
	// Timezone is Celery's timezone setting: naive eta and expires values
	// (no UTC offset, e.g. from a client with enable_utc=False that passed
	// a naive datetime) are read as wall-clock times in this zone, as a
	// Celery worker configured with the same timezone reads them. nil
	// reads them as UTC (Celery's default). Offset-aware values keep their
	// offset either way.
	Timezone *time.Location
	// RateLimits maps task names to rate limits ("10/s", "100/m",
	// "1000/h"), like task_annotations = {name: {"rate_limit": ...}}; they
	// win over TaskOptions.RateLimit.
	RateLimits map[string]string
	// TouchInterval is how often held (ETA or rate-limited) messages are
	// refreshed on consumers that implement DeliveryToucher, so a broker
	// visibility timeout (Redis) does not hand them to another consumer.
	// Default 60 s.
	TouchInterval time.Duration

	// Observers receive task events (Celery events, metrics, tracing).
	Observers []Observer
	// DefaultQueue is task_default_queue ("celery"): where the worker
	// publishes canvas follow-ups (chain steps, callbacks, chord bodies)
	// that name no queue and match no route.
	DefaultQueue string
	// Routes is the name → queue part of task_routes, for follow-ups; keys
	// may be glob patterns ("app1.*").
	Routes map[string]string
}

func (c *Config) setDefaults() error {
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			h = "localhost"
		}
		c.Hostname = "celery@" + h
	}
	if len(c.Queues) == 0 {
		c.Queues = []string{"celery"}
	}
	if c.WorkerDirect {
		dq := WorkerDirectQueue(c.Hostname)
		if !slices.Contains(c.Queues, dq.Name) {
			c.Queues = append(slices.Clip(c.Queues), dq.Name)
			c.Declare = append(slices.Clip(c.Declare), dq)
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = runtime.NumCPU()
	}
	if c.Concurrency < 0 || c.Concurrency > MaxPool {
		return fmt.Errorf("celerity: concurrency must be between 1 and %d", MaxPool)
	}
	if c.AutoscaleMax != 0 || c.AutoscaleMin != 0 {
		if err := checkAutoscale(c.AutoscaleMax, c.AutoscaleMin); err != nil {
			return err
		}
	}
	if c.AutoscaleKeepalive == 0 {
		c.AutoscaleKeepalive = 30 * time.Second
	}
	if c.PrefetchMultiplier == 0 {
		c.PrefetchMultiplier = 4
	}
	if c.DefaultQueue == "" {
		c.DefaultQueue = "celery"
	}
	if len(c.AcceptContent) == 0 {
		c.AcceptContent = []string{"json"}
	}
	if c.MaxRetries == nil {
		three := 3
		c.MaxRetries = &three
	}
	if c.DefaultRetryDelay == 0 {
		c.DefaultRetryDelay = 180 * time.Second
	}
	if c.TimeLimit < 0 || c.SoftTimeLimit < 0 {
		return errors.New("celerity: time limits must not be negative")
	}
	if c.TouchInterval <= 0 {
		c.TouchInterval = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ResultJSON < ResultJSONAuto || c.ResultJSON > ResultJSONTyped {
		return fmt.Errorf("celerity: unknown ResultJSON %d", c.ResultJSON)
	}
	return nil
}

// WorkerDirectQueue is Celery's worker_direct(hostname): the queue
// "<hostname>.dq2", durable, bound to the durable direct exchange "C.dq2"
// with the node name as routing key.
func WorkerDirectQueue(hostname string) transports.Queue {
	return transports.Queue{Name: hostname + ".dq2", Exchange: "C.dq2", ExchangeType: "direct",
		RoutingKey: hostname, Durable: true}
}

// maxBrokerPrefetch is the largest AMQP basic.qos prefetch_count (a
// short).
const maxBrokerPrefetch = 1<<16 - 1

// brokerPrefetch is the prefetch count the broker is given for a window
// of n: 0 (no limit) when prefetch is unlimited, as Celery sets it, and
// at most what basic.qos can carry (a larger window would wrap around).
func (c *Config) brokerPrefetch(n int) int {
	if c.PrefetchMultiplier < 0 {
		return 0
	}
	return min(n, maxBrokerPrefetch)
}

// prefetch is the number of messages reserved ahead of execution.
func (c *Config) prefetch() int {
	if c.PrefetchMultiplier < 0 {
		return 1 << 16
	}
	if c.AutoscaleMax > 0 {
		return c.AutoscaleMax * c.PrefetchMultiplier
	}
	return c.Concurrency * c.PrefetchMultiplier
}

// declarations returns the queues to declare before consuming.
func (c *Config) declarations() []transports.Queue {
	out := make([]transports.Queue, 0, len(c.Queues))
	for _, name := range c.Queues {
		q, _ := c.declaration(name)
		out = append(out, q)
	}
	return out
}

// declaration returns queue name as Config.Declare describes it
// (configured true), or as Celery creates a queue on demand: a durable
// direct exchange named after the queue, bound with the queue's name.
func (c *Config) declaration(name string) (q transports.Queue, configured bool) {
	if i := slices.IndexFunc(c.Declare, func(d transports.Queue) bool { return d.Name == name }); i >= 0 {
		return c.Declare[i], true
	}
	return transports.Queue{Name: name, Exchange: name, ExchangeType: "direct", RoutingKey: name, Durable: true}, false
}
