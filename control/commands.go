package control

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/transports"
)

// pyError is a Python exception as its repr, e.g. ValueError('x').
type pyError struct{ kind, msg string }

func (e *pyError) Error() string { return e.kind + "(" + pyStr(e.msg) + ")" }

// pyStr is Python's repr of a str (double quotes when the text has a
// single quote and no double quote, as Python chooses).
func pyStr(s string) string {
	r := protocolv2.PyRepr(s)
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) && len(r) >= 2 && r[0] == '\'' {
		return `"` + strings.ReplaceAll(r[1:len(r)-1], `\'`, `'`) + `"`
	}
	return r
}

func ok(v any) map[string]any  { return map[string]any{"ok": v} }
func nok(v any) map[string]any { return map[string]any{"error": v} }

// commands maps Celery's Panel names (and aliases) to handlers.
var commands = map[string]handler{}

func init() {
	for name, h := range map[string]handler{
		"ping":                      cmdPing,
		"stats":                     cmdStats,
		"registered":                cmdRegistered,
		"active":                    cmdActive,
		"reserved":                  cmdReserved,
		"scheduled":                 cmdScheduled,
		"revoked":                   cmdRevoked,
		"revoke":                    cmdRevoke,
		"revoke_by_stamped_headers": cmdRevokeByStampedHeaders,
		"terminate":                 cmdTerminate,
		"rate_limit":                cmdRateLimit,
		"time_limit":                cmdTimeLimit,
		"enable_events":             cmdEnableEvents,
		"disable_events":            cmdDisableEvents,
		"heartbeat":                 cmdHeartbeat,
		"shutdown":                  cmdShutdown,
		"active_queues":             cmdActiveQueues,
		"conf":                      cmdConf,
		"query_task":                cmdQueryTask,
		"clock":                     cmdClock,
		"hello":                     cmdHello,
		"election":                  cmdElection,
		"report":                    cmdReport,
		"memsample":                 cmdMemsample,
		"memdump":                   cmdMemdump,
		"add_consumer":              cmdAddConsumer,
		"cancel_consumer":           cmdCancelConsumer,
		"pool_grow":                 cmdPoolGrow,
		"pool_shrink":               cmdPoolShrink,
		"pool_restart":              cmdPoolRestart,
		"autoscale":                 cmdAutoscale,
	} {
		commands[name] = h
	}
	for alias, name := range map[string]string{
		"dump_conf": "conf", "dump_schedule": "scheduled", "dump_reserved": "reserved",
		"dump_active": "active", "dump_revoked": "revoked", "dump_tasks": "registered",
	} {
		commands[alias] = commands[name]
	}
}

// Argument helpers: Celery's CLI sends strings, Python clients native
// values.

func argString(args map[string]any, k string) (string, bool) {
	switch v := args[k].(type) {
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return protocolv2.FormatPyFloat(v), true
	}
	return "", false
}

func argBool(args map[string]any, k string) bool {
	switch v := args[k].(type) {
	case bool:
		return v
	case int64:
		return v != 0
	case string:
		switch strings.ToLower(v) {
		case "1", "true", "yes", "y", "on":
			return true
		}
	}
	return false
}

func argInt(args map[string]any, k string, def int) int {
	switch v := args[k].(type) {
	case int64:
		return int(v)
	case float64:
		return int(v)
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// argIntPtr is an optional int argument: nil when absent or None.
func argIntPtr(args map[string]any, k string) *int {
	if _, present := args[k]; !present {
		return nil
	}
	const absent = math.MinInt
	if v := argInt(args, k, absent); v != absent {
		return &v
	}
	return nil
}

func argFloat(args map[string]any, k string) *float64 {
	var f float64
	switch v := args[k].(type) {
	case int64:
		f = float64(v)
	case float64:
		f = v
	case string:
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil
		}
		f = x
	default:
		return nil
	}
	return &f
}

// argList is celery's maybe_list: a string is one id, a list many.
func argList(args map[string]any, k string) []string {
	switch v := args[k].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func cmdPing(*Node, map[string]any) (any, error) { return ok("pong"), nil }

func cmdClock(n *Node, _ map[string]any) (any, error) {
	return map[string]any{"clock": n.clock.Value()}, nil
}

func cmdStats(n *Node, _ map[string]any) (any, error) {
	s := n.w.Stats()
	total := make(map[string]any, len(s.Total))
	for k, v := range s.Total {
		total[k] = v
	}
	pid := s.PID
	if pid == 0 {
		pid = n.pid
	}
	started := s.Started
	if started.IsZero() {
		started = n.started
	}
	broker := n.opts.Broker
	if broker == nil {
		drv := "unknown"
		if b, ok := n.tr.(transports.Broadcaster); ok {
			drv = b.DriverType()
		}
		broker = map[string]any{"transport": drv}
	}
	out := map[string]any{
		"total":  total,
		"pid":    int64(pid),
		"clock":  strconv.FormatInt(n.clock.Value(), 10),
		"uptime": int64(time.Since(started).Round(time.Second) / time.Second),
		"pool": map[string]any{
			"max-concurrency": int64(s.Concurrency),
			// One process runs every task (goroutines); Flower counts
			// this list as the pool's processes.
			"processes":                []any{int64(pid)},
			"max-tasks-per-child":      "N/A",
			"put-guarded-by-semaphore": false,
			"timeouts":                 []any{int64(0), int64(0)},
			"writes":                   "N/A",
		},
		"broker":         broker,
		"prefetch_count": int64(s.Prefetch),
		"rusage":         rusage(),
	}
	if a := s.Autoscaler; a != nil {
		out["autoscaler"] = map[string]any{
			"max": int64(a.Max), "min": int64(a.Min), "current": int64(a.Current), "qty": int64(a.Qty),
		}
	}
	return out, nil
}

// rusage is Celery's WorkController.rusage (getrusage(RUSAGE_SELF)).
func rusage() any {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return "N/A"
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return map[string]any{
		"utime": tv(ru.Utime), "stime": tv(ru.Stime),
		"maxrss": int64(ru.Maxrss), "ixrss": int64(ru.Ixrss), "idrss": int64(ru.Idrss), "isrss": int64(ru.Isrss),
		"minflt": int64(ru.Minflt), "majflt": int64(ru.Majflt), "nswap": int64(ru.Nswap),
		"inblock": int64(ru.Inblock), "oublock": int64(ru.Oublock),
		"msgsnd": int64(ru.Msgsnd), "msgrcv": int64(ru.Msgrcv), "nsignals": int64(ru.Nsignals),
		"nvcsw": int64(ru.Nvcsw), "nivcsw": int64(ru.Nivcsw),
	}
}

func cmdRegistered(n *Node, args map[string]any) (any, error) {
	builtins := argBool(args, "builtins")
	names := slices.Clone(n.w.Registered())
	sort.Strings(names)
	out := make([]any, 0, len(names))
	for _, name := range names {
		if !builtins && strings.HasPrefix(name, "celery.") {
			continue
		}
		out = append(out, name)
	}
	return out, nil
}

func cmdActive(n *Node, args map[string]any) (any, error) {
	return n.infos(n.w.Active(), argBool(args, "safe")), nil
}

func cmdReserved(n *Node, _ map[string]any) (any, error) {
	return n.infos(n.w.Reserved(), false), nil
}

func cmdScheduled(n *Node, _ map[string]any) (any, error) {
	ts := n.w.Scheduled()
	out := make([]any, 0, len(ts))
	for i := range ts {
		var eta any
		if !ts[i].ETA.IsZero() {
			eta = protocolv2.FormatTime(ts[i].ETA)
		}
		out = append(out, map[string]any{
			"eta":      eta,
			"priority": int64(ts[i].Priority),
			"request":  n.info(&ts[i], false),
		})
	}
	return out, nil
}

func (n *Node) infos(ts []celerity.TaskInfo, safe bool) []any {
	out := make([]any, 0, len(ts))
	for i := range ts {
		out = append(out, n.info(&ts[i], safe))
	}
	return out
}

// info is celery.worker.request.Request.info.
func (n *Node) info(t *celerity.TaskInfo, safe bool) map[string]any {
	var args, kwargs any = t.Args, t.Kwargs
	// Compare the typed values: a nil slice or map inside an interface is
	// not a nil interface.
	if t.Args == nil {
		args = []any{}
	}
	if t.Kwargs == nil {
		kwargs = map[string]any{}
	}
	if safe {
		args, kwargs = protocolv2.ArgsRepr(t.Args), protocolv2.KwargsRepr(t.Kwargs)
	}
	var start, pid any
	if !t.TimeStart.IsZero() {
		start = float64(t.TimeStart.UnixNano()) / 1e9
		pid = int64(n.pid)
	}
	host := t.Hostname
	if host == "" {
		host = n.hostname
	}
	return map[string]any{
		"id": t.ID, "name": t.Name, "args": args, "kwargs": kwargs, "type": t.Name,
		"hostname": host, "time_start": start, "acknowledged": t.Acknowledged,
		"delivery_info": map[string]any{
			"exchange":    t.DeliveryInfo.Exchange,
			"routing_key": t.DeliveryInfo.RoutingKey,
			"priority":    int64(t.DeliveryInfo.Priority),
			"redelivered": t.DeliveryInfo.Redelivered,
		},
		"worker_pid": pid,
	}
}

func cmdRevoked(n *Node, _ map[string]any) (any, error) {
	ids := n.w.Revoked()
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out, nil
}

func cmdRevoke(n *Node, args map[string]any) (any, error) {
	ids := dedupe(argList(args, "task_id"))
	terminate := argBool(args, "terminate")
	sig, _ := argString(args, "signal")
	if terminate && sig == "" {
		sig = "SIGTERM"
	}
	terminated := n.w.Revoke(ids, terminate, sig)
	if terminate {
		if len(terminated) == 0 {
			return ok("terminate: tasks unknown"), nil
		}
		n.log.Info(fmt.Sprintf("Terminating %s (%s)", strings.Join(terminated, ", "), sig))
		return ok("terminate: " + strings.Join(terminated, ", ")), nil
	}
	idstr := strings.Join(ids, ", ")
	n.log.Info("Tasks flagged as revoked: " + idstr)
	return ok("tasks " + idstr + " flagged as revoked"), nil
}

// cmdRevokeByStampedHeaders is Celery 5.3+'s revoke_by_stamped_headers,
// with its replies: headers is a dict (stamp name → value or list of
// values) or a list of "name=value" strings.
func cmdRevokeByStampedHeaders(n *Node, args map[string]any) (any, error) {
	sr, isSR := n.w.(StampRevoker)
	if !isSR {
		return nil, &pyError{"KeyError", "revoke_by_stamped_headers"}
	}
	given := map[string]any{}
	arg := args["headers"]
	if s, isStr := arg.(string); isStr {
		arg = []any{s}
	}
	switch h := arg.(type) {
	case map[string]any:
		given = h
	case []any:
		for _, e := range h {
			s, isStr := e.(string)
			k, v, found := strings.Cut(s, "=")
			if !isStr || !found {
				return nil, &pyError{"IndexError", "list index out of range"}
			}
			given[k] = v
		}
	default:
		return nil, &pyError{"TypeError", "revoke_by_stamped_headers() missing 1 required positional argument: 'headers'"}
	}
	headers := make(map[string][]any, len(given))
	for k, v := range given {
		if l, isList := v.([]any); isList {
			headers[k] = l
		} else {
			headers[k] = []any{v}
		}
	}
	terminate := argBool(args, "terminate")
	sig, _ := argString(args, "signal")
	if terminate && sig == "" {
		sig = "SIGTERM"
	}
	terminated := sr.RevokeByStampedHeaders(headers, terminate, sig)
	shown := protocolv2.PyRepr(given)
	switch {
	case !terminate:
		return ok("headers " + shown + " flagged as revoked, but not terminated"), nil
	case len(terminated) == 0:
		return ok("headers " + shown + " were not terminated"), nil
	}
	// Celery formats its defaultdict(set) of what it terminated.
	names := slices.Sorted(maps.Keys(terminated))
	parts := make([]string, 0, len(names))
	for _, k := range names {
		vals := make([]string, 0, len(terminated[k]))
		for _, v := range terminated[k] {
			vals = append(vals, protocolv2.PyRepr(v))
		}
		parts = append(parts, protocolv2.PyRepr(k)+": {"+strings.Join(vals, ", ")+"}")
	}
	return ok("headers defaultdict(<class 'set'>, {" + strings.Join(parts, ", ") + "}) revoked"), nil
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func cmdTerminate(n *Node, args map[string]any) (any, error) {
	a := map[string]any{"task_id": args["task_id"], "terminate": true, "signal": args["signal"]}
	return cmdRevoke(n, a)
}

// checkRate is celery.utils.time.rate's validation: "N", "N/s", "N/m",
// "N/h" or a number.
func checkRate(r string) error {
	if r == "" {
		return nil
	}
	ops, mod, _ := strings.Cut(r, "/")
	if _, err := strconv.ParseFloat(strings.TrimSpace(ops), 64); err != nil {
		return &pyError{"ValueError", "could not convert string to float: " + pyStr(ops)}
	}
	switch mod {
	case "", "s", "m", "h":
		return nil
	}
	return &pyError{"KeyError", mod}
}

func cmdRateLimit(n *Node, args map[string]any) (any, error) {
	task, _ := argString(args, "task_name")
	rate, _ := argString(args, "rate_limit")
	if err := checkRate(rate); err != nil {
		return nok("Invalid rate limit string: " + err.Error()), nil
	}
	if rate == "0" {
		rate = ""
	}
	if err := n.w.SetRateLimit(task, rate); err != nil {
		if err == ErrUnknownTask {
			n.log.Error("Rate limit attempt for unknown task " + task)
			return nok("unknown task"), nil
		}
		return nil, &pyError{"ValueError", err.Error()}
	}
	if rate == "" {
		n.log.Info("Rate limits disabled for tasks of type " + task)
		return ok("rate limit disabled successfully"), nil
	}
	n.log.Info(fmt.Sprintf("New rate limit for tasks of type %s: %s.", task, rate))
	return ok("new rate limit set successfully"), nil
}

func cmdTimeLimit(n *Node, args map[string]any) (any, error) {
	task, _ := argString(args, "task_name")
	if !slices.Contains(n.w.Registered(), task) {
		n.log.Error("Change time limit attempt for unknown task " + task)
		return nok("unknown task"), nil
	}
	tl, isTL := n.w.(TimeLimiter)
	if !isTL {
		return nil, &pyError{"NotImplementedError", "time limits cannot be changed on this worker"}
	}
	soft, hard := argFloat(args, "soft"), argFloat(args, "hard")
	if err := tl.SetTimeLimit(task, soft, hard); err != nil {
		if err == ErrUnknownTask {
			return nok("unknown task"), nil
		}
		return nil, &pyError{"ValueError", err.Error()}
	}
	n.log.Info(fmt.Sprintf("New time limits for tasks of type %s: soft=%s hard=%s", task, pyFloatOrNone(soft), pyFloatOrNone(hard)))
	return ok("time limits set successfully"), nil
}

func pyFloatOrNone(f *float64) string {
	if f == nil {
		return "None"
	}
	return protocolv2.FormatPyFloat(*f)
}

func cmdEnableEvents(n *Node, _ map[string]any) (any, error) {
	if n.opts.Events == nil {
		return nil, &pyError{"RuntimeError", "events are not available on this worker"}
	}
	if n.opts.Events.EnableTaskEvents() {
		n.log.Info("Events of group {task} enabled by remote.")
		return ok("task events enabled"), nil
	}
	return ok("task events already enabled"), nil
}

func cmdDisableEvents(n *Node, _ map[string]any) (any, error) {
	if n.opts.Events == nil {
		return nil, &pyError{"RuntimeError", "events are not available on this worker"}
	}
	if n.opts.Events.DisableTaskEvents() {
		n.log.Info("Events of group {task} disabled by remote.")
		return ok("task events disabled"), nil
	}
	return ok("task events already disabled"), nil
}

func cmdHeartbeat(n *Node, _ map[string]any) (any, error) {
	n.log.Debug("Heartbeat requested by remote.")
	if n.opts.Events != nil {
		n.opts.Events.SendHeartbeat()
	}
	return nil, nil
}

func cmdShutdown(n *Node, args map[string]any) (any, error) {
	msg, has := argString(args, "msg")
	if !has {
		msg = "Got shutdown from remote"
	}
	n.log.Warn(msg)
	n.w.Shutdown()
	return nil, errShutdown
}

// queueDict is kombu's Queue.as_dict(recurse=True).
func queueDict(q transports.Queue) map[string]any {
	ex, typ, rk := q.Exchange, q.ExchangeType, q.RoutingKey
	if ex == "" {
		ex = q.Name
	}
	if typ == "" {
		typ = "direct"
	}
	if rk == "" {
		rk = q.Name
	}
	var args, maxPri any
	if len(q.Arguments) > 0 {
		args = q.Arguments
	}
	if q.MaxPriority > 0 {
		maxPri = int64(q.MaxPriority)
	}
	return map[string]any{
		"name": q.Name,
		"exchange": map[string]any{
			"name": ex, "type": typ, "arguments": nil, "durable": true, "passive": false,
			"auto_delete": false, "delivery_mode": nil, "no_declare": false,
		},
		"routing_key": rk, "queue_arguments": args, "binding_arguments": nil, "consumer_arguments": nil,
		"durable": q.Durable, "exclusive": false, "auto_delete": q.AutoDelete, "no_ack": false,
		"alias": nil, "bindings": []any{}, "no_declare": nil, "expires": nil, "message_ttl": nil,
		"max_length": nil, "max_length_bytes": nil, "max_priority": maxPri,
	}
}

func cmdActiveQueues(n *Node, _ map[string]any) (any, error) {
	qs := n.w.Queues()
	out := make([]any, len(qs))
	for i, q := range qs {
		out[i] = queueDict(q)
	}
	return out, nil
}

func cmdConf(n *Node, _ map[string]any) (any, error) {
	out := make(map[string]any, len(n.opts.Conf))
	for k, v := range n.opts.Conf {
		if !strings.HasPrefix(k, "__") {
			out[k] = v
		}
	}
	return out, nil
}

func cmdQueryTask(n *Node, args map[string]any) (any, error) {
	ids := argList(args, "ids")
	out := map[string]any{}
	if len(ids) == 0 {
		return out, nil
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	add := func(state string, ts []celerity.TaskInfo) {
		for i := range ts {
			if want[ts[i].ID] {
				if _, seen := out[ts[i].ID]; !seen {
					out[ts[i].ID] = []any{state, n.info(&ts[i], false)}
				}
			}
		}
	}
	add("active", n.w.Active())
	add("reserved", n.w.Reserved())
	add("ready", n.w.Scheduled()) // Celery: held ETA requests are neither active nor reserved
	return out, nil
}

// cmdHello answers mingle: the revoked ids as {id: [timestamp, id]} and
// the forwarded clock; nothing for our own hello.
func cmdHello(n *Node, args map[string]any) (any, error) {
	from, _ := argString(args, "from_node")
	if from == n.hostname {
		return nil, nil
	}
	n.log.Info("sync with " + from)
	if ids := revokedIDs(args["revoked"]); len(ids) > 0 {
		n.w.Revoke(ids, false, "")
	}
	return map[string]any{"revoked": n.revokedData(), "clock": n.clock.Forward()}, nil
}

// revokedData is the worker's revoked ids as hello carries them, Celery's
// LimitedSet data: {id: [timestamp, id]}.
func (n *Node) revokedData() map[string]any {
	now := float64(time.Now().UnixNano()) / 1e9
	revoked := map[string]any{}
	for _, id := range n.w.Revoked() {
		revoked[id] = []any{now, id}
	}
	return revoked
}

// revokedIDs returns the ids of a hello's revoked dict, sorted.
func revokedIDs(v any) []string {
	rv, _ := v.(map[string]any)
	ids := make([]string, 0, len(rv))
	for id := range rv {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func cmdElection(*Node, map[string]any) (any, error) { return nil, nil }

func cmdReport(n *Node, _ map[string]any) (any, error) {
	v := n.opts.Version
	if v == "" {
		v = "unknown"
	}
	return ok(fmt.Sprintf("software -> celerity:%s (go) %s %s/%s\nnode -> %s pid:%d\n",
		v, runtime.Version(), runtime.GOOS, runtime.GOARCH, n.hostname, n.pid)), nil
}

// cmdMemsample is celery.utils.debug.sample_mem: the RSS as "<n>MB".
func cmdMemsample(*Node, map[string]any) (any, error) {
	rss := rssBytes()
	if rss < 0 {
		return nil, nil
	}
	return protocolv2.FormatPyFloat(float64(rss)/(1<<20)) + "MB", nil
}

func cmdMemdump(n *Node, args map[string]any) (any, error) {
	s, _ := cmdMemsample(n, args)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("Memory Usage:\n  rss: %v\n  go heap: %d bytes in use, %d goroutines\n", s, ms.HeapInuse, runtime.NumGoroutine()), nil
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

func cmdAddConsumer(n *Node, args map[string]any) (any, error) {
	qc, isQC := n.w.(QueueController)
	if !isQC {
		return nil, &pyError{"NotImplementedError", "add_consumer is not supported by this worker"}
	}
	name, _ := argString(args, "queue")
	q := transports.Queue{Name: name, Durable: true}
	q.Exchange, _ = argString(args, "exchange")
	q.ExchangeType, _ = argString(args, "exchange_type")
	q.RoutingKey, _ = argString(args, "routing_key")
	if err := qc.AddConsumer(q); err != nil {
		return nil, &pyError{"ValueError", err.Error()}
	}
	return ok("add consumer " + name), nil
}

func cmdCancelConsumer(n *Node, args map[string]any) (any, error) {
	qc, isQC := n.w.(QueueController)
	if !isQC {
		return nil, &pyError{"NotImplementedError", "cancel_consumer is not supported by this worker"}
	}
	name, _ := argString(args, "queue")
	if err := qc.CancelConsumer(name); err != nil {
		return nil, &pyError{"ValueError", err.Error()}
	}
	return ok("no longer consuming from " + name), nil
}

func cmdPoolGrow(n *Node, args map[string]any) (any, error) {
	pr, isPR := n.w.(PoolResizer)
	if !isPR {
		return nil, &pyError{"NotImplementedError", "pool_grow is not supported by this worker"}
	}
	if err := pr.Grow(argInt(args, "n", 1)); err != nil {
		if errors.Is(err, celerity.ErrAutoscaling) {
			return nok("pool_grow is not supported with autoscale. Adjust autoscale range instead."), nil
		}
		return nil, &pyError{"ValueError", err.Error()}
	}
	return ok("pool will grow"), nil
}

func cmdPoolShrink(n *Node, args map[string]any) (any, error) {
	pr, isPR := n.w.(PoolResizer)
	if !isPR {
		return nil, &pyError{"NotImplementedError", "pool_shrink is not supported by this worker"}
	}
	if err := pr.Shrink(argInt(args, "n", 1)); err != nil {
		if errors.Is(err, celerity.ErrAutoscaling) {
			return nok("pool_shrink is not supported with autoscale. Adjust autoscale range instead."), nil
		}
		return nil, &pyError{"ValueError", err.Error()}
	}
	return ok("pool will shrink"), nil
}

func cmdPoolRestart(*Node, map[string]any) (any, error) {
	return nil, &pyError{"ValueError", "Pool restarts not enabled"}
}

func cmdAutoscale(n *Node, args map[string]any) (any, error) {
	as, isAS := n.w.(Autoscaler)
	if !isAS {
		return nil, &pyError{"ValueError", "Autoscale not enabled"}
	}
	hi, lo, err := as.Autoscale(argIntPtr(args, "max"), argIntPtr(args, "min"))
	switch {
	case errors.Is(err, celerity.ErrNotAutoscaling):
		return nil, &pyError{"ValueError", "Autoscale not enabled"}
	case err != nil:
		return nil, &pyError{"ValueError", err.Error()}
	}
	return ok(fmt.Sprintf("autoscale now max=%d min=%d", hi, lo)), nil
}
