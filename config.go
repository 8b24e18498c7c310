package celerity

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
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
	// Concurrency is worker_concurrency (-c): tasks run at once. Default:
	// the number of CPUs.
	Concurrency int
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
	if c.Concurrency == 0 {
		c.Concurrency = runtime.NumCPU()
	}
	if c.Concurrency < 0 {
		return errors.New("celerity: concurrency must be positive")
	}
	if c.PrefetchMultiplier == 0 {
		c.PrefetchMultiplier = 4
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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ResultJSON < ResultJSONAuto || c.ResultJSON > ResultJSONTyped {
		return fmt.Errorf("celerity: unknown ResultJSON %d", c.ResultJSON)
	}
	return nil
}

// prefetch is the number of messages reserved ahead of execution.
func (c *Config) prefetch() int {
	if c.PrefetchMultiplier < 0 {
		return 1 << 16
	}
	return c.Concurrency * c.PrefetchMultiplier
}

// declarations returns the queues to declare before consuming.
func (c *Config) declarations() []transports.Queue {
	out := make([]transports.Queue, 0, len(c.Queues))
	for _, name := range c.Queues {
		q := transports.Queue{Name: name, Exchange: name, ExchangeType: "direct", RoutingKey: name, Durable: true}
		for _, d := range c.Declare {
			if d.Name == name {
				q = d
				break
			}
		}
		out = append(out, q)
	}
	return out
}
