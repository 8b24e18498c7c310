package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/handlers"
	"github.com/celerity-go/celerity/internal/celerylog"
	"github.com/celerity-go/celerity/protocolv2"
	redisstore "github.com/celerity-go/celerity/resultstore/redis"
	"github.com/celerity-go/celerity/transports"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

//go:embed demo_producer.py
var demoProducer string

const pythonBin = "/usr/bin/python3"

// demoCmd runs the seed tutorial end to end: a Go worker consuming the
// default queue and for_task1, a producer (real Python Celery when it is
// installed, else Go) sending tasks.add(6, 6) and the routed deal1/deal2,
// and the results printed as the producer reads them.
func demoCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("celerity demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("redis", "127.0.0.1:6379", "Redis to use (an embedded one starts when nothing answers)")
	db := fs.Int("db", 15, "Redis database for the demo's queues and results")
	producer := fs.String("producer", "auto", "auto (Python Celery when installed), python or go")
	embedded := fs.Bool("embedded", false, "always use the embedded Redis")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *producer != "auto" && *producer != "python" && *producer != "go" {
		return fmt.Errorf("%w: -producer must be auto, python or go", errUsage)
	}
	if c, err := net.DialTimeout("tcp", *addr, 500*time.Millisecond); err == nil && !*embedded {
		c.Close()
		fmt.Fprintf(stdout, "demo: using the Redis at %s, database %d\n", *addr, *db)
	} else {
		mr, err := miniredis.Run()
		if err != nil {
			return fmt.Errorf("demo: no Redis at %s and the embedded one failed: %w", *addr, err)
		}
		defer mr.Close()
		*addr = mr.Addr()
		fmt.Fprintf(stdout, "demo: started an embedded Redis (miniredis) at %s\n", *addr)
	}
	broker := fmt.Sprintf("redis://%s/%d", *addr, *db)
	backend := fmt.Sprintf("redis://%s/%d", *addr, *db)
	queue := "celerity_demo"
	logger := slog.New(celerylog.New(stderr, slog.LevelInfo))

	ctx := context.Background()
	tr, err := redistransport.New(ctx, broker, redistransport.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer tr.Close()
	rb, err := redisstore.New(ctx, backend, redisstore.Options{ResultExpires: time.Hour, Logger: logger})
	if err != nil {
		return err
	}
	defer rb.Close()
	defer cleanupDemo(tr, queue)

	consumed := []transports.Queue{
		{Name: queue, Exchange: queue, ExchangeType: "direct", RoutingKey: queue, Durable: true},
		{Name: "for_task1", Exchange: "for_task1", ExchangeType: "direct", RoutingKey: "task_a", Durable: true},
	}
	w, err := celerity.NewWorker(tr, rb, celerity.Config{
		Hostname: expandHostname("demo@%h"),
		Queues:   []string{queue, "for_task1"},
		Declare:  consumed,
		Logger:   logger,
	})
	if err != nil {
		return err
	}
	if err := handlers.Register(w, logger); err != nil {
		return err
	}
	// Every queue is bound before the producer starts (the worker declares
	// its own again when Run starts, which may be after the first publish:
	// a message to an exchange with no binding yet would be dropped).
	// for_task2 is declared, as the producer would, but not consumed.
	all := append([]transports.Queue{{Name: "for_task2", Exchange: "for_task2", ExchangeType: "direct", RoutingKey: "task_b", Durable: true}}, consumed...)
	if err := tr.Declare(ctx, all...); err != nil {
		return err
	}
	fetchCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	var runErr error
	go func() { defer wg.Done(); runErr = w.Run(fetchCtx, ctx) }()
	defer func() { stop(); wg.Wait() }()
	fmt.Fprintf(stdout, "demo: Go worker %s consuming %s and for_task1 (not for_task2)\n", w.Hostname(), queue)

	usePython := *producer == "python"
	if *producer == "auto" {
		usePython = exec.Command(pythonBin, "-c", "import celery, redis").Run() == nil
	}
	if usePython {
		fmt.Fprintln(stdout, "demo: producer is real Python Celery ("+pythonBin+")")
		cmd := exec.Command(pythonBin, "-c", demoProducer, broker, backend, queue)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("demo: python producer: %w", err)
		}
	} else {
		fmt.Fprintln(stdout, "demo: the producer is Go (protocolv2.Encode), publishing what Python Celery would")
		if err := goProducer(ctx, tr, rb, queue, stdout); err != nil {
			return err
		}
	}
	stop()
	wg.Wait()
	return runErr
}

// goProducer publishes the demo's calls the way Python Celery would and
// polls their results.
func goProducer(ctx context.Context, tr transports.Transport, rb *redisstore.Backend, queue string, stdout io.Writer) error {
	type demoCall struct {
		name, exchange, key string
		args                []any
	}
	calls := []demoCall{
		{"tasks.add", "", queue, []any{int64(6), int64(6)}},
		{"app1.tasks1.deal1", "for_task1", "task_a", []any{"hello from Go"}},
		{"app1.tasks2.deal2", "for_task2", "task_b", []any{"nobody consumes for_task2"}},
		{"tasks.fail", "", queue, []any{"a Go task raising ValueError"}},
	}
	ids := make([]string, len(calls))
	for i, c := range calls {
		id := protocolv2.NewID()
		ids[i] = id
		m, err := protocolv2.Encode(&protocolv2.Task{ID: id, Name: c.name, Args: c.args, RootID: id, UTC: true},
			protocolv2.EncodeOptions{Exchange: c.exchange, RoutingKey: c.key})
		if err != nil {
			return err
		}
		if err := tr.Publish(ctx, c.exchange, c.key, m); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "go sent   %s%s -> id %s\n", c.name, protocolv2.ArgsRepr(c.args), id)
	}
	for i, c := range calls {
		if c.name == "app1.tasks2.deal2" {
			fmt.Fprintf(stdout, "go result %s: state PENDING (for_task2 is not consumed by this worker)\n", c.name)
			continue
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			doc, err := rb.Get(ctx, ids[i])
			if err != nil {
				return err
			}
			if doc != nil && doc["status"] != "STARTED" {
				fmt.Fprintf(stdout, "go result %s%s = %s (state %v)\n", c.name, protocolv2.ArgsRepr(c.args), protocolv2.PyRepr(doc["result"]), doc["status"])
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("demo: no result for %s[%s]", c.name, ids[i])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// cleanupDemo removes the demo's queues and bindings.
func cleanupDemo(tr *redistransport.Transport, queue string) {
	ctx := context.Background()
	c := tr.Client()
	for _, q := range []string{queue, "for_task1", "for_task2"} {
		keys := []string{q, "_kombu.binding." + q}
		for _, p := range []string{"3", "6", "9"} {
			keys = append(keys, q+"\x06\x16"+p)
		}
		c.Del(ctx, keys...)
	}
}
