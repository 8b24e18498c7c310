package main

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/timerslack"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "celery.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSettingsPrecedenceAndOldNames(t *testing.T) {
	cfg := writeFile(t, `
BROKER_URL: redis://from-yaml:6379/0
CELERY_RESULT_BACKEND: redis://from-yaml:6379/1
CELERYD_CONCURRENCY: 7
CELERY_ACKS_LATE: true
task_track_started: true
result_expires: 60
CELERY_QUEUES:
  - {name: for_task1, exchange: for_task1, routing_key: task_a}
  - {name: prio, queue_arguments: {x-max-priority: 10}}
CELERY_ROUTES: {app1.tasks1.deal1: {queue: for_task1}}
broker_transport_options: {visibility_timeout: 30, global_keyprefix: pfx_}
`)
	env := map[string]string{"CELERY_BROKER_URL": "redis://from-env:6379/0"}
	var stderr bytes.Buffer
	s, err := parseWorkerFlags([]string{"--config", cfg, "-Q", "a,b", "-c", "3", "-n", "w1@%h"}, func(k string) string { return env[k] }, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if s.BrokerURL != "redis://from-env:6379/0" {
		t.Errorf("broker %q: the environment should win over the file", s.BrokerURL)
	}
	if s.ResultBackend != "redis://from-yaml:6379/1" || s.Concurrency != 3 || !s.AcksLate || !s.TrackStarted ||
		s.ResultExpires != time.Minute || !reflect.DeepEqual(s.Queues, []string{"a", "b"}) || s.Hostname != "w1@%h" {
		t.Errorf("settings %+v", s)
	}
	want := []queueSetting{{Name: "for_task1", Exchange: "for_task1", RoutingKey: "task_a"}, {Name: "prio", MaxPriority: 10}}
	if !reflect.DeepEqual(s.TaskQueues, want) {
		t.Errorf("task_queues %+v, want %+v", s.TaskQueues, want)
	}
	opts, err := redisTransportOptions(s.TransportOptions)
	if err != nil || opts.VisibilityTimeout != 30*time.Second || opts.GlobalKeyprefix != "pfx_" {
		t.Errorf("transport options %+v, %v", opts, err)
	}
	cfgw := workerConfig(s, nil)
	if !strings.HasPrefix(cfgw.Hostname, "w1@") || strings.Contains(cfgw.Hostname, "%") {
		t.Errorf("hostname %q not expanded", cfgw.Hostname)
	}
}

func TestBadConfigIsOneLineExit2(t *testing.T) {
	tests := map[string][]string{
		"unknown setting": {"worker", "--config", writeFile(t, "no_such_setting: 1\n")},
		"bad yaml":        {"worker", "--config", writeFile(t, "broker_url: [\n")},
		"bad type":        {"worker", "--config", writeFile(t, "worker_concurrency: lots\n")},
		"bad level":       {"worker", "-l", "LOUD"},
		"bad broker":      {"worker", "-b", "kafka://x"},
		"unknown command": {"frobnicate"},
		"stray argument":  {"worker", "extra"},
		"autoscale text":  {"worker", "--autoscale", "ten"},
		"autoscale order": {"worker", "--autoscale", "2,5"},
		"autoscale zero":  {"worker", "--autoscale", "0"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if code != 2 || !strings.HasPrefix(lines[len(lines)-1], "celerity: ") {
				t.Errorf("exit %d, stderr %q", code, stderr.String())
			}
		})
	}
}

// --autoscale takes Celery's "max" or "max,min" (min 0 by default).
func TestParseAutoscale(t *testing.T) {
	for in, want := range map[string][2]int{"10": {10, 0}, "10,3": {10, 3}, " 4 , 4 ": {4, 4}, "7,": {7, 0}} {
		s, err := parseWorkerFlags([]string{"--autoscale", in}, func(string) string { return "" }, io.Discard)
		if err != nil || s.AutoscaleMax != want[0] || s.AutoscaleMin != want[1] {
			t.Errorf("--autoscale %q: max %d min %d, %v; want %v", in, s.AutoscaleMax, s.AutoscaleMin, err, want)
		}
	}
	for _, in := range []string{"", ",", "x", "3,y", "-1", "2,3", "3,-1"} {
		if hi, lo, err := parseAutoscale(in); err == nil {
			t.Errorf("%q accepted as max %d min %d", in, hi, lo)
		}
	}
}

func TestExpandHostname(t *testing.T) {
	host, _ := os.Hostname()
	short, _, _ := strings.Cut(host, ".")
	for in, want := range map[string]string{
		"":          "celery@" + host,
		"w@%h":      "w@" + host,
		"w@%n":      "w@" + short,
		"plainname": "celery@plainname",
	} {
		if got := expandHostname(in); got != want {
			t.Errorf("expandHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

// The demo runs end to end on the embedded Redis with the Go producer.
func TestDemoEmbeddedGoProducer(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"demo", "-embedded", "-producer", "go"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"go result tasks.add(6, 6) = 12 (state SUCCESS)",
		"go result app1.tasks1.deal1('hello from Go',) = 'hello from Go=======' (state SUCCESS)",
		"go result app1.tasks2.deal2: state PENDING",
		"'exc_type': 'ValueError'} (state FAILURE)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(stderr.String(), "app1.tasks2.deal2[") {
		t.Errorf("deal2 ran on a worker that does not consume for_task2:\n%s", stderr.String())
	}
}

// TestSetGCPercent: the worker raises the GC target only when GOGC is
// not set; an operator's GOGC stays in force.
func TestSetGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	setGCPercent(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != workerGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, workerGCPercent)
	}
	setGCPercent(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=50 set: GC percent changed to %d", got)
	}
}

// TestSetTimerSlackSettings: a malformed CELERITY_TIMER_SLACK is a usage
// error (exit status 2), and 0 leaves the process alone. (The re-exec
// itself is tested in internal/timerslack with a helper process; every
// compat test runs the worker binary through it.)
func TestSetTimerSlackSettings(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == timerslack.EnvVar {
				return v
			}
			return ""
		}
	}
	if err := setTimerSlack(env("soon")); !errors.Is(err, errUsage) {
		t.Errorf("CELERITY_TIMER_SLACK=soon: %v, want a usage error", err)
	}
	if err := setTimerSlack(env("0")); err != nil {
		t.Errorf("CELERITY_TIMER_SLACK=0: %v", err)
	}
}

// TestAsSeconds: durations from the config file. Negative or NaN seconds
// are refused (a negative visibility timeout would have the sweep restore
// every unacked message at once); values beyond a Duration are the
// longest one instead of wrapping negative.
func TestAsSeconds(t *testing.T) {
	for _, c := range []struct {
		in   any
		want time.Duration
		ok   bool
	}{
		{nil, 0, true},
		{30, 30 * time.Second, true},
		{1.5, 1500 * time.Millisecond, true},
		{"43200", 12 * time.Hour, true},
		{" 2.5 ", 2500 * time.Millisecond, true},
		{10_000_000_000, math.MaxInt64, true}, // ~317 years
		{1e300, math.MaxInt64, true},
		{"inf", math.MaxInt64, true},
		{-1, 0, false},
		{-0.5, 0, false},
		{"nan", 0, false},
		{"soon", 0, false},
		{[]any{1}, 0, false},
	} {
		got, err := asSeconds(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("asSeconds(%#v) = %v, %v; want %v (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
}
