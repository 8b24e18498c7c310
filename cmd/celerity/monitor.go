package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/control"
	"github.com/celerity-go/celerity/events"
	"github.com/celerity-go/celerity/metrics"
	"github.com/celerity-go/celerity/transports"
)

// version is reported in worker events and the control "report" command.
const version = "celerity 0.1"

// monitoring is what operators' tools see of a worker: Celery events,
// the remote-control (pidbox) node, and Prometheus metrics.
type monitoring struct {
	s       settings
	tr      transports.Transport
	log     *slog.Logger
	clock   *events.Clock
	events  *events.Dispatcher
	metrics *metrics.Collector
	worker  *celerity.Worker
}

// newMonitoring prepares the observers; they must be in the worker's
// Config before it is built, so Stats reaches the worker through m.
func newMonitoring(s settings, tr transports.Transport, logger *slog.Logger) (*monitoring, []celerity.Observer) {
	m := &monitoring{s: s, tr: tr, log: logger, clock: &events.Clock{}}
	var obs []celerity.Observer
	stats := func() celerity.Stats {
		if m.worker == nil {
			return celerity.Stats{}
		}
		return m.worker.Stats()
	}
	if _, ok := tr.(transports.Broadcaster); ok && !s.WithoutHeartbeat {
		m.events = events.New(tr, events.Options{
			Hostname: expandHostname(s.Hostname), TaskEvents: s.TaskEvents, Stats: stats,
			Clock: m.clock, Version: version, Logger: logger,
		})
		obs = append(obs, m.events)
	}
	if s.MetricsAddr != "" {
		m.metrics = metrics.New("celery", stats)
		obs = append(obs, m.metrics)
	}
	return m, obs
}

// start runs the monitoring components for w; stop ends them after the
// worker has drained (so worker-offline is the last event).
func (m *monitoring) start(w *celerity.Worker) (stop func(), err error) {
	m.worker = w
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(what string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				m.log.Error(what+" stopped", "error", err)
			}
		}()
	}
	var srv *http.Server
	if m.metrics != nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(m.metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		ln, err := net.Listen("tcp", m.s.MetricsAddr)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("%w: metrics-addr: %v", errUsage, err)
		}
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		m.log.Info("Prometheus metrics on http://"+ln.Addr().String()+"/metrics", "addr", ln.Addr().String())
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	}
	if m.events != nil {
		run("events", m.events.Run)
	}
	if _, ok := m.tr.(transports.Broadcaster); ok && !m.s.WithoutControl {
		opts := control.Options{
			Namespace: m.s.ControlExchange, Accept: m.s.AcceptContent, Clock: m.clock,
			Conf: m.conf(), Broker: brokerInfo(m.s.BrokerURL), Logger: m.log, Version: version,
		}
		if m.events != nil {
			opts.Events = m.events
		}
		node := control.New(m.tr, w.Hostname(), w, opts)
		if !m.s.WithoutMingle {
			// Before consuming tasks, as Celery's mingle step: a task
			// revoked while this worker was down must not run here.
			if _, err := node.Mingle(ctx, control.MingleTimeout); err != nil {
				m.log.Warn("mingle failed", "error", err)
			}
		}
		run("remote control", node.Run)
	}
	return func() {
		cancel()
		if srv != nil {
			shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(shutCtx)
			done()
		}
		wg.Wait()
	}, nil
}

// conf is what `celery inspect conf` reports: our settings under
// Celery's names (never the broker password).
func (m *monitoring) conf() map[string]any {
	s := m.s
	return map[string]any{
		"broker_url":                 redactURL(s.BrokerURL),
		"result_backend":             redactURL(s.ResultBackend),
		"task_default_queue":         s.DefaultQueue,
		"worker_concurrency":         s.Concurrency,
		"worker_prefetch_multiplier": s.PrefetchMultiplier,
		"task_acks_late":             s.AcksLate,
		"task_track_started":         s.TrackStarted,
		"result_extended":            s.ResultExtended,
		"accept_content":             s.AcceptContent,
		"result_expires":             int64(s.ResultExpires / time.Second),
		"worker_send_task_events":    s.TaskEvents,
		"task_time_limit":            s.TimeLimit.Seconds(),
		"task_soft_time_limit":       s.SoftTimeLimit.Seconds(),
		"worker_direct":              s.WorkerDirect,
	}
}

// redactURL hides the password of a broker or backend URL.
func redactURL(raw string) string {
	parts := strings.Split(raw, ";")
	for i, p := range parts {
		if u, err := url.Parse(p); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "**")
			}
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ";")
}

// brokerInfo is kombu's Connection.info() shape for `inspect stats`.
func brokerInfo(raw string) map[string]any {
	first, _, _ := strings.Cut(raw, ";")
	u, err := url.Parse(first)
	if err != nil {
		return nil
	}
	info := map[string]any{"transport": u.Scheme, "hostname": u.Hostname(), "virtual_host": strings.TrimPrefix(u.Path, "/")}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		info["port"] = p
	}
	if u.User != nil {
		info["userid"] = u.User.Username()
	}
	switch u.Scheme {
	case "amqp", "amqps", "pyamqp":
		if info["virtual_host"] == "" {
			info["virtual_host"] = "/"
		}
	}
	return info
}
