package loadtest

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestParseHostCPU(t *testing.T) {
	for _, c := range []struct {
		name         string
		in           string
		total, steal int64
		ok           bool
	}{
		{"kernel 6 with guest fields", "cpu  129035 0 38851 255887 2488 0 9403 16370 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n",
			129035 + 38851 + 255887 + 2488 + 9403 + 16370, 16370, true},
		{"no steal time", "cpu  10 0 5 85 0 0 0 0\n", 100, 0, true},
		{"too few fields", "cpu  10 0 5 85\n", 0, 0, false},
		{"per-CPU line first", "cpu0 10 0 5 85 0 0 0 0\n", 0, 0, false},
		{"not a number", "cpu  10 x 5 85 0 0 0 0\n", 0, 0, false},
		{"empty", "", 0, 0, false},
	} {
		h, ok := parseHostCPU([]byte(c.in))
		if ok != c.ok || h.Total != c.total || h.Steal != c.steal {
			t.Errorf("%s: parseHostCPU = %+v, %v; want total %d steal %d, %v", c.name, h, ok, c.total, c.steal, c.ok)
		}
	}
}

func TestStealPercent(t *testing.T) {
	a := HostCPU{Total: 1000, Steal: 10}
	if pct, ok := stealPercent(a, HostCPU{Total: 1200, Steal: 40}); !ok || pct != 15 {
		t.Errorf("stealPercent = %v, %v; want 15, true", pct, ok)
	}
	if _, ok := stealPercent(a, a); ok {
		t.Error("stealPercent over no time reported a value")
	}
	h, ok := readHostCPU()
	if !ok || h.Total <= 0 || h.Steal < 0 || h.Steal > h.Total {
		t.Errorf("readHostCPU = %+v, %v", h, ok)
	}
}

func TestParseInfoCPU(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:100.580372\r\nused_cpu_user:115.464851\r\nused_cpu_sys_children:0.000000\r\n" +
		"used_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:100.147544\r\nused_cpu_user_main_thread:115.291986\r\n"
	if got, ok := parseInfoCPU(info); !ok || got < 216.045 || got > 216.046 {
		t.Errorf("parseInfoCPU = %v, %v; want 216.045223", got, ok)
	}
	for _, bad := range []string{"", "# CPU\r\nused_cpu_sys:1.5\r\n", "used_cpu_sys:x\r\nused_cpu_user:1\r\n"} {
		if got, ok := parseInfoCPU(bad); ok {
			t.Errorf("parseInfoCPU(%q) = %v, true", bad, got)
		}
	}
}

// TestBrokerCPU reads the real Redis's CPU time twice around some work:
// the second reading is larger.
func TestBrokerCPU(t *testing.T) {
	client := redisOrSkip(t)
	ctx := context.Background()
	e := &env{broker: client}
	before, ok := e.brokerCPU(ctx)
	if !ok {
		t.Fatal("INFO cpu unreadable")
	}
	key := "loadtest_brokercpu_" + UniqueQueue()
	t.Cleanup(func() { client.Del(context.Background(), key) })
	pipe := client.Pipeline()
	for range 20000 {
		pipe.Incr(ctx, key)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	after, ok := e.brokerCPU(ctx)
	if !ok || after <= before {
		t.Errorf("broker CPU %v s before 20,000 INCRs, %v s after (ok %v)", before, after, ok)
	}
	if _, ok := (&env{}).brokerCPU(ctx); ok {
		t.Error("brokerCPU without a Redis broker reported a value")
	}
}

// TestWriteTableHostRows: the broker's CPU gets a go/python ratio; the
// host's steal is printed per worker with none.
func TestWriteTableHostRows(t *testing.T) {
	steal := func(v float64) *float64 { return &v }
	rep := &Report{Runs: []WorkerRun{
		{Worker: "go", Broker: "redis://h/0", Backend: "redis://h/0", N: 10, TasksPerSec: 20000,
			BrokerCPUSecondsPer1k: 0.030, HostStealPercent: steal(12.5)},
		{Worker: "python", Concurrency: 2, Broker: "redis://h/0", Backend: "redis://h/0", N: 10, TasksPerSec: 1000,
			BrokerCPUSecondsPer1k: 0.060, HostStealPercent: steal(2)},
	}}
	var buf bytes.Buffer
	rep.WriteTable(&buf)
	lines := map[string]string{}
	for _, l := range strings.Split(buf.String(), "\n") {
		for _, name := range []string{"broker CPU s per 1k tasks", "CPU steal during drain (%)"} {
			if strings.HasPrefix(strings.TrimSpace(l), name) {
				lines[name] = strings.Join(strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), name)), " ")
			}
		}
	}
	if got := lines["broker CPU s per 1k tasks"]; got != "0.030 0.060 0.50×" {
		t.Errorf("broker CPU row = %q, want %q\n%s", got, "0.030 0.060 0.50×", buf.String())
	}
	if got := lines["CPU steal during drain (%)"]; got != "12.5 2.0 -" {
		t.Errorf("steal row = %q, want %q\n%s", got, "12.5 2.0 -", buf.String())
	}
}

func TestLoopbackURL(t *testing.T) {
	for _, c := range []struct {
		url  string
		want bool
	}{
		{"amqp://guest:guest@127.0.0.1:5672//", true},
		{"amqp://guest:guest@localhost:5672//", true},
		{"amqp://[::1]:5672/", true},
		{"amqp://guest:guest@rabbit.example:5672//", false},
		{"amqp://10.0.0.7/", false},
		{"://bad", false},
	} {
		if got := loopbackURL(c.url); got != c.want {
			t.Errorf("loopbackURL(%q) = %v, want %v", c.url, got, c.want)
		}
	}
}

// TestLocalRabbitMQ finds the RabbitMQ server the tests use on this
// machine and reads its CPU time; a remote URL finds nothing.
func TestLocalRabbitMQ(t *testing.T) {
	const u = "amqp://guest:guest@127.0.0.1:5672//"
	conn, err := amqp.Dial(u)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rabbitmq: %v", err)
		}
		t.Skipf("rabbitmq not reachable: %v", err)
	}
	conn.Close()
	pid, ok := localRabbitMQ(u)
	if !ok {
		t.Skip("RabbitMQ answers on 127.0.0.1 but no local beam.smp booting rabbit is visible (a container?)")
	}
	cpu, ok := processCPU(pid)
	if !ok || cpu <= 0 {
		t.Errorf("RabbitMQ (pid %d) CPU = %v s, %v", pid, cpu, ok)
	}
	e := &env{rabbitPID: pid}
	if got, ok := e.brokerCPU(context.Background()); !ok || got < cpu {
		t.Errorf("brokerCPU = %v, %v; want at least %v", got, ok, cpu)
	}
	if _, ok := localRabbitMQ("amqp://guest:guest@rabbit.example:5672//"); ok {
		t.Error("a remote broker was matched to a local process")
	}
}
