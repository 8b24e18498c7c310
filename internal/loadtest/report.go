package loadtest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/celerity-go/celerity/internal/timerslack"
)

// Machine describes where the numbers were measured.
type Machine struct {
	CPUs        int    `json:"cpus"`
	CPUModel    string `json:"cpu_model"`
	MemoryBytes int64  `json:"memory_bytes"`
	Kernel      string `json:"kernel"`
	GoVersion   string `json:"go_version"`
	Celery      string `json:"python_celery,omitempty"`
	LoadAvg     string `json:"loadavg_at_start"`
	// TimerSlackNS is the tool's Linux timer slack, which the Go worker
	// and the in-process ceiling run with; Python processes run with the
	// kernel's default (PythonTimerSlackNS). 0 where there is none.
	TimerSlackNS       int64 `json:"timer_slack_ns,omitempty"`
	PythonTimerSlackNS int64 `json:"python_timer_slack_ns,omitempty"`
}

// DescribeMachine reads /proc for the machine description.
func DescribeMachine(python string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if d, ok := timerslack.Get(); ok {
		m.TimerSlackNS, m.PythonTimerSlackNS = int64(d), int64(timerslack.KernelDefault)
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				m.MemoryBytes = kb * 1024
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(data))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if python != "" {
		if out, err := exec.Command(python, "-c", "import celery; print(celery.__version__)").Output(); err == nil {
			m.Celery = strings.TrimSpace(string(out))
		}
	}
	return m
}

// row is one metric of the comparison table.
type row struct {
	name   string
	get    func(*WorkerRun) (float64, bool)
	format string
	higher bool    // higher is better
	target float64 // go/python target; 0: none
	// noRatio: the row describes the machine during each worker's run,
	// not the worker; go/python means nothing.
	noRatio bool
}

func (rep *Report) rows() []row {
	lat := func(f func(*Latency) float64) func(*WorkerRun) (float64, bool) {
		return func(r *WorkerRun) (float64, bool) {
			if r.Latency == nil {
				return 0, false
			}
			return f(r.Latency), true
		}
	}
	tput := 0.0
	if len(rep.Runs) > 0 && rep.Runs[0].Backend != "" {
		if k, _ := brokerKind(rep.Runs[0].Broker); k == "redis" {
			tput = 30
		} else {
			tput = 10
		}
	}
	return []row{
		{"tasks/s", func(r *WorkerRun) (float64, bool) { return r.TasksPerSec, r.TasksPerSec > 0 }, "%.0f", true, tput, false},
		{"tasks/s incl. startup", func(r *WorkerRun) (float64, bool) { return r.WallTasksPerSec, r.WallTasksPerSec > 0 }, "%.0f", true, 0, false},
		{"startup to first task (s)", func(r *WorkerRun) (float64, bool) { return r.StartupSeconds, r.StartupSeconds > 0 }, "%.2f", false, 0, false},
		{"peak RSS, MiB (sum VmHWM)", func(r *WorkerRun) (float64, bool) {
			return float64(r.PeakRSSBytes) / (1 << 20), r.PeakRSSBytes > 0
		}, "%.1f", false, 0.25, false},
		{"processes", func(r *WorkerRun) (float64, bool) { return float64(r.Processes), r.Processes > 0 }, "%.0f", false, 0, false},
		{"CPU s per 1k tasks", func(r *WorkerRun) (float64, bool) { return r.CPUSecondsPer1k, r.CPUSecondsPer1k > 0 }, "%.3f", false, 0, false},
		{"broker CPU s per 1k tasks", func(r *WorkerRun) (float64, bool) {
			return r.BrokerCPUSecondsPer1k, r.BrokerCPUSecondsPer1k > 0
		}, "%.3f", false, 0, false},
		{"CPU steal during drain (%)", func(r *WorkerRun) (float64, bool) {
			if r.HostStealPercent == nil {
				return 0, false
			}
			return *r.HostStealPercent, true
		}, "%.1f", false, 0, true},
		{"round trip p50 (ms)", lat(func(l *Latency) float64 { return l.P50Ms }), "%.2f", false, 0.40, false},
		{"round trip p99 (ms)", lat(func(l *Latency) float64 { return l.P99Ms }), "%.2f", false, 0.50, false},
		{"round trip mean (ms)", lat(func(l *Latency) float64 { return l.MeanMs }), "%.2f", false, 0, false},
	}
}

func (rep *Report) run(worker string) *WorkerRun {
	for i := range rep.Runs {
		if rep.Runs[i].Worker == worker {
			return &rep.Runs[i]
		}
	}
	return nil
}

func tasksPerSec(r *WorkerRun) (float64, bool) { return r.TasksPerSec, r.TasksPerSec > 0 }

// latency returns the p50 (pct 50) or p99 round trip of r, if measured.
func latency(r *WorkerRun, pct int) (float64, bool) {
	if r.Latency == nil {
		return 0, false
	}
	if pct == 50 {
		return r.Latency.P50Ms, r.Latency.P50Ms > 0
	}
	return r.Latency.P99Ms, r.Latency.P99Ms > 0
}

// workers lists the measured workers in the order they first ran.
func (rep *Report) workers() []string {
	var ws []string
	for _, r := range rep.Runs {
		if !slices.Contains(ws, r.Worker) {
			ws = append(ws, r.Worker)
		}
	}
	return ws
}

// values returns row's value for each run of worker that has one.
func (rep *Report) values(worker string, get func(*WorkerRun) (float64, bool)) []float64 {
	var vs []float64
	for i := range rep.Runs {
		if rep.Runs[i].Worker != worker {
			continue
		}
		if v, ok := get(&rep.Runs[i]); ok {
			vs = append(vs, v)
		}
	}
	return vs
}

// ratios returns go/python for each round in which both have a value:
// only numbers measured in the same round are compared.
func (rep *Report) ratios(get func(*WorkerRun) (float64, bool)) []float64 {
	var out []float64
	for i := range rep.Runs {
		g := &rep.Runs[i]
		if g.Worker != "go" {
			continue
		}
		for k := range rep.Runs {
			p := &rep.Runs[k]
			if p.Worker != "python" || p.Round != g.Round {
				continue
			}
			gv, ok1 := get(g)
			pv, ok2 := get(p)
			if ok1 && ok2 && pv != 0 {
				out = append(out, gv/pv)
			}
		}
	}
	return out
}

// median of vs (sorted copy); vs must not be empty.
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// WriteTable prints the side-by-side table: one column per worker (the
// median over rounds when there are several), then go/python (the median
// of the ratios measured in the same round) with the target.
func (rep *Report) WriteTable(w io.Writer) {
	if len(rep.Runs) == 0 {
		return
	}
	r0 := rep.Runs[0]
	backend := r0.Backend
	if backend == "" {
		backend = "off"
	}
	fmt.Fprintf(w, "broker %s, results %s, %d tasks.add, producer %s; %d CPUs, %s\n",
		redactURL(r0.Broker), redactURL(backend), r0.N, r0.Producer, rep.Machine.CPUs, rep.Machine.CPUModel)
	if m := rep.Machine; m.TimerSlackNS > 0 {
		fmt.Fprintf(w, "timer slack %v for celerity and the ceiling, %v for Python\n",
			time.Duration(m.TimerSlackNS), time.Duration(m.PythonTimerSlackNS))
	}
	g, p := rep.run("go"), rep.run("python")
	workers := rep.workers()
	rounds := 0
	for _, r := range rep.Runs {
		rounds = max(rounds, r.Round)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "metric\t"
	for _, wk := range workers {
		r := rep.run(wk)
		name := r.Worker
		if r.Worker == "python" {
			name = fmt.Sprintf("python prefork -c %d", r.Concurrency)
		} else if r.Concurrency > 0 {
			name = fmt.Sprintf("go -c %d", r.Concurrency)
		}
		if len(r.ExtraArgs) > 0 {
			name += " " + strings.Join(r.ExtraArgs, " ")
		}
		if rounds > 1 {
			name += fmt.Sprintf(" (median of %d)", rounds)
		}
		header += name + "\t"
	}
	if g != nil && p != nil {
		header += "go/python\ttarget\t"
	}
	fmt.Fprintln(tw, header)
	for _, row := range rep.rows() {
		line := row.name + "\t"
		for _, wk := range workers {
			if vs := rep.values(wk, row.get); len(vs) > 0 {
				line += fmt.Sprintf(row.format, median(vs)) + "\t"
			} else {
				line += "-\t"
			}
		}
		if g != nil && p != nil {
			if rs := rep.ratios(row.get); len(rs) > 0 && !row.noRatio {
				ratio := median(rs)
				line += fmt.Sprintf("%.2f×\t", ratio)
				switch {
				case row.target == 0:
					line += "\t"
				case row.higher:
					line += fmt.Sprintf("≥%.0f× %s\t", row.target, passFail(ratio >= row.target))
				default:
					line += fmt.Sprintf("≤%.2f %s\t", row.target, passFail(ratio <= row.target))
				}
			} else {
				line += "-\t\t"
			}
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	if rounds > 1 && g != nil && p != nil {
		var parts []string
		for _, r := range rep.ratios(tasksPerSec) {
			parts = append(parts, fmt.Sprintf("%.2f×", r))
		}
		fmt.Fprintf(w, "tasks/s go/python per round: %s\n", strings.Join(parts, ", "))
		rep.writeStealLine(w, rounds)
	}
	rep.writeLatencyNote(w)
	if c := rep.Ceiling; c != nil && c.Latency != nil {
		l := c.Latency
		fmt.Fprintf(w, "latency floor: against a bare responder (BRPOP, decode, SETEX+PUBLISH the result, nothing else) the Python client's round trip is p50 %.2f ms, p99 %.2f ms", l.P50Ms, l.P99Ms)
		p50 := rep.values("python", func(r *WorkerRun) (float64, bool) { return latency(r, 50) })
		p99 := rep.values("python", func(r *WorkerRun) (float64, bool) { return latency(r, 99) })
		if len(p50) > 0 && len(p99) > 0 {
			fmt.Fprintf(w, " = %.2f / %.2f of the Python worker's", l.P50Ms/median(p50), l.P99Ms/median(p99))
		}
		fmt.Fprintln(w)
	}
	if c := rep.Ceiling; c != nil && c.MsgsPerSec > 0 {
		how := "global QoS, one ack per message"
		if c.Kind == "redis" {
			how = "the worker's pop script and carried acks, two fetches in flight"
		}
		fmt.Fprintf(w, "broker ceiling: a bare consumer (prefetch %d, %s, no work, no results) drains %.0f msgs/s", c.Prefetch, how, c.MsgsPerSec)
		if vs := rep.values("python", tasksPerSec); len(vs) > 0 {
			fmt.Fprintf(w, " = %.2f× the Python worker", c.MsgsPerSec/median(vs))
		}
		if vs := rep.values("go", tasksPerSec); len(vs) > 0 {
			fmt.Fprintf(w, "; the Go worker reaches %.0f%% of it", 100*median(vs)/c.MsgsPerSec)
		}
		fmt.Fprintln(w)
	}
	for _, r := range rep.Runs {
		for _, e := range r.Errors {
			fmt.Fprintf(w, "%s: %s\n", r.Worker, e)
		}
	}
}

// writeStealLine lists each round's CPU steal during the Go and the
// Python drain, when both were read: a round whose two workers ran on
// differently loaded hosts compares less well.
func (rep *Report) writeStealLine(w io.Writer, rounds int) {
	steal := func(worker string, round int) (float64, bool) {
		for i := range rep.Runs {
			r := &rep.Runs[i]
			if r.Worker == worker && r.Round == round && r.HostStealPercent != nil {
				return *r.HostStealPercent, true
			}
		}
		return 0, false
	}
	var parts []string
	for round := 1; round <= rounds; round++ {
		g, ok1 := steal("go", round)
		p, ok2 := steal("python", round)
		if ok1 && ok2 {
			parts = append(parts, fmt.Sprintf("%.1f/%.1f", g, p))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "CPU steal %% during the drain per round, go/python: %s\n", strings.Join(parts, ", "))
	}
}

func passFail(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// redactURL hides a password in a URL.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return u
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return u
	}
	return scheme + "://" + user + ":***@" + rest[at+1:]
}

// writeLatencyNote says how the round trips were timed: whether the client
// read the result consumer's stale pub/sub replies between samples
// (untimed) or left them for the next get() (-latency-raw).
func (rep *Report) writeLatencyNote(w io.Writer) {
	samples, drained, raw := 0, 0, false
	for i := range rep.Runs {
		if l := rep.Runs[i].Latency; l != nil {
			samples += l.N
			drained += l.StaleDrained
			raw = raw || l.Raw
		}
	}
	switch {
	case samples == 0:
	case raw:
		fmt.Fprintln(w, "round trips: raw, each get() also reads the pub/sub replies earlier round trips left unread")
	default:
		fmt.Fprintf(w, "round trips: between samples, untimed, the client read %d pub/sub replies earlier get()s left unread (-latency-raw times them)\n", drained)
	}
}
