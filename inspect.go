package celerity

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/celerity-go/celerity/internal/ratelimit"
	"github.com/celerity-go/celerity/internal/seconds"
	"github.com/celerity-go/celerity/transports"
)

// ErrUnknownTask is returned for a task name the worker has no handler for.
var ErrUnknownTask = errors.New("unknown task")

// ErrRevoked is the cause a revoked-and-terminated handler's context is
// cancelled with.
var ErrRevoked = errors.New("celerity: task revoked (terminate)")

// Celery keeps revoked ids in memory, at most 50,000 for 3 hours
// (celery/worker/state.py: REVOKES_MAX, REVOKE_EXPIRES).
const (
	revokesMax    = 50000
	revokeExpires = 3 * time.Hour
)

// revokedSet is Celery's LimitedSet of revoked task ids.
type revokedSet struct {
	mu    sync.Mutex
	at    map[string]time.Time
	order []string // insertion order, oldest first
}

func (s *revokedSet) add(id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = map[string]time.Time{}
	}
	if _, ok := s.at[id]; !ok {
		s.order = append(s.order, id)
	}
	s.at[id] = now
	s.pruneLocked(now)
}

func (s *revokedSet) pruneLocked(now time.Time) {
	drop := 0
	for drop < len(s.order) {
		id := s.order[drop]
		if len(s.order)-drop <= revokesMax && now.Sub(s.at[id]) < revokeExpires {
			break
		}
		delete(s.at, id)
		drop++
	}
	s.order = s.order[drop:]
}

func (s *revokedSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[id]
	return ok && time.Since(t) < revokeExpires
}

func (s *revokedSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(time.Now())
	return slices.Clone(s.order)
}

// running is a task being executed, for inspect active and terminate.
type running struct {
	start  time.Time
	cancel context.CancelCauseFunc
	acked  bool
}

// tracker knows what the worker holds: reserved (received, not started,
// possibly waiting for an ETA) and active tasks, and its counters.
type tracker struct {
	mu        sync.Mutex
	reserved  map[*job]struct{}
	active    map[*job]*running
	total     map[string]int64
	processed atomic.Int64
}

func newTracker() *tracker {
	return &tracker{reserved: map[*job]struct{}{}, active: map[*job]*running{}, total: map[string]int64{}}
}

func (tk *tracker) reserve(j *job) {
	tk.mu.Lock()
	tk.reserved[j] = struct{}{}
	tk.mu.Unlock()
}

func (tk *tracker) unreserve(j *job) {
	tk.mu.Lock()
	delete(tk.reserved, j)
	tk.mu.Unlock()
}

// start moves j from reserved to active.
func (tk *tracker) start(j *job, cancel context.CancelCauseFunc, acked bool) {
	tk.mu.Lock()
	delete(tk.reserved, j)
	tk.active[j] = &running{start: time.Now(), cancel: cancel, acked: acked}
	tk.mu.Unlock()
}

// done removes j from active and counts it as processed.
func (tk *tracker) done(j *job) {
	tk.mu.Lock()
	delete(tk.active, j)
	tk.total[j.t.Name]++
	tk.mu.Unlock()
	tk.processed.Add(1)
}

func (tk *tracker) info(j *job, hostname string) TaskInfo {
	r := j.req
	return TaskInfo{
		ID: r.ID, Name: r.Name, Args: r.Args, Kwargs: r.Kwargs, Hostname: hostname,
		DeliveryInfo: r.DeliveryInfo, ETA: r.ETA, Priority: r.DeliveryInfo.Priority,
	}
}

// Active returns the tasks running now (celery inspect active).
func (w *Worker) Active() []TaskInfo {
	tk := w.track
	tk.mu.Lock()
	defer tk.mu.Unlock()
	out := make([]TaskInfo, 0, len(tk.active))
	for j, r := range tk.active {
		ti := tk.info(j, w.cfg.Hostname)
		ti.TimeStart, ti.Acknowledged = r.start, r.acked
		out = append(out, ti)
	}
	return out
}

// reservedInfo lists reserved tasks whose ETA is (scheduled) or is not
// (reserved) in the future.
func (w *Worker) reservedInfo(scheduled bool) []TaskInfo {
	tk := w.track
	now := time.Now()
	tk.mu.Lock()
	defer tk.mu.Unlock()
	var out []TaskInfo
	for j := range tk.reserved {
		if j.req == nil {
			continue
		}
		if isScheduled := !j.t.ETA.IsZero() && j.t.ETA.After(now); isScheduled != scheduled {
			continue
		}
		out = append(out, tk.info(j, w.cfg.Hostname))
	}
	return out
}

// Reserved returns tasks received but not started, excluding ETA tasks
// (celery inspect reserved).
func (w *Worker) Reserved() []TaskInfo { return w.reservedInfo(false) }

// Scheduled returns tasks held for their ETA (celery inspect scheduled).
func (w *Worker) Scheduled() []TaskInfo { return w.reservedInfo(true) }

// Revoke marks ids as revoked: a revoked task that is received, or that is
// reserved and about to start, is not run but stored REVOKED and
// acknowledged. With terminate, running tasks with these ids have their
// context cancelled with cause ErrRevoked (a goroutine cannot be killed;
// signal is informational) and their ids are returned.
func (w *Worker) Revoke(ids []string, terminate bool, signal string) (terminated []string) {
	now := time.Now()
	for _, id := range ids {
		w.revoked.add(id, now)
	}
	if len(ids) > 0 {
		w.log.Info("Tasks flagged as revoked: "+strings.Join(ids, ", "), "task_ids", ids)
	}
	if !terminate {
		return nil
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	tk := w.track
	tk.mu.Lock()
	defer tk.mu.Unlock()
	for j, r := range tk.active {
		if want[j.t.ID] && r.cancel != nil {
			j.terminated.Store(true)
			r.cancel(ErrRevoked)
			terminated = append(terminated, j.t.ID)
		}
	}
	return terminated
}

// Revoked returns the revoked ids the worker remembers.
func (w *Worker) Revoked() []string { return w.revoked.list() }

// SetRateLimit changes a task's rate limit while the worker runs ("10/s",
// "100/m", "1000/h", a number per second; "" or "0" removes it).
func (w *Worker) SetRateLimit(task, rate string) error {
	if _, ok := w.handlers[task]; !ok {
		return ErrUnknownTask
	}
	r, err := ratelimit.Parse(rate)
	if err != nil {
		return err
	}
	w.rateMu.Lock()
	defer w.rateMu.Unlock()
	old := w.rates.Load()
	next := make(map[string]*ratelimit.Bucket, len(*old)+1)
	for k, v := range *old {
		next[k] = v
	}
	if r > 0 {
		next[task] = ratelimit.NewBucket(r)
	} else {
		delete(next, task)
	}
	w.rates.Store(&next)
	w.log.Info("New rate limit for tasks of type "+task+": "+rate+".", "task_name", task)
	return nil
}

// SetTimeLimit changes a task's own soft and hard time limits while the
// worker runs, in seconds, as Celery's time_limit command sets the task's
// soft_time_limit and time_limit: a message's timelimit header still
// comes first, and nil (None) or 0 leaves the task without a limit of its
// own, so the worker's setting applies. A limit must be a non-negative
// number; one beyond time.Duration's range (about 292 years) is taken as
// that range.
func (w *Worker) SetTimeLimit(task string, soft, hard *float64) error {
	if _, ok := w.handlers[task]; !ok {
		return ErrUnknownTask
	}
	s, err := limitSeconds("soft", soft)
	if err != nil {
		return err
	}
	h, err := limitSeconds("hard", hard)
	if err != nil {
		return err
	}
	w.rateMu.Lock()
	defer w.rateMu.Unlock()
	next := map[string]taskLimits{}
	if old := w.limits.Load(); old != nil {
		maps.Copy(next, *old)
	}
	next[task] = taskLimits{hard: h, soft: s}
	w.limits.Store(&next)
	return nil
}

// limitSeconds converts a time limit in seconds (nil: none) to a Duration.
func limitSeconds(which string, secs *float64) (time.Duration, error) {
	if secs == nil {
		return 0, nil
	}
	d, err := seconds.NonNegative(*secs)
	if err != nil {
		return 0, fmt.Errorf("%s time limit: %w", which, err)
	}
	return d, nil
}

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	tk := w.track
	tk.mu.Lock()
	total := make(map[string]int64, len(tk.total))
	for k, v := range tk.total {
		total[k] = v
	}
	active := len(tk.active)
	tk.mu.Unlock()
	s := Stats{
		Hostname: w.cfg.Hostname, PID: w.pid, Started: w.started, Concurrency: w.cfg.Concurrency,
		Prefetch: w.cfg.prefetch(), Active: active, Processed: tk.processed.Load(), Total: total,
	}
	if w.cfg.AutoscaleMax > 0 {
		s.Concurrency = w.cfg.AutoscaleMin
	}
	if p := w.pipe.Load(); p != nil {
		s.Concurrency, s.Prefetch = p.poolSize()
		s.Autoscaler = p.autoscaleInfo()
	}
	s.Prefetch = w.cfg.brokerPrefetch(s.Prefetch) // Celery: 0 when unlimited
	return s
}

// Queues returns the declarations of the queues consumed now (Celery's
// active_queues), with those add_consumer started and without those
// cancel_consumer stopped.
func (w *Worker) Queues() []transports.Queue {
	all := w.cfg.declarations()
	qc, err := w.queueChanger()
	if err != nil {
		return all
	}
	w.qmu.Lock()
	for _, d := range w.added {
		if !slices.ContainsFunc(all, func(c transports.Queue) bool { return c.Name == d.Name }) {
			all = append(all, d)
		}
	}
	w.qmu.Unlock()
	consumed := qc.Queues()
	return slices.DeleteFunc(all, func(d transports.Queue) bool { return !slices.Contains(consumed, d.Name) })
}

// Shutdown starts a warm shutdown of a running worker: Run stops fetching
// and returns once running tasks are done.
func (w *Worker) Shutdown() {
	if f, ok := w.stop.Load().(context.CancelFunc); ok {
		f()
	}
}
