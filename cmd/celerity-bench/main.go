// Command celerity-bench measures celerity's worker side by side with a
// Python Celery prefork worker on the same broker: tasks/s, round-trip
// latency from a Python client, peak RSS and CPU time per 1000 tasks.
//
//	celerity-bench -broker redis://127.0.0.1:6379/0 -backend redis://127.0.0.1:6379/0 -n 20000
//	celerity-bench -broker amqp://guest:guest@127.0.0.1:5672// -backend redis://127.0.0.1:6379/0
//	celerity-bench -backend "" -worker go -json out.json
//
// It preloads -n protocol v2 tasks.add messages exactly as Python Celery
// publishes them (or with real Python send_task, -producer python), then
// starts each worker on that queue and waits for the drain. Run it from
// inside the celerity module so it can build ./cmd/celerity, or pass
// -worker-bin.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/celerity-go/celerity/internal/loadtest"
	"github.com/celerity-go/celerity/internal/timerslack"
)

func main() {
	// The tool runs with the slack celerity's worker runs with (it
	// inherits it and reads the same setting), so that the ceiling it
	// measures in-process is measured under the same conditions; Python
	// processes start with the kernel's default (see loadtest).
	if err := timerslack.Setup(os.Getenv(timerslack.EnvVar), timerslack.Default); err != nil {
		if se := (*timerslack.SettingError)(nil); errors.As(err, &se) {
			fmt.Fprintln(os.Stderr, "celerity-bench:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "celerity-bench: running with the system's timer slack:", err)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("celerity-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       loadtest.Config
		workers   string
		jsonOut   string
		quiet     bool
		workerBin string
		goArgs    string
	)
	fs.StringVar(&cfg.Broker, "broker", "redis://127.0.0.1:6379/0", "broker URL: redis://host:port/db or amqp://user:pass@host:port/vhost")
	fs.StringVar(&cfg.Backend, "backend", "redis://127.0.0.1:6379/0", `redis:// result backend URL; "" runs with results off`)
	fs.IntVar(&cfg.N, "n", 20000, "tasks to preload per worker")
	fs.StringVar(&workers, "worker", "", "go, python or both (default both when the Python interpreter has celery, else go)")
	fs.IntVar(&cfg.Concurrency, "c", 0, "concurrency for both workers (default: 2 for Python prefork, celerity's default for Go)")
	fs.IntVar(&cfg.Latency, "latency", 200, "sequential send_task+get round trips from a Python client (0: skip)")
	fs.BoolVar(&cfg.LatencyRaw, "latency-raw", false, "leave the result consumer's unread pub/sub replies (results get() already read by GET) for the next round trip instead of reading them, untimed, between samples")
	fs.StringVar(&jsonOut, "json", "", "write the report as JSON to this file")
	fs.StringVar(&cfg.Queue, "queue", "", "queue name (default: a unique name per worker run)")
	fs.StringVar(&workerBin, "worker-bin", "", "celerity binary (default: go build ./cmd/celerity into a temp dir)")
	fs.StringVar(&cfg.Python, "python", loadtest.DefaultPython, "Python interpreter with celery")
	fs.StringVar(&cfg.Producer, "producer", "go", "go (encode like Celery) or python (real send_task)")
	fs.StringVar(&cfg.LogLevel, "loglevel", "WARNING", "workers' log level (Celery's default WARNING)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "give up on a worker's drain after this long")
	fs.StringVar(&goArgs, "go-args", "", `extra space-separated arguments for "celerity worker", e.g. "--prefetch-multiplier 64"`)
	fs.BoolVar(&quiet, "q", false, "no progress output on stderr")
	fs.IntVar(&cfg.Rounds, "rounds", 1, "repeat the measurement, workers taking turns; the table shows medians and the median same-round ratio")
	fs.BoolVar(&cfg.Ceiling, "ceiling", true, "also measure what no worker can beat: a bare consumer at the Go worker's prefetch, and on Redis the round trip against a bare responder")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "celerity-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	hasPython := loadtest.PythonHasCelery(cfg.Python)
	switch workers {
	case "":
		cfg.Workers = []string{"go"}
		if hasPython {
			cfg.Workers = append(cfg.Workers, "python")
		} else {
			fmt.Fprintf(stderr, "celerity-bench: %s has no celery; measuring the Go worker only\n", cfg.Python)
		}
	case "both":
		cfg.Workers = []string{"go", "python"}
	case "go", "python":
		cfg.Workers = []string{workers}
	default:
		fmt.Fprintf(stderr, "celerity-bench: -worker %q: want go, python or both\n", workers)
		return 2
	}
	if (contains(cfg.Workers, "python") || cfg.Producer == "python" || cfg.Latency > 0 && cfg.Backend != "") && !hasPython {
		if contains(cfg.Workers, "python") || cfg.Producer == "python" {
			fmt.Fprintf(stderr, "celerity-bench: %s cannot import celery\n", cfg.Python)
			return 2
		}
		fmt.Fprintf(stderr, "celerity-bench: no Python celery, latency skipped\n")
		cfg.Latency = 0
	}
	if !quiet {
		cfg.Progress = stderr
	}
	cfg.GoArgs = strings.Fields(goArgs)

	if contains(cfg.Workers, "go") {
		if workerBin == "" {
			dir, err := os.MkdirTemp("", "celerity-bench-bin-")
			if err != nil {
				fmt.Fprintln(stderr, "celerity-bench:", err)
				return 1
			}
			defer os.RemoveAll(dir)
			workerBin = filepath.Join(dir, "celerity")
			if cfg.Progress != nil {
				fmt.Fprintln(cfg.Progress, "building ./cmd/celerity")
			}
			b := exec.Command("go", "build", "-o", workerBin, "github.com/celerity-go/celerity/cmd/celerity")
			b.Stdout, b.Stderr = stderr, stderr
			if err := b.Run(); err != nil {
				fmt.Fprintln(stderr, "celerity-bench: go build ./cmd/celerity (run from inside the celerity module or pass -worker-bin):", err)
				return 1
			}
		}
		cfg.WorkerBin = workerBin
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	rep, err := loadtest.Run(ctx, cfg)
	if rep != nil {
		rep.WriteTable(stdout)
		if jsonOut != "" {
			data, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(jsonOut, append(data, '\n'), 0o644); werr != nil {
				fmt.Fprintln(stderr, "celerity-bench:", werr)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "celerity-bench:", err)
		return 1
	}
	for _, r := range rep.Runs {
		if len(r.Errors) > 0 && r.TasksPerSec == 0 {
			return 1
		}
	}
	return 0
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
