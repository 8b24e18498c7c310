package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/resultstore"
	redisstore "github.com/celerity-go/celerity/resultstore/redis"
	"github.com/celerity-go/celerity/resultstore/rpc"
	"github.com/celerity-go/celerity/transports"
	amqptransport "github.com/celerity-go/celerity/transports/amqp"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

// buildWorker connects to the broker and result backend named by s.
func buildWorker(ctx context.Context, s settings, logger *slog.Logger) (*celerity.Worker, *monitoring, func(), error) {
	tr, err := openTransport(ctx, s, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	rb, err := openBackend(ctx, s, tr, logger)
	if err != nil {
		tr.Close()
		return nil, nil, nil, err
	}
	cfg := workerConfig(s, logger)
	if rt, ok := tr.(*redistransport.Transport); ok {
		// Refresh held ETA messages well within the visibility timeout.
		cfg.TouchInterval = min(time.Minute, max(rt.Options().VisibilityTimeout/4, 100*time.Millisecond))
	}
	mon, observers := newMonitoring(s, tr, logger)
	cfg.Observers = append(cfg.Observers, observers...)
	for _, q := range s.TaskQueues {
		d := transports.Queue{Name: q.Name, Exchange: q.Exchange, ExchangeType: q.ExchangeType,
			RoutingKey: q.RoutingKey, Durable: true, MaxPriority: q.MaxPriority}
		if d.Exchange == "" {
			d.Exchange = q.Name
		}
		if d.RoutingKey == "" {
			d.RoutingKey = q.Name
		}
		if d.ExchangeType == "" {
			d.ExchangeType = "direct"
		}
		if q.QueueType != "" {
			d.Arguments = map[string]any{"x-queue-type": q.QueueType}
		}
		cfg.Declare = append(cfg.Declare, d)
	}
	w, err := celerity.NewWorker(tr, rb, cfg)
	if err != nil {
		tr.Close()
		if rb != nil {
			rb.Close()
		}
		return nil, nil, nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	cleanup := func() {
		if rb != nil {
			rb.Close()
		}
		tr.Close()
	}
	return w, mon, cleanup, nil
}

func scheme(url string) string {
	s, _, ok := strings.Cut(url, "://")
	if !ok {
		return ""
	}
	return strings.ToLower(s)
}

func openTransport(ctx context.Context, s settings, logger *slog.Logger) (transports.Transport, error) {
	url := s.BrokerURL
	switch scheme(url) {
	case "redis", "rediss", "unix", "redis+socket":
		opts, err := redisTransportOptions(s.TransportOptions)
		if err != nil {
			return nil, fmt.Errorf("%w: broker_transport_options: %v", errUsage, err)
		}
		opts.Logger = logger
		return redistransport.New(ctx, url, opts)
	case "amqp", "amqps", "pyamqp", "librabbitmq":
		return amqptransport.New(ctx, url, amqptransport.Options{Logger: logger})
	case "":
		return nil, fmt.Errorf("%w: broker_url %q has no scheme", errUsage, url)
	}
	return nil, fmt.Errorf("%w: unsupported broker %q (want redis:// or amqp://)", errUsage, url)
}

func redisTransportOptions(m map[string]any) (redistransport.Options, error) {
	var o redistransport.Options
	for k, v := range m {
		var err error
		switch k {
		case "visibility_timeout":
			o.VisibilityTimeout, err = asSeconds(v)
		case "unacked_mutex_expire":
			o.UnackedMutexExpire, err = asSeconds(v)
		case "polling_interval", "brpop_timeout":
			o.PollTimeout, err = asSeconds(v)
		case "global_keyprefix":
			o.GlobalKeyprefix, err = asString(v)
		case "sep":
			o.Sep, err = asString(v)
		case "unacked_restore_limit":
			o.UnackedRestoreLimit, err = asInt(v)
		case "priority_steps":
			var xs []any
			xs, err = asList(v)
			for _, x := range xs {
				n, e := asInt(x)
				if e != nil {
					err = e
					break
				}
				o.PrioritySteps = append(o.PrioritySteps, n)
			}
		case "max_connections", "socket_timeout", "socket_connect_timeout", "socket_keepalive", "retry_on_timeout", "health_check_interval", "fanout_prefix", "fanout_patterns":
			// accepted for compatibility; go-redis manages its pool itself
		default:
			err = fmt.Errorf("unknown option %q", k)
		}
		if err != nil {
			return o, fmt.Errorf("%s: %w", k, err)
		}
	}
	return o, nil
}

func asList(v any) ([]any, error) {
	xs, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list, got %T", v)
	}
	return xs, nil
}

// openBackend opens the result backend. rpc:// replies through the broker
// connection, so it needs an AMQP broker.
func openBackend(ctx context.Context, s settings, tr transports.Transport, logger *slog.Logger) (resultstore.Backend, error) {
	url := s.ResultBackend
	if url == "rpc" || scheme(url) == "rpc" {
		at, ok := tr.(*amqptransport.Transport)
		if !ok {
			return nil, fmt.Errorf("%w: the rpc:// result backend needs an amqp:// broker", errUsage)
		}
		return rpc.New(at, rpc.Options{Persistent: s.ResultPersistent}), nil
	}
	switch scheme(url) {
	case "":
		if url == "" || url == "disabled" {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: result_backend %q has no scheme", errUsage, url)
	case "redis", "rediss", "unix":
		opts := redisstore.Options{ResultExpires: s.ResultExpires, Logger: logger}
		if s.ResultExpires == 0 {
			opts.ResultExpires = -1 // result_expires None/0: keep forever
		}
		if p, ok := s.ResultTransportOpt["global_keyprefix"].(string); ok {
			opts.KeyPrefix = p
		}
		return redisstore.New(ctx, url, opts)
	}
	return nil, fmt.Errorf("%w: unsupported result backend %q (want redis://)", errUsage, url)
}

// The Redis consumer refreshes held messages for the worker.
var _ celerity.DeliveryToucher = (*redistransport.Consumer)(nil)
