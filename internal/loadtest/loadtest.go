// Package loadtest measures a Celery worker under load: it preloads
// protocol v2 tasks.add messages exactly as Python Celery publishes them,
// starts the worker under test (celerity's or a Python Celery prefork
// worker) as a subprocess, and measures throughput, round-trip latency
// (with a real Python client), peak RSS and CPU time. cmd/celerity-bench
// is its command line.
package loadtest

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/internal/timerslack"
)

//go:embed testdata/celerity_bench_tasks.py testdata/bench_client.py
var pyFiles embed.FS

// DefaultPython is the interpreter with Debian's Celery.
const DefaultPython = "/usr/bin/python3"

// Config describes one benchmark run.
type Config struct {
	// Broker is a redis:// or amqp:// URL.
	Broker string
	// Backend is a redis:// result backend URL; "" runs with results off.
	Backend string
	// N is the number of preloaded tasks per worker.
	N int
	// Workers lists the workers to measure, in order: "go", "python".
	Workers []string
	// Concurrency is -c for both workers; 0 means 2 for Python and
	// celerity's own default for Go.
	Concurrency int
	// Latency is the number of sequential send_task+get round trips.
	Latency int
	// LatencyRaw leaves the result consumer's unread pub/sub replies for
	// the next round trip instead of reading them between samples (see
	// drain_stale in testdata/bench_client.py).
	LatencyRaw bool
	// Queue is the queue name; "" means a fresh unique name per worker.
	Queue string
	// WorkerBin is the celerity binary (required for the Go worker).
	WorkerBin string
	// GoArgs are extra arguments for `celerity worker` (for example
	// "--prefetch-multiplier", "64").
	GoArgs []string
	// Python is the interpreter with celery (default DefaultPython).
	Python string
	// Producer is "go" (encode in Go, the default) or "python"
	// (send_task from a real Python client).
	Producer string
	// LogLevel is the workers' -l (default WARNING, Celery's default).
	LogLevel string
	// Timeout bounds each worker's drain (default 10 minutes).
	Timeout time.Duration
	// Progress receives a progress line on long runs (nil: quiet).
	Progress io.Writer
	// Ceiling also measures what no worker can beat (see Ceiling).
	Ceiling bool
	// Rounds repeats the measurement, the workers taking turns (go,
	// python, go, python, ...); the table shows medians and the median of
	// the per-round ratios. 0 means 1.
	Rounds int
}

// WorkerRun is the measurement of one worker.
type WorkerRun struct {
	Worker      string   `json:"worker"`
	Round       int      `json:"round"` // 1..Config.Rounds
	Broker      string   `json:"broker"`
	Backend     string   `json:"backend"`
	Queue       string   `json:"queue"`
	Producer    string   `json:"producer"`
	N           int      `json:"n"`
	Concurrency int      `json:"concurrency"` // 0: the worker's default
	ExtraArgs   []string `json:"extra_args,omitempty"`
	// TasksPerSec is (N-1) / (last date_done - first date_done) with
	// results on; with results off N' / (drain - first fetch), where N'
	// counts the messages fetched after the first observation.
	TasksPerSec float64 `json:"tasks_per_sec"`
	// WallTasksPerSec is N / (worker start to last result or drain),
	// startup included.
	WallTasksPerSec float64 `json:"wall_tasks_per_sec"`
	MeasureSeconds  float64 `json:"measure_seconds"`
	StartupSeconds  float64 `json:"startup_seconds"` // start to first result / fetch
	// PeakRSSBytes sums VmHWM over the worker's process group at the end
	// of the drain (prefork: main process + pool children).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// MaxRSSBytes is the largest summed VmRSS seen while sampling.
	MaxRSSBytes int64 `json:"max_rss_bytes"`
	Processes   int   `json:"processes"`
	// CPUSecondsPer1k is CPU time (user+system, all processes) spent from
	// the first result to the last, per 1000 tasks.
	CPUSecondsPer1k float64 `json:"cpu_seconds_per_1k"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	// BrokerCPUSecondsPer1k is the broker's own CPU time over the same
	// span, per 1000 tasks: the load each worker puts on it. Redis: INFO
	// cpu (used_cpu_user + used_cpu_sys), results included when they go
	// to the same server. RabbitMQ: its beam.smp process's user+system
	// time from /proc, only when it runs on this machine; unset otherwise.
	BrokerCPUSecondsPer1k float64 `json:"broker_cpu_seconds_per_1k,omitempty"`
	// HostStealPercent is the share of the machine's CPU time (all CPUs)
	// that the hypervisor took for other guests over the same span: a
	// run with much steal measured a slower machine. Nil where /proc/stat
	// cannot be read or no clock tick passed during the drain.
	HostStealPercent *float64 `json:"host_steal_percent,omitempty"`
	ResultsFound     int      `json:"results_found"`
	ResultsWrong     int      `json:"results_wrong"`
	Latency          *Latency `json:"latency,omitempty"`
	Errors           []string `json:"errors,omitempty"`
}

// Latency is what the Python client measured.
type Latency struct {
	N      int     `json:"n"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MeanMs float64 `json:"mean_ms"`
	MaxMs  float64 `json:"max_ms"`
	// StaleDrained counts the pub/sub replies the client read between
	// samples, untimed (0 with LatencyRaw).
	StaleDrained int `json:"stale_drained"`
	// Raw: the client left those replies for the next round trip
	// (LatencyRaw).
	Raw bool `json:"raw"`
}

// Report is the whole output.
type Report struct {
	Machine Machine     `json:"machine"`
	Started time.Time   `json:"started"`
	Runs    []WorkerRun `json:"runs"`
	Ceiling *Ceiling    `json:"ceiling,omitempty"`
}

// PythonHasCelery reports whether python can import celery.
func PythonHasCelery(python string) bool {
	if python == "" {
		python = DefaultPython
	}
	return exec.Command(python, "-c", "import celery").Run() == nil
}

// UniqueQueue returns a queue name nobody else uses.
func UniqueQueue() string {
	return fmt.Sprintf("celerity-bench-%d-%08x", os.Getpid(), rand.Uint32())
}

// Run measures every configured worker in turn.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.N < 1 {
		return nil, errors.New("loadtest: N must be positive")
	}
	if cfg.Python == "" {
		cfg.Python = DefaultPython
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "WARNING"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.Producer == "" {
		cfg.Producer = "go"
	}
	if _, err := brokerKind(cfg.Broker); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "celerity-bench-py-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"celerity_bench_tasks.py", "bench_client.py"} {
		data, _ := pyFiles.ReadFile("testdata/" + name)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	rep := &Report{Machine: DescribeMachine(cfg.Python), Started: time.Now().UTC()}
	for round := 1; round <= max(1, cfg.Rounds); round++ {
		for _, w := range cfg.Workers {
			r := runWorker(ctx, cfg, w, dir)
			r.Round = round
			rep.Runs = append(rep.Runs, r)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
	}
	if kind, _ := brokerKind(cfg.Broker); cfg.Ceiling && kind == "redis" && cfg.Latency > 0 && cfg.Backend != "" && PythonHasCelery(cfg.Python) {
		progress(cfg.Progress, "[floor] %d round trips against a bare responder\n", cfg.Latency)
		l, err := redisLatencyFloor(ctx, cfg, dir)
		if err != nil {
			return rep, fmt.Errorf("latency floor: %w", err)
		}
		rep.Ceiling = &Ceiling{Kind: "redis", Latency: l}
	}
	if kind, _ := brokerKind(cfg.Broker); cfg.Ceiling && kind == "redis" {
		progress(cfg.Progress, "[ceiling] bare consumer, prefetch %d, %d messages\n", goPrefetch(cfg), cfg.N)
		c, err := RedisCeiling(ctx, cfg.Broker, cfg.N, goPrefetch(cfg))
		if err != nil {
			return rep, fmt.Errorf("ceiling: %w", err)
		}
		if rep.Ceiling != nil {
			c.Latency = rep.Ceiling.Latency
		}
		rep.Ceiling = c
	}
	if kind, _ := brokerKind(cfg.Broker); cfg.Ceiling && kind == "amqp" {
		progress(cfg.Progress, "[ceiling] bare consumer, prefetch %d, %d messages\n", goPrefetch(cfg), cfg.N)
		c, err := AMQPCeiling(ctx, cfg.Broker, cfg.N, goPrefetch(cfg))
		if err != nil {
			return rep, fmt.Errorf("ceiling: %w", err)
		}
		rep.Ceiling = c
	}
	return rep, nil
}

// env is one worker run's connections.
type env struct {
	cfg      Config
	kind     string
	broker   *redis.Client // redis broker
	backend  *redis.Client // redis result backend, nil when off
	amqpConn *amqp.Connection
	amqpCh   *amqp.Channel
	// rabbitPID is the local RabbitMQ server's process (0: remote or
	// not found), whose CPU time stands for the broker's.
	rabbitPID int
}

func (e *env) close() {
	if e.broker != nil {
		e.broker.Close()
	}
	if e.backend != nil {
		e.backend.Close()
	}
	if e.amqpConn != nil {
		e.amqpConn.Close()
	}
}

func openEnv(cfg Config) (*env, error) {
	e := &env{cfg: cfg}
	e.kind, _ = brokerKind(cfg.Broker)
	if e.kind == "redis" {
		o, err := redis.ParseURL(cfg.Broker)
		if err != nil {
			return nil, err
		}
		e.broker = redis.NewClient(o)
	} else {
		conn, err := amqp.Dial(cfg.Broker)
		if err != nil {
			return nil, err
		}
		e.amqpConn = conn
		if e.amqpCh, err = conn.Channel(); err != nil {
			e.close()
			return nil, err
		}
		e.rabbitPID, _ = localRabbitMQ(cfg.Broker)
	}
	if cfg.Backend != "" {
		o, err := redis.ParseURL(cfg.Backend)
		if err != nil {
			e.close()
			return nil, fmt.Errorf("backend: %w (only redis:// result backends are supported)", err)
		}
		e.backend = redis.NewClient(o)
	}
	return e, nil
}

func (r *WorkerRun) fail(format string, a ...any) {
	r.Errors = append(r.Errors, fmt.Sprintf(format, a...))
}

func runWorker(ctx context.Context, cfg Config, worker, pydir string) WorkerRun {
	queue := cfg.Queue
	if queue == "" {
		queue = UniqueQueue()
	}
	r := WorkerRun{Worker: worker, Broker: redactURL(cfg.Broker), Backend: redactURL(cfg.Backend), Queue: queue,
		Producer: cfg.Producer, N: cfg.N, Concurrency: cfg.Concurrency}
	if worker == "python" && r.Concurrency == 0 {
		r.Concurrency = 2
	}
	if worker == "go" {
		r.ExtraArgs = cfg.GoArgs
	}
	e, err := openEnv(cfg)
	if err != nil {
		r.fail("connect: %v", err)
		return r
	}
	defer e.close()
	b := NewBatch(queue, cfg.N)
	defer e.cleanup(b)

	progress(cfg.Progress, "[%s] preloading %d tasks on %s (producer %s)\n", worker, cfg.N, queue, cfg.Producer)
	if err := e.preload(ctx, b, pydir); err != nil {
		r.fail("preload: %v", err)
		return r
	}

	cmd, out, err := startWorker(cfg, worker, queue, r.Concurrency, pydir)
	if err != nil {
		r.fail("start worker: %v", err)
		return r
	}
	start := time.Now()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopWorker(cmd)
		}
	}
	defer stop()

	if err := e.measure(ctx, cmd, b, start, &r); err != nil {
		r.fail("%v", err)
		r.fail("worker output (tail): %s", out.tail())
		return r
	}
	if cfg.Latency > 0 {
		if cfg.Backend == "" {
			r.fail("latency skipped: needs a result backend")
		} else {
			lat, err := pythonLatency(ctx, cfg, queue, pydir)
			if err != nil {
				r.fail("latency: %v", err)
			} else {
				r.Latency = lat
			}
		}
	}
	stop()
	return r
}

// pollInterval is how long measure waits between progress checks: short
// until the first result (startup time is measured from it), then longer
// so that polling takes little broker CPU from the worker under test
// (throughput with results on comes from date_done, not from polls).
func pollInterval(firstAt time.Time) time.Duration {
	if firstAt.IsZero() {
		return 2 * time.Millisecond
	}
	return 20 * time.Millisecond
}

// measure waits for the drain while sampling the worker's process group.
func (e *env) measure(ctx context.Context, cmd *exec.Cmd, b *Batch, start time.Time, r *WorkerRun) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(e.cfg.Timeout)
	pgid := cmd.Process.Pid
	var (
		firstAt   time.Time
		firstDone int
		cpu0      float64
		host0     HostCPU
		hostOK    bool
		broker0   float64
		brokerOK  bool
		lastShown time.Time
		done      int
		finished  bool
	)
	lastSample := time.Time{}
	for !finished {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("worker exited early: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval(firstAt)):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timeout: %d of %d tasks done after %s", done, len(b.IDs), e.cfg.Timeout)
		}
		var err error
		done, finished, err = e.progress(ctx, b)
		if err != nil {
			return err
		}
		now := time.Now()
		if firstAt.IsZero() && done > 0 {
			firstAt, firstDone = now, done
			cpu0 = GroupUsage(pgid).CPUSeconds
			host0, hostOK = readHostCPU()
			broker0, brokerOK = e.brokerCPU(ctx)
		}
		if now.Sub(lastSample) >= 100*time.Millisecond {
			lastSample = now
			u := GroupUsage(pgid)
			r.MaxRSSBytes = max(r.MaxRSSBytes, u.RSSBytes)
		}
		if e.cfg.Progress != nil && now.Sub(lastShown) >= time.Second {
			lastShown = now
			rate := 0.0
			if !firstAt.IsZero() && now.After(firstAt) {
				rate = float64(done-firstDone) / now.Sub(firstAt).Seconds()
			}
			fmt.Fprintf(e.cfg.Progress, "\r[%s] %d/%d done  %.0f tasks/s   ", r.Worker, done, len(b.IDs), rate)
		}
	}
	end := time.Now()
	u := GroupUsage(pgid)
	n := len(b.IDs) - firstDone
	if h, ok := readHostCPU(); ok && hostOK {
		if pct, ok := stealPercent(host0, h); ok {
			r.HostStealPercent = &pct
		}
	}
	if c, ok := e.brokerCPU(ctx); ok && brokerOK && n > 0 {
		r.BrokerCPUSecondsPer1k = (c - broker0) / float64(n) * 1000
	}
	if e.cfg.Progress != nil && !lastShown.IsZero() {
		fmt.Fprintf(e.cfg.Progress, "\r[%s] %d/%d done                       \n", r.Worker, len(b.IDs), len(b.IDs))
	}
	r.PeakRSSBytes = u.HWMBytes
	r.MaxRSSBytes = max(r.MaxRSSBytes, u.RSSBytes)
	r.Processes = u.Processes
	r.CPUSeconds = u.CPUSeconds - cpu0
	if n > 0 {
		r.CPUSecondsPer1k = r.CPUSeconds / float64(n) * 1000
	}
	r.StartupSeconds = firstAt.Sub(start).Seconds()
	r.WallTasksPerSec = float64(len(b.IDs)) / end.Sub(start).Seconds()
	if e.backend != nil {
		st, err := collectResults(ctx, e.backend, b)
		if err != nil {
			return fmt.Errorf("read results: %w", err)
		}
		r.ResultsFound, r.ResultsWrong = st.Found, st.Wrong
		if st.Wrong > 0 {
			r.fail("%d results are not SUCCESS with x+y, e.g. %s", st.Wrong, st.Example)
		}
		span := st.Last.Sub(st.First).Seconds()
		r.MeasureSeconds = span
		if span > 0 {
			r.TasksPerSec = float64(st.Found-1) / span
		}
	} else {
		span := end.Sub(firstAt).Seconds()
		r.MeasureSeconds = span
		if span > 0 {
			r.TasksPerSec = float64(len(b.IDs)-firstDone) / span
		}
	}
	return nil
}

// brokerCPU reads the broker's CPU seconds so far: Redis's from INFO
// cpu, RabbitMQ's from /proc when it runs on this machine; false when
// neither can be read.
func (e *env) brokerCPU(ctx context.Context) (float64, bool) {
	if e.broker == nil {
		if e.rabbitPID > 0 {
			return processCPU(e.rabbitPID)
		}
		return 0, false
	}
	info, err := e.broker.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, false
	}
	return parseInfoCPU(info)
}

// progress reports how many tasks are done and whether all are.
func (e *env) progress(ctx context.Context, b *Batch) (int, bool, error) {
	if e.backend != nil {
		if b.watcher == nil {
			b.watcher = newResultWatcher(e.backend, b)
		}
		n, err := b.watcher.poll(ctx)
		return n, n == len(b.IDs), err
	}
	if e.kind == "redis" {
		return redisDrained(ctx, e.broker, b)
	}
	return amqpDrained(e.amqpCh, b)
}

func (e *env) preload(ctx context.Context, b *Batch, pydir string) error {
	if e.cfg.Producer == "python" {
		if e.kind == "amqp" {
			if err := DeclareAMQP(e.amqpCh, b.Queue); err != nil {
				return err
			}
		}
		if err := pythonProduce(ctx, e.cfg, b, pydir); err != nil {
			return err
		}
		if e.kind == "redis" {
			return e.fillTags(ctx, b)
		}
		return waitAMQPCount(ctx, e.amqpCh, b.Queue, len(b.IDs))
	}
	if e.kind == "redis" {
		return PreloadRedis(ctx, e.broker, b)
	}
	return PreloadAMQP(ctx, e.cfg.Broker, b)
}

// fillTags reads the delivery tags of messages a Python producer pushed.
func (e *env) fillTags(ctx context.Context, b *Batch) error {
	raw, err := e.broker.LRange(ctx, b.Queue, 0, -1).Result()
	if err != nil {
		return err
	}
	if len(raw) != len(b.IDs) {
		return fmt.Errorf("queue holds %d messages, want %d", len(raw), len(b.IDs))
	}
	b.Tags = b.Tags[:0]
	for _, s := range raw {
		var env struct {
			Properties struct {
				DeliveryTag string `json:"delivery_tag"`
			} `json:"properties"`
		}
		if err := json.Unmarshal([]byte(s), &env); err != nil {
			return err
		}
		b.Tags = append(b.Tags, env.Properties.DeliveryTag)
	}
	return nil
}

// cleanup removes what the run created: the queue, its binding, unacked
// leftovers and the results.
func (e *env) cleanup(b *Batch) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if e.kind == "redis" {
		keys := []string{b.Queue, "_kombu.binding." + b.Queue}
		for _, s := range []int{3, 6, 9} {
			keys = append(keys, b.Queue+"\x06\x16"+strconv.Itoa(s))
		}
		e.broker.Del(ctx, keys...)
		for start := 0; start < len(b.Tags); start += 4096 {
			end := min(start+4096, len(b.Tags))
			members := make([]any, 0, end-start)
			for _, t := range b.Tags[start:end] {
				members = append(members, t)
			}
			e.broker.HDel(ctx, "unacked", b.Tags[start:end]...)
			e.broker.ZRem(ctx, "unacked_index", members...)
		}
	} else if e.amqpCh != nil {
		_, _ = e.amqpCh.QueueDelete(b.Queue, false, false, false)
		_ = e.amqpCh.ExchangeDelete(b.Queue, false, false)
	}
	if e.backend != nil {
		for start := 0; start < len(b.IDs); start += 4096 {
			end := min(start+4096, len(b.IDs))
			keys := make([]string, 0, end-start)
			for _, id := range b.IDs[start:end] {
				keys = append(keys, ResultKeyPrefix+id)
			}
			e.backend.Del(ctx, keys...)
		}
	}
}

// startWorker starts the worker under test in its own process group.
func startWorker(cfg Config, worker, queue string, concurrency int, pydir string) (*exec.Cmd, *tailBuffer, error) {
	node := fmt.Sprintf("bench-%s-%08x@%%h", worker, rand.Uint32())
	var cmd *exec.Cmd
	switch worker {
	case "go":
		if cfg.WorkerBin == "" {
			return nil, nil, errors.New("no celerity binary")
		}
		// The same start-up steps as the Python worker below.
		args := []string{"worker", "-b", cfg.Broker, "-Q", queue, "-l", cfg.LogLevel, "-n", node,
			"--without-gossip", "--without-mingle", "--without-heartbeat"}
		if cfg.Backend != "" {
			args = append(args, "--result-backend", cfg.Backend)
		}
		if concurrency > 0 {
			args = append(args, "-c", strconv.Itoa(concurrency))
		}
		args = append(args, cfg.GoArgs...)
		cmd = exec.Command(cfg.WorkerBin, args...)
	case "python":
		cmd = exec.Command(cfg.Python, "-m", "celery", "-A", "celerity_bench_tasks", "worker",
			"-c", strconv.Itoa(concurrency), "-P", "prefork",
			"--without-gossip", "--without-mingle", "--without-heartbeat",
			"-Q", queue, "-l", cfg.LogLevel, "-n", node)
		cmd.Dir = pydir
		cmd.Env = append(os.Environ(), "CELERITY_BENCH_BROKER="+cfg.Broker,
			"CELERITY_BENCH_BACKEND="+cfg.Backend, "PYTHONPATH="+pydir)
	default:
		return nil, nil, fmt.Errorf("unknown worker %q (want go or python)", worker)
	}
	out := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := startProcess(cmd, worker); err != nil {
		return nil, nil, err
	}
	return cmd, out, nil
}

// stopWorker asks for a warm shutdown (SIGTERM to the main process), then
// kills the process group if it is still there after 20 s.
func stopWorker(cmd *exec.Cmd) {
	pid := cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(-pid, 0) != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

func progress(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, format, a...)
	}
}

// pythonLatency runs the Python client's sequential round trips.
func pythonLatency(ctx context.Context, cfg Config, queue, pydir string) (*Latency, error) {
	args := []string{strconv.Itoa(cfg.Latency)}
	if cfg.LatencyRaw {
		args = append(args, "raw")
	}
	out, err := runPython(ctx, cfg, pydir, "latency", queue, args...)
	if err != nil {
		return nil, err
	}
	var l Latency
	if err := json.Unmarshal(out, &l); err != nil {
		return nil, fmt.Errorf("client output %q: %w", out, err)
	}
	return &l, nil
}

// pythonProduce publishes the batch with real Celery send_task.
func pythonProduce(ctx context.Context, cfg Config, b *Batch, pydir string) error {
	f := filepath.Join(pydir, "ids-"+b.Queue+".txt")
	var buf bytes.Buffer
	for _, id := range b.IDs {
		buf.WriteString(id)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		return err
	}
	defer os.Remove(f)
	_, err := runPython(ctx, cfg, pydir, "produce", b.Queue, f)
	return err
}

func runPython(ctx context.Context, cfg Config, pydir, cmdName, queue string, args ...string) ([]byte, error) {
	if !PythonHasCelery(cfg.Python) {
		return nil, errNoPython
	}
	argv := append([]string{filepath.Join(pydir, "bench_client.py"), cmdName, cfg.Broker, cfg.Backend, queue}, args...)
	c := exec.CommandContext(ctx, cfg.Python, argv...)
	c.Dir = pydir
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := startProcess(c, "python")
	if err == nil {
		err = c.Wait()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", cmdName, err, lastLines(stderr.String(), 1500))
	}
	return bytes.TrimSpace(stdout.Bytes()), nil
}

// startProcess starts a worker or client process of the given kind. The
// Go worker inherits the tool's timer slack (celerity's own default, see
// internal/timerslack; the worker would set the same itself); Python
// processes start with the kernel's default, as operators run them.
func startProcess(cmd *exec.Cmd, kind string) error {
	if kind == "python" {
		return timerslack.StartWith(cmd, timerslack.KernelDefault)
	}
	return cmd.Start()
}

func lastLines(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
