package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/timerslack"
)

func TestReadStatSelf(t *testing.T) {
	st, ok := readStat(os.Getpid())
	if !ok {
		t.Fatal("cannot read own /proc stat")
	}
	if st.pgrp != syscall.Getpgrp() {
		t.Errorf("pgrp = %d, want %d", st.pgrp, syscall.Getpgrp())
	}
	hwm, rss := readMem(os.Getpid())
	if hwm <= 0 || rss <= 0 || rss > hwm {
		t.Errorf("VmHWM %d, VmRSS %d", hwm, rss)
	}
	u := GroupUsage(syscall.Getpgrp())
	if u.Processes < 1 || u.HWMBytes < hwm {
		t.Errorf("GroupUsage = %+v", u)
	}
}

func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:***@127.0.0.1:5672//"},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://:secret@h:6379/1", "redis://:***@h:6379/1"},
		{"", ""},
	} {
		if got := redactURL(c.in); got != c.want {
			t.Errorf("redactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestWriteTableRatios(t *testing.T) {
	rep := &Report{Runs: []WorkerRun{
		{Worker: "go", Broker: "redis://h/0", Backend: "redis://h/0", N: 10, TasksPerSec: 31000, PeakRSSBytes: 20 << 20,
			Latency: &Latency{P50Ms: 1, P99Ms: 2}},
		{Worker: "python", Concurrency: 2, Broker: "redis://h/0", Backend: "redis://h/0", N: 10, TasksPerSec: 1000, PeakRSSBytes: 100 << 20,
			Latency: &Latency{P50Ms: 2, P99Ms: 3}},
	}}
	var buf bytes.Buffer
	rep.WriteTable(&buf)
	out := buf.String()
	for _, want := range []string{"python prefork -c 2", "31.00×", "≥30× ok", "0.20×", "≤0.25 ok", "0.50×", "≤0.40 MISSED", "0.67×", "≤0.50 MISSED"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestWriteTableLatencyNote: the report says whether the round trips
// were timed with the stale pub/sub replies read between samples or raw.
func TestWriteTableLatencyNote(t *testing.T) {
	for _, c := range []struct {
		raw  bool
		want string
	}{
		{false, "the client read 7 pub/sub replies"},
		{true, "round trips: raw"},
	} {
		rep := &Report{Runs: []WorkerRun{
			{Worker: "go", N: 10, TasksPerSec: 1, Latency: &Latency{N: 2, P50Ms: 1, P99Ms: 2, StaleDrained: 3, Raw: c.raw}},
			{Worker: "python", N: 10, TasksPerSec: 1, Latency: &Latency{N: 2, P50Ms: 2, P99Ms: 3, StaleDrained: 4, Raw: c.raw}},
		}}
		if c.raw {
			for i := range rep.Runs {
				rep.Runs[i].Latency.StaleDrained = 0
			}
		}
		var buf bytes.Buffer
		rep.WriteTable(&buf)
		if !strings.Contains(buf.String(), c.want) {
			t.Errorf("raw=%v: report lacks %q:\n%s", c.raw, c.want, buf.String())
		}
	}
	var buf bytes.Buffer
	(&Report{Runs: []WorkerRun{{Worker: "go", N: 10, TasksPerSec: 1}}}).WriteTable(&buf)
	if strings.Contains(buf.String(), "round trips:") {
		t.Errorf("a report without round trips has a note about them:\n%s", buf.String())
	}
}

// TestWriteTableTimerSlack: the table says which timer slack each side
// ran with.
func TestWriteTableTimerSlack(t *testing.T) {
	rep := &Report{Machine: Machine{TimerSlackNS: 500000, PythonTimerSlackNS: 50000}, Runs: []WorkerRun{
		{Worker: "go", Broker: "redis://h/0", N: 10, TasksPerSec: 31000},
	}}
	var buf bytes.Buffer
	rep.WriteTable(&buf)
	if want := "timer slack 500µs for celerity and the ceiling, 50µs for Python\n"; !strings.Contains(buf.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, buf.String())
	}
}

// TestStartProcessTimerSlack: the Go worker inherits the tool's timer
// slack, Python processes start with the kernel's default.
func TestStartProcessTimerSlack(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("timer slack is Linux's")
	}
	// Start from a thread with a slack of its own, as the tool runs
	// after timerslack.Setup: the exec package forks from the calling
	// thread, and a child inherits that thread's slack.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, _ := timerslack.Get()
	if err := timerslack.SetThread(321 * time.Microsecond); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = timerslack.SetThread(before) }()
	for _, c := range []struct{ kind, want string }{{"go", "321000"}, {"python", "50000"}} {
		cmd := exec.Command("cat", "/proc/self/timerslack_ns")
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := startProcess(cmd, c.kind); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(out.String()); got != c.want {
			t.Errorf("%s process started with slack %s ns, want %s", c.kind, got, c.want)
		}
	}
}

// TestRunSmoke runs the whole tool with a handful of tasks against the Go
// worker binary (and the Python worker when Celery is installed).
func TestRunSmoke(t *testing.T) {
	client := redisOrSkip(t)
	if testing.Short() {
		t.Skip("builds and runs workers")
	}
	bin := filepath.Join(t.TempDir(), "celerity")
	build := exec.Command("go", "build", "-o", bin, "github.com/celerity-go/celerity/cmd/celerity")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	workers := []string{"go"}
	latency := 0
	if PythonHasCelery("") {
		workers = append(workers, "python")
		latency = 5
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	queue := UniqueQueue()
	rep, err := Run(ctx, Config{Broker: benchRedisURL, Backend: benchRedisURL, N: 60, Workers: workers,
		Latency: latency, WorkerBin: bin, Queue: queue, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != len(workers) {
		t.Fatalf("%d runs", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if len(r.Errors) > 0 {
			t.Errorf("%s: %v", r.Worker, r.Errors)
		}
		if r.ResultsFound != 60 || r.ResultsWrong != 0 || r.TasksPerSec <= 0 || r.PeakRSSBytes <= 0 || r.Processes < 1 {
			t.Errorf("%s: %+v", r.Worker, r)
		}
		// /proc/stat counts in 10 ms ticks: a drain shorter than a few
		// ticks may see none pass and reports no steal.
		if r.HostStealPercent == nil && r.MeasureSeconds >= 0.05 {
			t.Errorf("%s: no host steal for a %.3f s drain", r.Worker, r.MeasureSeconds)
		}
		if p := r.HostStealPercent; p != nil && (*p < 0 || *p > 100) {
			t.Errorf("%s: host steal %v%%, want a share of /proc/stat's time", r.Worker, *p)
		}
		if latency > 0 && (r.Latency == nil || r.Latency.N != latency || r.Latency.P50Ms <= 0 || r.Latency.P99Ms < r.Latency.P50Ms) {
			t.Errorf("%s latency: %+v", r.Worker, r.Latency)
		}
		// Every round trip leaves at least the confirmation of its
		// unsubscribe unread on the result consumer's connection; the
		// client reads those between samples.
		if latency > 0 && r.Latency != nil && r.Latency.StaleDrained < latency {
			t.Errorf("%s latency: %d stale replies read between %d samples, want at least one per sample", r.Worker, r.Latency.StaleDrained, latency)
		}
	}
	if n, _ := client.Exists(context.Background(), queue, "_kombu.binding."+queue).Result(); n != 0 {
		t.Errorf("queue keys left behind: %d", n)
	}
}

// TestWriteTableRounds: with several rounds the columns are medians and
// the ratio is the median of the same-round ratios (not the ratio of the
// medians), and every round's tasks/s ratio is listed.
func TestWriteTableRounds(t *testing.T) {
	run := func(worker string, round int, tps float64) WorkerRun {
		return WorkerRun{Worker: worker, Round: round, Broker: "redis://h/0", Backend: "redis://h/0", N: 10, TasksPerSec: tps}
	}
	rep := &Report{Runs: []WorkerRun{
		run("go", 1, 10000), run("python", 1, 1000), // 10×
		run("go", 2, 30000), run("python", 2, 1000), // 30×
		run("go", 3, 12000), run("python", 3, 600), // 20×
	}}
	var buf bytes.Buffer
	rep.WriteTable(&buf)
	out := buf.String()
	// medians: go 12000, python 1000 (ratio of medians 12×); median
	// same-round ratio 20×.
	for _, want := range []string{"(median of 3)", "12000", "1000", "20.00×", "≥30× MISSED", "per round: 10.00×, 30.00×, 20.00×"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "12.00×") {
		t.Errorf("ratio of medians shown instead of the median ratio:\n%s", out)
	}
	if strings.Contains(out, "CPU steal %") {
		t.Errorf("steal line without steal readings:\n%s", out)
	}
	for i := range rep.Runs {
		v := float64(i)
		rep.Runs[i].HostStealPercent = &v
	}
	rep.Runs[5].HostStealPercent = nil // round 3 has no Python reading
	buf.Reset()
	rep.WriteTable(&buf)
	if want := "CPU steal % during the drain per round, go/python: 0.0/1.0, 2.0/3.0\n"; !strings.Contains(buf.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, buf.String())
	}
}

// TestRedisCeiling drains a small batch with the bare consumer: every
// message is counted and acknowledged (RedisCeiling checks unacked before
// its cleanup), the rate is reported with the prefetch it ran at, and the
// queue is gone afterwards.
func TestRedisCeiling(t *testing.T) {
	client := redisOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := RedisCeiling(ctx, benchRedisURL, 3000, 8)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != "redis" || c.Prefetch != 8 || c.N != 3000 || c.MsgsPerSec <= 0 {
		t.Errorf("ceiling = %+v", c)
	}
	if keys, _ := client.Keys(ctx, "celerity-bench-*").Result(); len(keys) > 0 {
		for _, k := range keys {
			if strings.Contains(k, fmt.Sprint(os.Getpid())) {
				t.Errorf("key left behind: %q", k)
			}
		}
	}
}

// TestWriteTableRedisCeiling: a Redis drain ceiling is printed with how
// the bare consumer fetched and how close the Go worker came to it.
func TestWriteTableRedisCeiling(t *testing.T) {
	rep := &Report{Runs: []WorkerRun{
		{Worker: "go", Broker: "redis://h/0", Backend: "redis://h/0", N: 10, TasksPerSec: 30000},
		{Worker: "python", Broker: "redis://h/0", Backend: "redis://h/0", N: 10, TasksPerSec: 1000},
	}, Ceiling: &Ceiling{Kind: "redis", Prefetch: 8, N: 10, MsgsPerSec: 60000}}
	var buf bytes.Buffer
	rep.WriteTable(&buf)
	out := buf.String()
	for _, want := range []string{"prefetch 8, the worker's pop script", "drains 60000 msgs/s", "= 60.00× the Python worker", "reaches 50% of it"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "global QoS") {
		t.Errorf("Redis ceiling described as RabbitMQ's:\n%s", out)
	}
}
