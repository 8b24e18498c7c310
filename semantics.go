package celerity

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/celerity-go/celerity/internal/backoff"
	"github.com/celerity-go/celerity/internal/ratelimit"
	"github.com/celerity-go/celerity/internal/seconds"
	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/resultstore"
	"github.com/celerity-go/celerity/transports"
)

// DeliveryToucher is an optional capability of a transports.Consumer whose
// broker takes back deliveries left unacknowledged for too long (the Redis
// transport's visibility timeout, shared with every kombu process). Touch
// marks the deliveries as still being worked on, e.g. by refreshing their
// unacked_index score. The worker touches the messages it holds for an ETA
// or a rate limit every Config.TouchInterval, so a task whose ETA lies
// beyond the visibility timeout is neither restored nor run twice. Without
// it such a task is restored by the visibility sweep and runs again.
type DeliveryToucher interface {
	Touch(ctx context.Context, ds ...*transports.Delivery) error
}

// buckets builds the rate-limit token buckets: Config.RateLimits wins over
// TaskOptions.RateLimit. Rates were validated at registration.
func (w *Worker) buckets() map[string]*ratelimit.Bucket {
	out := map[string]*ratelimit.Bucket{}
	for name, r := range w.handlers {
		spec := r.opts.RateLimit
		if s, ok := w.cfg.RateLimits[name]; ok {
			spec = s
		}
		if rate, err := ratelimit.Parse(spec); err == nil && rate > 0 {
			out[name] = ratelimit.NewBucket(rate)
		}
	}
	return out
}

// rateReserve takes the job's rate-limit token (once per job) and reports
// when the job may start, with wait set when that is in the future.
func (p *pipeline) rateReserve(j *job) (at time.Time, wait bool) {
	if j.rated {
		return time.Time{}, false
	}
	j.rated = true
	b := (*p.w.rates.Load())[j.t.Name]
	if b == nil {
		return time.Time{}, false
	}
	now := time.Now()
	at = b.Reserve(now)
	return at, at.After(now)
}

// hold parks a received job in the timer until at, without an execution
// slot. Like Celery's prefetch increment for ETA tasks, a held message
// gives its prefetch token back (and raises the broker's prefetch count).
func (p *pipeline) hold(j *job, at time.Time) {
	p.keep(j.d)
	p.tokens.release(1)
	p.held.Add(1)
	p.kickHeld()
	p.timer.add(at, j)
}

// unhold accounts for a held job leaving the timer.
func (p *pipeline) unhold() {
	p.held.Add(-1)
	p.kickHeld()
}

func (p *pipeline) kickHeld() {
	select {
	case p.heldKick <- struct{}{}:
	default:
	}
}

// heldLoop keeps the broker's prefetch count at the base prefetch plus the
// number of held messages (AMQP basic.qos; a no-op on Redis), coalescing
// changes like Celery's QoS.increment_eventually, and touches the held
// messages on consumers that implement DeliveryToucher.
func (p *pipeline) heldLoop() {
	applied := int(p.prefetchBase.Load())
	var touch <-chan time.Time
	toucher, canTouch := p.cons.(DeliveryToucher)
	if canTouch {
		tk := time.NewTicker(p.w.cfg.TouchInterval)
		defer tk.Stop()
		touch = tk.C
	}
	for {
		select {
		case <-p.heldStop:
			return
		case <-p.heldKick:
			if p.w.cfg.PrefetchMultiplier < 0 {
				continue // unlimited prefetch: nothing to raise
			}
			want := p.w.cfg.brokerPrefetch(int(p.prefetchBase.Load() + max(p.held.Load(), 0)))
			if want == applied {
				continue
			}
			if err := p.cons.SetPrefetch(want); err != nil {
				p.w.log.Warn("cannot change the prefetch count", "error", err, "prefetch_count", want)
				continue
			}
			applied = want
		case <-touch:
			ds := p.timer.deliveries()
			if len(ds) == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(p.workCtx), 30*time.Second)
			if err := toucher.Touch(ctx, ds...); err != nil {
				p.w.log.Warn("cannot refresh held messages", "error", err, "count", len(ds))
			}
			cancel()
		}
	}
}

// inZone reads a naive time (no UTC offset on the wire) as a wall-clock
// time in tz; other times are returned unchanged.
func inZone(t time.Time, tz *time.Location) time.Time {
	if t.IsZero() || !protocolv2.IsNaive(t) {
		return t
	}
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), tz)
}

// timeLimits resolves the hard and soft limits as Celery's Request does:
// the message's timelimit header when set and non-zero, else the task's
// option, else the worker's setting.
func (p *pipeline) timeLimits(j *job) (hard, soft time.Duration) {
	pick := func(header *float64, task, cfg time.Duration) time.Duration {
		if header != nil && *header > 0 {
			return seconds.Duration(*header)
		}
		if task > 0 {
			return task
		}
		return cfg
	}
	tl := j.t.TimeLimit
	taskHard, taskSoft := j.reg.opts.TimeLimit, j.reg.opts.SoftTimeLimit
	if m := p.w.limits.Load(); m != nil {
		if l, ok := (*m)[j.t.Name]; ok {
			taskHard, taskSoft = l.hard, l.soft
		}
	}
	return pick(tl.Hard, taskHard, p.w.cfg.TimeLimit),
		pick(tl.Soft, taskSoft, p.w.cfg.SoftTimeLimit)
}

// taskLimits are a task's hard and soft time limits set at run time; 0
// is none of its own (the worker's setting applies).
type taskLimits struct {
	hard, soft time.Duration
}

// callResult is what a handler call gave: its return value and error,
// and the stack when it panicked.
type callResult struct {
	ret   any
	err   error
	stack []byte
}

// runLimited calls the handler under its time limits. The soft limit
// cancels the handler's context with cause ErrSoftTimeLimitExceeded. When
// the hard limit passes first, runLimited returns at once with hardLimit
// set: the handler's context is cancelled with ErrTimeLimitExceeded, and
// if the handler ignores it, it keeps running in its own goroutine (Go
// cannot stop a goroutine) and whatever it returns is discarded; the
// execution slot is free for the next task.
func (p *pipeline) runLimited(parent context.Context, j *job) (res callResult, hardLimit time.Duration) {
	hard, soft := p.timeLimits(j)
	if hard <= 0 && soft <= 0 {
		return p.call(parent, j), 0
	}
	t := j.t
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	if soft > 0 {
		st := time.AfterFunc(soft, func() {
			if ctx.Err() != nil {
				return
			}
			p.w.log.Warn(fmt.Sprintf("Soft time limit (%ss) exceeded for %s[%s]", pySeconds(soft), t.Name, t.ID),
				"task_id", t.ID, "task_name", t.Name)
			cancel(ErrSoftTimeLimitExceeded)
		})
		defer st.Stop()
	}
	if hard <= 0 {
		return p.call(ctx, j), 0
	}
	done := make(chan callResult, 1)
	go func() {
		done <- p.call(ctx, j)
	}()
	ht := time.NewTimer(hard)
	defer ht.Stop()
	select {
	case r := <-done:
		return r, 0
	case <-ht.C:
		cancel(ErrTimeLimitExceeded)
		p.abandoned.Add(1)
		go func() {
			<-done
			p.abandoned.Add(-1)
		}()
		return callResult{}, hard
	}
}

// hardTimeout does what Celery's Request.on_timeout (hard) and the
// following on_failure do: log, store FAILURE TimeLimitExceeded(limit) and,
// with acks late, ack or reject per acks_on_failure_or_timeout.
func (p *pipeline) hardTimeout(j *job, limit time.Duration, late bool) {
	t := j.t
	exc := timeLimitExceeded(limit)
	p.w.log.Error(fmt.Sprintf("Hard time limit (%ss) exceeded for %s[%s]", pySeconds(limit), t.Name, t.ID),
		"task_id", t.ID, "task_name", t.Name, "state", resultstore.Failure)
	m := p.newMeta(j, resultstore.Failure)
	m.Result = &resultstore.ExceptionInfo{Type: exc.Type, Module: exc.Module, Message: exc.Args}
	m.Traceback = "Traceback (most recent call last):\n  Go handler for \"" + t.Name + "\" exceeded its hard time limit\n" +
		"billiard.exceptions.TimeLimitExceeded: " + pySeconds(limit) + "\n"
	p.finishError(j, m, !late, late && !p.acksOnFailureOrTimeout(j))
	info := m.Result.(*resultstore.ExceptionInfo)
	p.failureFollowUps(j, info, m.Traceback)
	if p.observed() {
		p.emit(&TaskEvent{Type: EventTaskFailed, Request: j.req, Exception: pyExcRepr(exc), Traceback: m.Traceback, Runtime: limit})
	}
}

// autoretry turns an error the task's AutoretryFor accepts into a
// RetryError with Celery's backoff.
func (p *pipeline) autoretry(j *job, err error) error {
	o := &j.reg.opts
	if len(o.AutoretryFor) == 0 {
		return err
	}
	var re *RetryError
	if asRetry(err, &re) || isIgnoreOrReject(err) {
		return err
	}
	for _, m := range o.AutoretryFor {
		if !m(err) {
			continue
		}
		r := &RetryError{Err: err}
		if o.RetryBackoff > 0 {
			bmax := 600
			if o.RetryBackoffMax != nil {
				bmax = *o.RetryBackoffMax
			}
			jitter := o.RetryJitter == nil || *o.RetryJitter
			s := backoff.Interval(o.RetryBackoff, j.t.Retries, bmax, jitter, rand.IntN)
			r.Countdown = time.Duration(s) * time.Second
			r.immediate = s == 0 // countdown=0: at once, not the default delay
		}
		return r
	}
	return err
}

// maxRetries resolves max_retries; negative means no limit.
func (p *pipeline) maxRetries(j *job, re *RetryError) int {
	switch {
	case re.MaxRetries != nil:
		return *re.MaxRetries
	case j.reg.opts.MaxRetries != nil:
		return *j.reg.opts.MaxRetries
	}
	return *p.w.cfg.MaxRetries
}

// retry does what Celery's Task.retry and the worker's retry handling do:
// republish the same task id with retries+1 and the new ETA to where it
// came from, then log, store RETRY (with the reason exception) and settle
// the original. Past max_retries it fails with the reason, or with
// MaxRetriesExceededError when there is none. If the new message cannot be
// published, the original is rejected without requeue (Celery's
// Reject(requeue=False)).
func (p *pipeline) retry(j *job, re *RetryError, late bool, runtime float64) {
	t := j.t
	next := t.Retries + 1
	if max := p.maxRetries(j, re); max >= 0 && next > max {
		var err error = re.Err
		if err == nil {
			err = maxRetriesExceeded(t.Name, t.ID, t.Args, t.Kwargs)
		}
		p.fail(j, err, nil, late, runtime)
		return
	}
	now := time.Now()
	eta, when := re.ETA, ""
	switch {
	case !eta.IsZero():
		when = "at " + pyDatetimeStr(eta)
	default:
		cd := re.Countdown
		if cd <= 0 && !re.immediate {
			cd = j.reg.opts.DefaultRetryDelay
			if cd <= 0 {
				cd = p.w.cfg.DefaultRetryDelay
			}
		}
		eta = now.Add(cd)
		when = "in " + pySeconds(cd) + "s"
	}
	if err := p.republish(j, next, eta.UTC()); err != nil {
		p.w.log.Error(fmt.Sprintf("Task %s[%s] cannot be retried: publishing the retry failed: %v", t.Name, t.ID, err),
			"task_id", t.ID, "task_name", t.Name, "error", err)
		if late {
			p.settle(j.d, true, false)
		}
		return
	}
	text := retryText(when, re.Err)
	p.w.log.Info(fmt.Sprintf("Task %s[%s] retry: %s", t.Name, t.ID, text),
		"task_id", t.ID, "task_name", t.Name, "state", resultstore.Retry, "retries", next)
	m := p.newMeta(j, resultstore.Retry)
	if re.Err != nil {
		exc := pyException(re.Err)
		m.Result = &resultstore.ExceptionInfo{Type: exc.Type, Module: exc.Module, Message: exc.Args}
	}
	m.Traceback = "Traceback (most recent call last):\n  Go handler for \"" + t.Name + "\" asked for a retry\n" +
		"celery.exceptions.Retry: " + text + "\n"
	// The retry message is this task's child, as Celery records it.
	m.Children = []any{[]any{[]any{t.ID, nil}, nil}}
	p.finishError(j, m, !late, false)
	if p.observed() {
		ev := &TaskEvent{Type: EventTaskRetried, Request: j.req, Traceback: m.Traceback}
		if re.Err != nil {
			ev.Exception = pyExcRepr(pyException(re.Err))
		} else {
			ev.Exception = "Retry(" + protocolv2.PyRepr(text) + ")"
		}
		p.emit(ev)
	}
}

// republish sends the retry message: Celery's signature_from_request with
// retries and eta replaced.
func (p *pipeline) republish(j *job, retries int, eta time.Time) error {
	nt := *j.t
	nt.Retries = retries
	nt.ETA = eta
	if nt.ParentID == "" {
		nt.ParentID = nt.ID
	}
	if nt.RootID == "" {
		nt.RootID = nt.ID
	}
	m := j.d.Message
	exchange, rk := m.Properties.DeliveryInfo.Exchange, m.Properties.DeliveryInfo.RoutingKey
	if rk == "" && exchange == "" {
		rk = j.d.Queue
	}
	serializer := "json"
	switch m.ContentType {
	case kombu.ContentTypeMsgpack, kombu.ContentTypeYAML:
		serializer = m.ContentType
	}
	mode := kombu.JSONPlain
	if p.typedJSON(j.t.Stamped) {
		mode = kombu.JSONTyped
	}
	msg, err := protocolv2.Encode(&nt, protocolv2.EncodeOptions{
		Serializer: serializer, JSONMode: mode,
		ReplyTo:  m.Properties.ReplyTo,
		Exchange: exchange, RoutingKey: rk,
		Priority:     m.Properties.Priority,
		DeliveryMode: m.Properties.DeliveryMode,
		Origin:       p.w.cfg.Hostname,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.workCtx), 30*time.Second)
	defer cancel()
	return p.w.tr.Publish(ctx, exchange, rk, msg)
}

func (p *pipeline) acksOnFailureOrTimeout(j *job) bool {
	if v := j.reg.opts.AcksOnFailureOrTimeout; v != nil {
		return *v
	}
	if v := p.w.cfg.AcksOnFailureOrTimeout; v != nil {
		return *v
	}
	return true
}

// storeErrors is Celery's Request.store_errors: errors are stored unless
// the result is ignored, and then only with store_errors_even_if_ignored.
func (p *pipeline) storeErrors(j *job) bool {
	if p.w.rb == nil {
		return false
	}
	if !p.ignoreResult(j) {
		return true
	}
	if v := j.reg.opts.StoreErrorsEvenIfIgnored; v != nil {
		return *v
	}
	return p.w.cfg.StoreErrorsEvenIfIgnored
}

func asRetry(err error, re **RetryError) bool { return errors.As(err, re) }

func isIgnoreOrReject(err error) bool {
	var rej *RejectError
	return errors.Is(err, ErrIgnore) || errors.As(err, &rej)
}
