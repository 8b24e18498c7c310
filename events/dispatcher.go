// Package events sends Celery events (celery/events/dispatcher.py) from a
// celerity worker: worker-online/heartbeat/offline and, when enabled, the
// task-* events, on the celeryev exchange, so `celery events`, Flower and
// celery.events.State see the worker like a Python one.
package events

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/transports"
)

// Exchange is Celery's default event exchange (event_exchange).
const Exchange = "celeryev"

// SoftwareIdent is the worker events' sw_ident. Celery reports
// "py-celery"; no receiver (celery.events.state, Flower) interprets it,
// so celerity says what it is.
const SoftwareIdent = "celerity"

// Options configure a Dispatcher.
type Options struct {
	// Hostname is the worker's node name, e.g. "celery@host". Required.
	Hostname string
	// Exchange defaults to "celeryev".
	Exchange string
	// Serializer is event_serializer, default "json".
	Serializer string
	// Freq is the heartbeat interval, default 2 s.
	Freq time.Duration
	// TaskEvents starts with task events on (-E, worker_send_task_events).
	TaskEvents bool
	// Stats reports active/processed for worker events; nil sends zeros.
	Stats func() celerity.Stats
	// Clock is the worker's Lamport clock (shared with the control node);
	// nil creates one.
	Clock *Clock
	// Buffer is how many events may wait for publishing (default 4096);
	// beyond that events are dropped and counted.
	Buffer int
	// Version is sw_ver (default "dev").
	Version string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Dispatcher publishes events. Its TaskEvent method (celerity.Observer)
// never blocks: events go through a bounded queue drained by Run.
type Dispatcher struct {
	tr    transports.Transport
	opts  Options
	clock *Clock
	log   *slog.Logger
	pid   int64

	taskEvents atomic.Bool
	dropped    atomic.Uint64
	sent       atomic.Uint64
	queue      chan map[string]any
	beat       chan struct{}

	mu      sync.Mutex
	running bool
}

var _ celerity.Observer = (*Dispatcher)(nil)

// New returns a dispatcher publishing on tr. Call Run to start it.
func New(tr transports.Transport, opts Options) *Dispatcher {
	if opts.Exchange == "" {
		opts.Exchange = Exchange
	}
	if opts.Serializer == "" {
		opts.Serializer = "json"
	}
	if opts.Freq <= 0 {
		opts.Freq = 2 * time.Second
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 4096
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = &Clock{}
	}
	d := &Dispatcher{
		tr: tr, opts: opts, clock: opts.Clock, log: opts.Logger, pid: int64(os.Getpid()),
		queue: make(chan map[string]any, opts.Buffer),
		beat:  make(chan struct{}, 1),
	}
	d.taskEvents.Store(opts.TaskEvents)
	return d
}

// EnableTaskEvents turns task events on (the enable_events command); it
// reports whether they were off.
func (d *Dispatcher) EnableTaskEvents() bool { return !d.taskEvents.Swap(true) }

// DisableTaskEvents turns task events off; it reports whether they were on.
func (d *Dispatcher) DisableTaskEvents() bool { return d.taskEvents.Swap(false) }

// TaskEventsEnabled reports whether task events are sent.
func (d *Dispatcher) TaskEventsEnabled() bool { return d.taskEvents.Load() }

// SendHeartbeat asks Run to send a worker-heartbeat now (the heartbeat
// command).
func (d *Dispatcher) SendHeartbeat() {
	select {
	case d.beat <- struct{}{}:
	default:
	}
}

// Dropped returns how many events were discarded because the queue was
// full or publishing failed.
func (d *Dispatcher) Dropped() uint64 { return d.dropped.Load() }

// Sent returns how many events were published.
func (d *Dispatcher) Sent() uint64 { return d.sent.Load() }

// UTCOffset is Celery's utcoffset(): hours west of UTC, floor-divided
// (UTC → 0, CET → -1, IST (+5:30) → -6).
func UTCOffset(t time.Time) int64 {
	_, east := t.Zone()
	return int64(math.Floor(float64(-east) / 3600))
}

func unixFloat(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// event builds the common fields (Celery's Event plus dispatcher fields).
func (d *Dispatcher) event(typ string, now time.Time) map[string]any {
	return map[string]any{
		"type":      typ,
		"hostname":  d.opts.Hostname,
		"utcoffset": UTCOffset(now),
		"pid":       d.pid,
		"clock":     d.clock.Forward(),
		"timestamp": unixFloat(now),
	}
}

// Send queues a custom event of type typ with extra fields; false when it
// was dropped. Task events ("task-*") are dropped while disabled.
func (d *Dispatcher) Send(typ string, fields map[string]any) bool {
	if strings.HasPrefix(typ, "task-") && !d.taskEvents.Load() {
		return false
	}
	ev := d.event(typ, time.Now())
	for k, v := range fields {
		ev[k] = v
	}
	return d.enqueue(ev)
}

func (d *Dispatcher) enqueue(ev map[string]any) bool {
	select {
	case d.queue <- ev:
		return true
	default:
		d.dropped.Add(1)
		return false
	}
}

func isoOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return protocolv2.FormatTime(t)
}

func strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// TaskEvent turns a worker task event into Celery's event dict and queues
// it (celerity.Observer). It does nothing while task events are off.
func (d *Dispatcher) TaskEvent(te *celerity.TaskEvent) {
	if !d.taskEvents.Load() {
		return
	}
	now := te.Time
	if now.IsZero() {
		now = time.Now()
	}
	ev := d.event(te.Type, now)
	ev["uuid"] = te.TaskID
	switch te.Type {
	case celerity.EventTaskReceived:
		ev["name"] = te.TaskName
		var args, kwargs string
		var root, parent any
		var eta, expires any
		var retries int64
		if r := te.Request; r != nil {
			if r.Message != nil && r.Message.ArgsRepr != "" {
				args = r.Message.ArgsRepr
			} else {
				args = protocolv2.ArgsRepr(r.Args)
			}
			if r.Message != nil && r.Message.KwargsRepr != "" {
				kwargs = r.Message.KwargsRepr
			} else {
				kwargs = protocolv2.KwargsRepr(r.Kwargs)
			}
			root, parent = strOrNil(r.RootID), strOrNil(r.ParentID)
			retries = int64(r.Retries)
			eta, expires = isoOrNil(r.ETA), isoOrNil(r.Expires)
		} else {
			args, kwargs = "()", "{}"
		}
		ev["args"], ev["kwargs"] = args, kwargs
		ev["root_id"], ev["parent_id"] = root, parent
		ev["retries"], ev["eta"], ev["expires"] = retries, eta, expires
	case celerity.EventTaskSucceeded:
		ev["result"] = protocolv2.SafeRepr(te.Result, protocolv2.ArgsReprMaxSize)
		ev["runtime"] = te.Runtime.Seconds()
	case celerity.EventTaskFailed:
		ev["exception"] = te.Exception
		if te.Traceback != "" || te.Request != nil {
			ev["traceback"] = te.Traceback
		}
	case celerity.EventTaskRetried:
		ev["exception"] = te.Exception
		ev["traceback"] = te.Traceback
	case celerity.EventTaskRevoked:
		ev["terminated"] = te.Terminated
		var signum any
		if te.Terminated {
			signum = int64(15) // SIGTERM, Celery's default terminate signal
		}
		ev["signum"] = signum
		ev["expired"] = te.Expired
	case celerity.EventTaskRejected:
		ev["requeue"] = te.Requeue
	}
	d.enqueue(ev)
}

// loadavg is celery.utils.sysinfo.load_average: /proc/loadavg rounded up
// to two decimals.
func loadavg() []any {
	out := []any{0.0, 0.0, 0.0}
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		if v, err := strconv.ParseFloat(f[i], 64); err == nil {
			out[i] = math.Ceil(v*100) / 100
		}
	}
	return out
}

func swSys() string {
	switch runtime.GOOS {
	case "linux":
		return "Linux"
	case "darwin":
		return "Darwin"
	case "windows":
		return "Windows"
	case "freebsd":
		return "FreeBSD"
	}
	return runtime.GOOS
}

// workerEvent is Heart._send: freq, active, processed, loadavg, software.
func (d *Dispatcher) workerEvent(typ string) map[string]any {
	ev := d.event(typ, time.Now())
	var st celerity.Stats
	if d.opts.Stats != nil {
		st = d.opts.Stats()
	}
	ev["freq"] = d.opts.Freq.Seconds()
	ev["active"] = int64(st.Active)
	ev["processed"] = st.Processed
	ev["loadavg"] = loadavg()
	ev["sw_ident"] = SoftwareIdent
	ev["sw_ver"] = d.opts.Version
	ev["sw_sys"] = swSys()
	return ev
}

// Run declares the event exchange (fanout on Redis, durable topic
// elsewhere, as Celery's get_exchange), sends worker-online, a
// worker-heartbeat every Freq and publishes queued events until ctx is
// done; then it publishes what is still queued and sends worker-offline
// (bounded by a few seconds).
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return errors.New("events: dispatcher already running")
	}
	d.running = true
	d.mu.Unlock()
	defer func() { d.mu.Lock(); d.running = false; d.mu.Unlock() }()

	if b, ok := d.tr.(transports.Broadcaster); ok {
		ex := transports.Exchange{Name: d.opts.Exchange, Type: "topic", Durable: true}
		if b.DriverType() == "redis" {
			ex.Type = "fanout"
		}
		if err := b.DeclareExchange(ctx, ex); err != nil {
			return err
		}
	}
	d.publish(ctx, d.workerEvent("worker-online"))
	tick := time.NewTicker(d.opts.Freq)
	defer tick.Stop()
	batch := make([]map[string]any, 0, 64)
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			d.drain(sctx, batch[:0])
			d.publish(sctx, d.workerEvent("worker-offline"))
			return nil
		case <-tick.C:
			d.publish(ctx, d.workerEvent("worker-heartbeat"))
		case <-d.beat:
			d.publish(ctx, d.workerEvent("worker-heartbeat"))
		case ev := <-d.queue:
			batch = append(batch[:0], ev)
			d.flush(ctx, d.collect(batch))
		}
	}
}

// collect adds whatever else is queued (up to 100 events), so a busy
// worker sends task events in task.multi batches like a prefork worker.
func (d *Dispatcher) collect(batch []map[string]any) []map[string]any {
	for len(batch) < 100 {
		select {
		case ev := <-d.queue:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

func (d *Dispatcher) drain(ctx context.Context, batch []map[string]any) {
	for {
		batch = d.collect(batch[:0])
		if len(batch) == 0 {
			return
		}
		d.flush(ctx, batch)
	}
}

// flush publishes one event as itself, or several task events as one
// JSON list under routing key "task.multi" (receivers accept both).
func (d *Dispatcher) flush(ctx context.Context, batch []map[string]any) {
	if len(batch) == 1 {
		d.publish(ctx, batch[0])
		return
	}
	list := make([]any, len(batch))
	for i, ev := range batch {
		list[i] = ev
	}
	d.send(ctx, "task.multi", list, uint64(len(batch)))
}

func (d *Dispatcher) publish(ctx context.Context, ev map[string]any) {
	typ, _ := ev["type"].(string)
	d.send(ctx, strings.ReplaceAll(typ, "-", "."), ev, 1)
}

func (d *Dispatcher) send(ctx context.Context, routingKey string, body any, n uint64) {
	data, ct, ce, err := kombu.Marshal(d.opts.Serializer, body, kombu.JSONPlain)
	if err != nil {
		d.dropped.Add(n)
		d.log.Error("events: cannot serialize event", "routing_key", routingKey, "error", err)
		return
	}
	m := &kombu.Message{
		Body: data, ContentType: ct, ContentEncoding: ce,
		Headers:    map[string]any{"hostname": d.opts.Hostname},
		Properties: kombu.Properties{DeliveryMode: 1},
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.tr.Publish(pctx, d.opts.Exchange, routingKey, m); err != nil {
		d.dropped.Add(n)
		if ctx.Err() == nil {
			d.log.Warn("events: cannot publish event", "routing_key", routingKey, "error", err)
		}
		return
	}
	d.sent.Add(n)
}
