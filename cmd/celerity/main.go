// Command celerity runs a Go Celery worker that shares queues and result
// stores with Python Celery.
//
//	celerity worker -b redis://localhost:6379/0 --result-backend redis://localhost:6379/1 -Q celery
//	celerity demo
//
// Run "celerity worker -h" for the options; they carry Celery's names.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/handlers"
	"github.com/celerity-go/celerity/internal/celerylog"
	"github.com/celerity-go/celerity/internal/seconds"
	"github.com/celerity-go/celerity/internal/timerslack"
)

// errUsage marks configuration errors: one line on stderr, exit status 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: celerity worker|demo [options]")
		return 2
	}
	var err error
	switch args[0] {
	case "worker":
		err = workerCmd(args[1:], stderr)
	case "demo":
		err = demoCmd(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, "usage: celerity worker|demo [options]; celerity worker -h for the worker's options")
		return 0
	default:
		err = fmt.Errorf("%w: unknown command %q (want worker or demo)", errUsage, args[0])
	}
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "celerity: "+strings.TrimPrefix(err.Error(), "usage: "))
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// parseWorkerFlags merges defaults, --config YAML, environment and flags.
func parseWorkerFlags(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	s := defaultSettings()
	fs := flag.NewFlagSet("celerity worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		broker, backend, queues, hostname, loglevel, config string
		concurrency, prefetch                               int
	)
	str := func(p *string, names []string, usage string) {
		for _, n := range names {
			fs.StringVar(p, n, "", usage)
		}
	}
	str(&broker, []string{"b", "broker"}, "broker URL (broker_url), e.g. redis://localhost:6379/0 or amqp://guest:guest@localhost//")
	str(&backend, []string{"result-backend"}, "result backend URL (result_backend): redis://… or rpc://")
	str(&queues, []string{"Q", "queues"}, "comma-separated queues to consume (default: task_default_queue)")
	str(&hostname, []string{"n", "hostname"}, "node name, default celery@%h (%h host, %n short name, %d domain)")
	str(&loglevel, []string{"l", "loglevel"}, "DEBUG, INFO, WARNING, ERROR, CRITICAL")
	str(&config, []string{"config"}, "YAML file with Celery setting names")
	for _, n := range []string{"c", "concurrency"} {
		fs.IntVar(&concurrency, n, 0, "tasks run at once (worker_concurrency), default: number of CPUs")
	}
	fs.IntVar(&prefetch, "prefetch-multiplier", -1, "worker_prefetch_multiplier (default 4)")
	var autoscale string
	str(&autoscale, []string{"autoscale"}, "max,min: run min executors (default 0), up to max while tasks wait; replaces -c")
	var taskEvents, withoutHeartbeat, withoutControl, withoutMingle, ignored bool
	var metricsAddr, pool string
	for _, n := range []string{"E", "task-events"} {
		fs.BoolVar(&taskEvents, n, false, "send task events for monitors such as Flower (worker_send_task_events)")
	}
	fs.BoolVar(&withoutHeartbeat, "without-heartbeat", false, "send no worker events (online, heartbeat, offline)")
	fs.BoolVar(&withoutControl, "without-control", false, "do not answer remote control (celery inspect/control)")
	fs.BoolVar(&ignored, "without-gossip", false, "accepted for compatibility (the Go worker does not gossip)")
	fs.BoolVar(&withoutMingle, "without-mingle", false, "do not sync revoked tasks with the other workers at start (mingle)")
	str(&pool, []string{"P", "pool"}, "accepted for compatibility: tasks always run in goroutines")
	str(&metricsAddr, []string{"metrics-addr"}, "serve Prometheus metrics on this address, e.g. :9808")
	var timeLimit, softTimeLimit float64
	fs.Float64Var(&timeLimit, "time-limit", 0, "hard time limit in seconds (task_time_limit)")
	fs.Float64Var(&softTimeLimit, "soft-time-limit", 0, "soft time limit in seconds (task_soft_time_limit)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return s, err
		}
		return s, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if config != "" {
		if err := s.loadYAML(config); err != nil {
			return s, fmt.Errorf("%w: config: %v", errUsage, err)
		}
	}
	if err := s.loadEnv(getenv); err != nil {
		return s, fmt.Errorf("%w: %v", errUsage, err)
	}
	if broker != "" {
		s.BrokerURL = broker
	}
	if backend != "" {
		s.ResultBackend = backend
	}
	if queues != "" {
		s.Queues = splitList(queues)
	}
	if hostname != "" {
		s.Hostname = hostname
	}
	if loglevel != "" {
		s.LogLevel = loglevel
	}
	if concurrency != 0 {
		s.Concurrency = concurrency
	}
	if autoscale != "" {
		var err error
		if s.AutoscaleMax, s.AutoscaleMin, err = parseAutoscale(autoscale); err != nil {
			return s, fmt.Errorf("%w: --autoscale: %v", errUsage, err)
		}
	}
	if prefetch >= 0 {
		s.PrefetchMultiplier = prefetch
	}
	if taskEvents {
		s.TaskEvents = true
	}
	s.WithoutHeartbeat = s.WithoutHeartbeat || withoutHeartbeat
	s.WithoutControl = s.WithoutControl || withoutControl
	s.WithoutMingle = s.WithoutMingle || withoutMingle
	if metricsAddr != "" {
		s.MetricsAddr = metricsAddr
	}
	if timeLimit > 0 {
		s.TimeLimit = seconds.Duration(timeLimit)
	}
	if softTimeLimit > 0 {
		s.SoftTimeLimit = seconds.Duration(softTimeLimit)
	}
	if s.Concurrency < 0 {
		return s, fmt.Errorf("%w: concurrency must be positive", errUsage)
	}
	if _, err := parseLevel(s.LogLevel); err != nil {
		return s, fmt.Errorf("%w: %v", errUsage, err)
	}
	return s, nil
}

// parseAutoscale reads Celery's --autoscale value, "max" or "max,min"
// (min defaults to 0).
func parseAutoscale(v string) (hi, lo int, err error) {
	maxText, minText, _ := strings.Cut(v, ",")
	if hi, err = strconv.Atoi(strings.TrimSpace(maxText)); err != nil {
		return 0, 0, fmt.Errorf("max %q is not a number", maxText)
	}
	if strings.TrimSpace(minText) != "" {
		if lo, err = strconv.Atoi(strings.TrimSpace(minText)); err != nil {
			return 0, 0, fmt.Errorf("min %q is not a number", minText)
		}
	}
	if hi < 1 || lo < 0 || lo > hi {
		return 0, 0, fmt.Errorf("want 1 <= max and 0 <= min <= max, got max %d min %d", hi, lo)
	}
	return hi, lo, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(s) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "INFO", "":
		return slog.LevelInfo, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR", "CRITICAL", "FATAL":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q", s)
}

// expandHostname applies Celery's %h, %n and %d node name substitutions.
func expandHostname(name string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	short, domain, _ := strings.Cut(host, ".")
	if name == "" {
		name = "celery@%h"
	}
	r := strings.NewReplacer("%h", host, "%n", short, "%d", domain, "%%", "%")
	name = r.Replace(name)
	if !strings.Contains(name, "@") {
		name = "celery@" + name
	}
	return name
}

func workerCmd(args []string, stderr io.Writer) error {
	s, err := parseWorkerFlags(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	level, _ := parseLevel(s.LogLevel)
	logger := slog.New(celerylog.New(stderr, level))
	slog.SetDefault(logger)
	if err := setTimerSlack(os.Getenv); err != nil {
		if errors.Is(err, errUsage) {
			return err
		}
		logger.Warn("worker: cannot set the timer slack; running with the system's", "error", err)
	}
	setGCPercent(os.Getenv)

	fetchCtx, stopFetch := context.WithCancel(context.Background())
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	go func() {
		warm := true
		for sig := range sigs {
			if warm && sig != syscall.SIGQUIT {
				logger.Warn("worker: Warm shutdown (MainProcess)")
				stopFetch()
				warm = false
				continue
			}
			logger.Warn("worker: Cold shutdown (MainProcess)")
			stopFetch()
			stopWork()
			return
		}
	}()

	w, mon, cleanup, err := buildWorker(fetchCtx, s, logger)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := handlers.Register(w, logger); err != nil {
		return err
	}
	stopMonitoring, err := mon.start(w)
	if err != nil {
		return err
	}
	defer stopMonitoring()
	return w.Run(fetchCtx, workCtx)
}

// workerGCPercent is the worker's garbage collection target when GOGC is
// not set. The worker's live heap is about 1 MiB, so at Go's default of
// 100 the heap goal sits at the runtime's 4 MiB minimum and a busy worker
// collects every few hundred tasks (58 collections for 20,000 tasks on
// Redis). At 200 the goal is 8 MiB: a third of the collections, 4–24%
// less CPU per task in four paired runs, 4 MiB more RSS. A handler
// that keeps a large heap alive pays up to twice that heap in garbage
// instead of once; GOGC=100 restores Go's default.
const workerGCPercent = 200

// setGCPercent applies workerGCPercent unless the environment sets GOGC
// (which the runtime has then applied itself).
func setGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(workerGCPercent)
	}
}

// workerTimerSlack is the worker's Linux timer slack unless
// CELERITY_TIMER_SLACK says otherwise (a duration, or 0 to keep the
// system's). At the kernel's 50µs the Go runtime's monitor thread and
// idle threads wake up tens of thousands of times a second in a busy
// worker, and on a two-vCPU virtual machine each wake-up is a costly
// context switch. At 500µs the worker drained Redis 13–28% faster with
// 28–32% less CPU per task in three paired runs (docs/performance.md,
// round 9). Timers (result batching's linger, time limits, ETAs) may
// fire up to 500µs late; nothing woken by the network waits longer.
const workerTimerSlack = timerslack.Default

// setTimerSlack applies workerTimerSlack or CELERITY_TIMER_SLACK to every
// thread of the process. Where it must change the slack it re-executes
// the program (see internal/timerslack), so it runs before the worker
// starts anything. A malformed setting is a usage error; any other error
// means the worker goes on with the system's slack.
func setTimerSlack(getenv func(string) string) error {
	err := timerslack.Setup(getenv(timerslack.EnvVar), workerTimerSlack)
	if se := (*timerslack.SettingError)(nil); errors.As(err, &se) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return err
}

// workerConfig maps settings onto the library's Config.
func workerConfig(s settings, logger *slog.Logger) celerity.Config {
	queues := s.Queues
	if len(queues) == 0 {
		if len(s.TaskQueues) > 0 {
			for _, q := range s.TaskQueues {
				queues = append(queues, q.Name)
			}
		} else {
			queues = []string{s.DefaultQueue}
		}
	}
	pm := s.PrefetchMultiplier
	if pm == 0 {
		pm = -1 // Celery's 0: unlimited
	}
	var tz *time.Location
	if s.Timezone != "" {
		tz, _ = time.LoadLocation(s.Timezone) // validated when read
	}
	// task_annotations: "*" applies to every task, a named entry wins.
	var rates map[string]string
	if len(s.RateLimits) > 0 {
		rates = map[string]string{}
		if all, ok := s.RateLimits["*"]; ok {
			for _, n := range handlers.Names {
				rates[n] = all
			}
		}
		for n, r := range s.RateLimits {
			if n != "*" {
				rates[n] = r
			}
		}
	}
	acksOnFailure := s.AcksOnFailureOrTimeout
	return celerity.Config{
		DefaultQueue:             s.DefaultQueue,
		Routes:                   s.Routes,
		TimeLimit:                s.TimeLimit,
		SoftTimeLimit:            s.SoftTimeLimit,
		AcksOnFailureOrTimeout:   &acksOnFailure,
		RejectOnWorkerLost:       s.RejectOnWorkerLost,
		StoreErrorsEvenIfIgnored: s.StoreErrorsEvenIfIgnored,
		Timezone:                 tz,
		RateLimits:               rates,
		Hostname:                 expandHostname(s.Hostname),
		Queues:                   queues,
		Concurrency:              s.Concurrency,
		AutoscaleMax:             s.AutoscaleMax,
		AutoscaleMin:             s.AutoscaleMin,
		PrefetchMultiplier:       pm,
		AcksLate:                 s.AcksLate,
		WorkerDirect:             s.WorkerDirect,
		TrackStarted:             s.TrackStarted,
		ResultExtended:           s.ResultExtended,
		AcceptContent:            s.AcceptContent,
		Logger:                   logger,
	}
}
