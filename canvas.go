package celerity

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/resultstore"
	"github.com/celerity-go/celerity/transports"
)

// Worker-side canvas: what a Python worker's tracer does after a task ends
// (celery/app/trace.py): publish link callbacks and the next chain step
// before storing SUCCESS, record chord parts after it, and publish errbacks
// after a FAILURE.

// publication is one task message the worker sends on behalf of a task.
type publication struct {
	exchange   string
	routingKey string
	msg        *kombu.Message
	id         string
}

// canvas builds follow-up messages for finished tasks.
type canvas struct {
	defaultQueue string
	routes       map[string]string // task name or glob → queue
	rb           resultstore.Backend
	hostname     string
}

// route picks the queue of a signature the way Celery's router would for
// a producer with task_routes: explicit options first, then the routes,
// then task_default_queue.
func (c *canvas) route(sig protocolv2.Signature) (exchange, routingKey string) {
	if q := sig.Queue(); q != "" {
		return "", q
	}
	ex, _ := sig.Options["exchange"].(string)
	rk, _ := sig.Options["routing_key"].(string)
	if ex != "" || rk != "" {
		return ex, rk
	}
	if q, ok := c.routes[sig.Task]; ok {
		return "", q
	}
	for pattern, q := range c.routes {
		if ok, _ := path.Match(pattern, sig.Task); ok {
			return "", q
		}
	}
	return "", c.defaultQueue
}

// parentage carries the ids a follow-up inherits from the task that
// publishes it.
type parentage struct {
	rootID   string
	parentID string
	replyTo  string
	priority int
	mode     kombu.JSONMode
}

func parentOf(t *protocolv2.Task, replyTo string, mode kombu.JSONMode) parentage {
	root := t.RootID
	if root == "" {
		root = t.ID
	}
	return parentage{rootID: root, parentID: t.ID, replyTo: replyTo, mode: mode}
}

// apply turns a (possibly complex) signature called with partial args into
// the messages Celery's sig.apply_async(args) would publish. chain is the
// remaining chain (reversed) for a chain step.
func (c *canvas) apply(ctx context.Context, sig protocolv2.Signature, partial []any, chain []protocolv2.Signature, pa parentage) ([]publication, error) {
	switch sig.Task {
	case "celery.group":
		return c.applyGroup(ctx, sig, partial, pa, nil, "")
	case "celery.chord":
		return c.applyChord(ctx, sig, partial, pa)
	case "celery.chain":
		steps, err := sig.Tasks()
		if err != nil || len(steps) == 0 {
			return nil, fmt.Errorf("chain signature without tasks: %v", err)
		}
		// The chain's own remaining steps run before the outer chain's.
		rest := append([]protocolv2.Signature(nil), chain...)
		for i := len(steps) - 1; i >= 1; i-- {
			rest = append(rest, steps[i])
		}
		return c.apply(ctx, steps[0], partial, rest, pa)
	}
	if sig.IsComplex() {
		return nil, fmt.Errorf("canvas primitive %s (%s) is not supported by this worker", sig.Task, sig.SubtaskType)
	}
	p, err := c.simple(sig, partial, chain, pa, "", nil, nil)
	if err != nil {
		return nil, err
	}
	return []publication{p}, nil
}

// simple builds the message of a plain task signature.
func (c *canvas) simple(sig protocolv2.Signature, partial []any, chain []protocolv2.Signature, pa parentage, group string, groupIndex *int, chord *protocolv2.Signature) (publication, error) {
	id := sig.TaskID()
	if id == "" {
		id = protocolv2.NewID()
	}
	args := sig.Args
	if !sig.Immutable && len(partial) > 0 {
		args = append(append([]any{}, partial...), sig.Args...)
	}
	if args == nil {
		args = []any{}
	}
	kwargs := sig.Kwargs
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	t := &protocolv2.Task{
		ID: id, Name: sig.Task, Args: args, Kwargs: kwargs, UTC: true,
		RootID: pa.rootID, ParentID: pa.parentID, Chain: chain, Chord: chord,
	}
	if g := sig.GroupID(); g != "" && group == "" {
		group = g
	}
	if gi, ok := sig.GroupIndex(); ok && groupIndex == nil {
		groupIndex = &gi
	}
	t.Group, t.GroupIndex = group, groupIndex
	var err error
	if t.Callbacks, err = sig.Links(); err != nil {
		return publication{}, err
	}
	if t.Errbacks, err = sig.ErrorLinks(); err != nil {
		return publication{}, err
	}
	if chord == nil {
		if t.Chord, err = sig.ChordOption(); err != nil {
			return publication{}, err
		}
	}
	replyTo := sig.ReplyTo()
	if replyTo == "" {
		replyTo = pa.replyTo
	}
	priority := pa.priority
	if p, ok := sig.Priority(); ok {
		priority = p
	}
	ex, rk := c.route(sig)
	m, err := protocolv2.Encode(t, protocolv2.EncodeOptions{
		JSONMode: pa.mode, ReplyTo: replyTo, Exchange: ex, RoutingKey: rk, Priority: priority,
		Origin: c.hostname,
	})
	if err != nil {
		return publication{}, err
	}
	return publication{exchange: ex, routingKey: rk, msg: m, id: id}, nil
}

// applyGroup publishes every member of a group signature with the group's
// id and each member's index; chord (when set) rides on every member.
func (c *canvas) applyGroup(ctx context.Context, sig protocolv2.Signature, partial []any, pa parentage, chord *protocolv2.Signature, gid string) ([]publication, error) {
	members, err := sig.Tasks()
	if err != nil {
		return nil, err
	}
	if gid == "" {
		gid = sig.TaskID()
	}
	if gid == "" {
		gid = protocolv2.NewID()
	}
	out := make([]publication, 0, len(members))
	for i, m := range members {
		if m.IsComplex() {
			return nil, fmt.Errorf("nested canvas %s inside a group is not supported by this worker", m.Task)
		}
		idx := i
		p, err := c.simple(m, partial, nil, pa, gid, &idx, chord)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// applyChord sets the chord size and publishes the header members, each
// carrying the body, as Celery's chord.run does for the Redis backend.
func (c *canvas) applyChord(ctx context.Context, sig protocolv2.Signature, partial []any, pa parentage) ([]publication, error) {
	header, err := sig.Header()
	if err != nil {
		return nil, err
	}
	body, err := sig.ChordBody()
	if err != nil {
		return nil, err
	}
	if body.TaskID() == "" {
		if body.Options == nil {
			body.Options = map[string]any{}
		}
		body.Options["task_id"] = protocolv2.NewID()
	}
	gid := header.TaskID()
	if gid == "" {
		gid = sig.TaskID()
	}
	if gid == "" {
		gid = protocolv2.NewID()
	}
	members, err := header.Tasks()
	if err != nil {
		return nil, err
	}
	cb, ok := c.rb.(resultstore.ChordBackend)
	if !ok {
		return nil, errors.New("chords need a result backend that keeps chord state (redis://)")
	}
	if err := cb.SetChordSize(ctx, gid, len(members)); err != nil {
		return nil, err
	}
	return c.applyGroup(ctx, header, partial, pa, &body, gid)
}

// publish sends follow-ups and returns their result tuples for the
// children field.
func publishAll(ctx context.Context, tr transports.Transport, pubs []publication) ([]any, error) {
	children := make([]any, 0, len(pubs))
	for _, p := range pubs {
		if err := tr.Publish(ctx, p.exchange, p.routingKey, p.msg); err != nil {
			return children, fmt.Errorf("publish %s: %w", p.id, err)
		}
		children = append(children, []any{[]any{p.id, nil}, nil})
	}
	return children, nil
}

// successFollowUps are the messages published after t returned retval:
// link callbacks, then the next chain step.
func (c *canvas) successFollowUps(ctx context.Context, t *protocolv2.Task, pa parentage, retval any) ([]publication, error) {
	var out []publication
	for _, cb := range t.Callbacks {
		ps, err := c.apply(ctx, cb, []any{retval}, nil, pa)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	if n := len(t.Chain); n > 0 {
		rest := append([]protocolv2.Signature(nil), t.Chain[:n-1]...)
		ps, err := c.apply(ctx, t.Chain[n-1], []any{retval}, rest, pa)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// errbackFollowUps are the errbacks of a failed task, published the way a
// Python worker publishes old-style errbacks: called with the failed
// task's id, as one group. (New-style errbacks taking (request, exc,
// traceback) run inline in a Python worker; a Go worker cannot run Python
// code, so they are published with the task id too.)
func (c *canvas) errbackFollowUps(ctx context.Context, t *protocolv2.Task, pa parentage) ([]publication, error) {
	if len(t.Errbacks) == 0 {
		return nil, nil
	}
	gid := protocolv2.NewID()
	var out []publication
	for _, eb := range t.Errbacks {
		if eb.IsComplex() {
			ps, err := c.apply(ctx, eb, []any{t.ID}, nil, pa)
			if err != nil {
				return nil, err
			}
			out = append(out, ps...)
			continue
		}
		// Celery 5.2 publishes the errback group without group_index.
		p, err := c.simple(eb, []any{t.ID}, nil, pa, gid, nil, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// chordPart records a finished chord header task and, when it is the last
// one, publishes the chord body with the ordered header results, or stores
// the body's FAILURE with Celery's ChordError when a header task failed.
func (c *canvas) chordPart(ctx context.Context, tr transports.Transport, t *protocolv2.Task, state string, result any, pa parentage) error {
	cb, ok := c.rb.(resultstore.ChordBackend)
	if !ok || t.Chord == nil || t.Group == "" {
		return nil
	}
	st, err := cb.ChordPartReturn(ctx, resultstore.ChordPart{
		GroupID: t.Group, GroupIndex: t.GroupIndex, TaskID: t.ID, State: state, Result: result,
	})
	if err != nil || !st.Ready {
		return err
	}
	body := *t.Chord
	for _, m := range st.Members {
		if !m.Failed() {
			continue
		}
		exc := "Exception()"
		if e, ok := m.Result.(*resultstore.ExceptionInfo); ok {
			exc = pyExcRepr(&PyError{Type: e.Type, Module: e.Module, Args: e.Message})
		}
		meta := &resultstore.Meta{
			TaskID: body.TaskID(), Status: resultstore.Failure, Children: []any{},
			Result: &resultstore.ExceptionInfo{Type: "ChordError", Module: "celery.exceptions",
				Message: []any{fmt.Sprintf("Dependency %s raised %s", m.TaskID, exc)}},
			DateDone: nowUTC(), TypedJSON: pa.mode == kombu.JSONTyped,
		}
		if meta.TaskID != "" {
			if err := c.rb.Store(ctx, meta); err != nil {
				return err
			}
		}
		bodyTask := &protocolv2.Task{ID: body.TaskID(), Name: body.Task, RootID: pa.rootID}
		if bodyTask.Errbacks, err = body.ErrorLinks(); err != nil {
			return err
		}
		pubs, err := c.errbackFollowUps(ctx, bodyTask, pa)
		if err != nil {
			return err
		}
		if _, err := publishAll(ctx, tr, pubs); err != nil {
			return err
		}
		return cb.ChordComplete(ctx, t.Group)
	}
	pubs, err := c.apply(ctx, body, []any{st.Results()}, nil, pa)
	if err != nil {
		return err
	}
	if _, err := publishAll(ctx, tr, pubs); err != nil {
		return err
	}
	return cb.ChordComplete(ctx, t.Group)
}

func nowUTC() time.Time { return time.Now().UTC() }

// canvasCtx bounds the broker and backend calls of canvas follow-ups.
func (p *pipeline) canvasCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(p.workCtx), 30*time.Second)
}

func (p *pipeline) parentage(j *job) parentage {
	mode := kombu.JSONPlain
	if p.typedJSON(j.t.Stamped) {
		mode = kombu.JSONTyped
	}
	return parentOf(j.t, j.req.ReplyTo, mode)
}

// successFollowUps publishes link callbacks and the next chain step of a
// task that returned ret, and returns them as the result's children.
func (p *pipeline) successFollowUps(j *job, ret any) ([]any, error) {
	t := j.t
	if len(t.Callbacks) == 0 && len(t.Chain) == 0 {
		return []any{}, nil
	}
	ctx, cancel := p.canvasCtx()
	defer cancel()
	pubs, err := p.w.canvas.successFollowUps(ctx, t, p.parentage(j), ret)
	if err != nil {
		return nil, err
	}
	return publishAll(ctx, p.w.tr, pubs)
}

// chordPart records a finished chord header task (see canvas.chordPart).
func (p *pipeline) chordPart(j *job, state string, result any) {
	if j.t.Chord == nil || p.w.rb == nil {
		return
	}
	ctx, cancel := p.canvasCtx()
	defer cancel()
	if err := p.w.canvas.chordPart(ctx, p.w.tr, j.t, state, result, p.parentage(j)); err != nil {
		p.w.log.Error(fmt.Sprintf("Chord %s: recording %s[%s] failed: %v", j.t.Group, j.t.Name, j.t.ID, err),
			"task_id", j.t.ID, "group", j.t.Group, "error", err)
	}
}

// failureFollowUps does what Celery's mark_as_failure does after a FAILURE:
// record the chord part, store the failure for the remaining chain steps
// (so clients waiting on them do not hang) and publish the errbacks.
func (p *pipeline) failureFollowUps(j *job, exc *resultstore.ExceptionInfo, tb string) {
	t := j.t
	p.chordPart(j, resultstore.Failure, exc)
	if len(t.Chain) == 0 && len(t.Errbacks) == 0 {
		return
	}
	ctx, cancel := p.canvasCtx()
	defer cancel()
	if p.w.rb != nil {
		var metas []*resultstore.Meta
		for _, step := range t.Chain {
			if id := step.TaskID(); id != "" {
				metas = append(metas, &resultstore.Meta{
					TaskID: id, Status: resultstore.Failure, Result: exc, Traceback: tb,
					Children: []any{}, DateDone: nowUTC(), TypedJSON: p.typedJSON(j.t.Stamped),
				})
			}
		}
		if len(metas) > 0 {
			if err := p.w.rb.Store(ctx, metas...); err != nil {
				p.w.log.Error("storing the failure of the remaining chain steps", "task_id", t.ID, "error", err)
			}
		}
	}
	pubs, err := p.w.canvas.errbackFollowUps(ctx, t, p.parentage(j))
	if err == nil {
		_, err = publishAll(ctx, p.w.tr, pubs)
	}
	if err != nil {
		p.w.log.Error(fmt.Sprintf("Task %s[%s]: publishing errbacks failed: %v", t.Name, t.ID, err),
			"task_id", t.ID, "error", err)
	}
}

// revokedTask stores REVOKED for a task that must not run (revoked id,
// expired, or terminated while running), as Celery's Request does.
func (p *pipeline) revokedTask(j *job, expired, settled bool) {
	t := j.t
	reason := "revoked"
	terminated := j.terminated.Load()
	switch {
	case expired:
		reason = "expired"
	case terminated:
		reason = "terminated"
	}
	p.w.track.unreserve(j)
	msg := fmt.Sprintf("Discarding revoked task: %s[%s]", t.Name, t.ID)
	if j.revokedBy != "" {
		msg += " (revoked by header: " + j.revokedBy + ")"
	}
	p.w.log.Info(msg, "task_id", t.ID, "task_name", t.Name, "reason", reason)
	meta := p.newMeta(j, resultstore.Revoked)
	info := &resultstore.ExceptionInfo{Type: "TaskRevokedError", Module: "celery.exceptions", Message: []any{reason}}
	meta.Result = info
	p.finishError(j, meta, settled, false)
	p.chordPart(j, resultstore.Revoked, info)
	if p.observed() {
		p.emit(&TaskEvent{Type: EventTaskRevoked, Request: j.req, Expired: expired, Terminated: terminated})
	}
}
