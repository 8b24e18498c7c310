package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/celerity-go/celerity/internal/seconds"
)

// settings is the worker configuration in Celery's terms, merged from
// defaults, the YAML file, the environment and the command line (later
// wins).
type settings struct {
	BrokerURL          string
	ResultBackend      string
	Queues             []string
	TaskQueues         []queueSetting
	DefaultQueue       string
	Concurrency        int
	AutoscaleMax       int // --autoscale max,min (0: off)
	AutoscaleMin       int
	WorkerDirect       bool
	PrefetchMultiplier int
	AcksLate           bool
	TrackStarted       bool
	ResultExtended     bool
	AcceptContent      []string
	ResultExpires      time.Duration
	ResultPersistent   bool
	Hostname           string
	LogLevel           string
	TransportOptions   map[string]any
	ResultTransportOpt map[string]any

	TimeLimit                time.Duration
	SoftTimeLimit            time.Duration
	AcksOnFailureOrTimeout   bool
	RejectOnWorkerLost       bool
	StoreErrorsEvenIfIgnored bool
	Timezone                 string
	// RateLimits comes from task_annotations: task name (or "*") →
	// rate_limit.
	RateLimits map[string]string

	// Monitoring and routing.
	TaskEvents       bool              // worker_send_task_events (-E)
	WithoutHeartbeat bool              // --without-heartbeat: no worker events
	WithoutControl   bool              // --without-control: no pidbox node
	WithoutMingle    bool              // --without-mingle: no start-up sync of revoked ids
	MetricsAddr      string            // --metrics-addr: Prometheus /metrics
	Routes           map[string]string // task_routes: name or glob → queue
	ControlExchange  string            // control_exchange
}

// queueSetting is one entry of task_queues.
type queueSetting struct {
	Name         string
	Exchange     string
	ExchangeType string
	RoutingKey   string
	MaxPriority  int
	QueueType    string
}

func defaultSettings() settings {
	return settings{
		BrokerURL:          "amqp://guest:guest@localhost:5672//",
		DefaultQueue:       "celery",
		PrefetchMultiplier: 4,
		AcceptContent:      []string{"json"},
		ResultExpires:      24 * time.Hour,
		LogLevel:           "INFO",

		AcksOnFailureOrTimeout: true,
	}
}

// aliases maps every accepted spelling (new lowercase and old uppercase
// Celery names) to the canonical new name.
var aliases = map[string]string{
	"broker_url": "broker_url", "BROKER_URL": "broker_url", "CELERY_BROKER_URL": "broker_url",
	"result_backend": "result_backend", "CELERY_RESULT_BACKEND": "result_backend",
	"task_queues": "task_queues", "CELERY_QUEUES": "task_queues",
	"task_default_queue": "task_default_queue", "CELERY_DEFAULT_QUEUE": "task_default_queue",
	"worker_concurrency": "worker_concurrency", "CELERYD_CONCURRENCY": "worker_concurrency",
	"worker_prefetch_multiplier": "worker_prefetch_multiplier", "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
	"task_acks_late": "task_acks_late", "CELERY_ACKS_LATE": "task_acks_late",
	"task_track_started": "task_track_started", "CELERY_TRACK_STARTED": "task_track_started",
	"result_extended": "result_extended", "CELERY_RESULT_EXTENDED": "result_extended",
	"accept_content": "accept_content", "CELERY_ACCEPT_CONTENT": "accept_content",
	"result_expires": "result_expires", "CELERY_TASK_RESULT_EXPIRES": "result_expires",
	"broker_transport_options": "broker_transport_options", "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
	"result_backend_transport_options": "result_backend_transport_options", "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS": "result_backend_transport_options",
	"result_persistent": "result_persistent", "CELERY_RESULT_PERSISTENT": "result_persistent",
	"worker_hostname": "worker_hostname",
	"worker_direct":   "worker_direct", "CELERY_WORKER_DIRECT": "worker_direct",
	"worker_loglevel": "worker_loglevel",
	// Routing is the producers' business; accepted and ignored so a shared
	// config file loads.
	"task_time_limit": "task_time_limit", "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
	"task_soft_time_limit": "task_soft_time_limit", "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
	"task_acks_on_failure_or_timeout": "task_acks_on_failure_or_timeout", "CELERY_ACKS_ON_FAILURE_OR_TIMEOUT": "task_acks_on_failure_or_timeout",
	"task_reject_on_worker_lost": "task_reject_on_worker_lost", "CELERY_REJECT_ON_WORKER_LOST": "task_reject_on_worker_lost",
	"task_store_errors_even_if_ignored": "task_store_errors_even_if_ignored", "CELERY_STORE_ERRORS_EVEN_IF_IGNORED": "task_store_errors_even_if_ignored",
	"timezone": "timezone", "CELERY_TIMEZONE": "timezone",
	"task_annotations": "task_annotations", "CELERY_ANNOTATIONS": "task_annotations",
	"task_routes": "task_routes", "CELERY_ROUTES": "task_routes",
	"worker_send_task_events": "worker_send_task_events", "CELERY_SEND_EVENTS": "worker_send_task_events",
	"control_exchange": "control_exchange", "CELERY_CONTROL_EXCHANGE": "control_exchange",
	"enable_utc": "ignore", "CELERY_ENABLE_UTC": "ignore", "task_serializer": "ignore", "CELERY_TASK_SERIALIZER": "ignore",
	"result_serializer": "ignore", "CELERY_RESULT_SERIALIZER": "ignore",
}

// loadYAML merges a YAML file with Celery setting names into s.
func (s *settings) loadYAML(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for k, v := range raw {
		canon, ok := aliases[k]
		if !ok {
			return fmt.Errorf("%s: unknown setting %q", path, k)
		}
		if err := s.set(canon, v); err != nil {
			return fmt.Errorf("%s: %s: %w", path, k, err)
		}
	}
	return nil
}

// loadEnv applies the environment variables Celery reads.
func (s *settings) loadEnv(getenv func(string) string) error {
	for env, key := range map[string]string{"CELERY_BROKER_URL": "broker_url", "CELERY_RESULT_BACKEND": "result_backend"} {
		if v := getenv(env); v != "" {
			if err := s.set(key, v); err != nil {
				return fmt.Errorf("%s: %w", env, err)
			}
		}
	}
	return nil
}

func (s *settings) set(key string, v any) error {
	var err error
	switch key {
	case "ignore":
	case "task_routes":
		s.Routes, err = asRoutes(v)
	case "worker_send_task_events":
		s.TaskEvents, err = asBool(v)
	case "control_exchange":
		s.ControlExchange, err = asString(v)
	case "broker_url":
		s.BrokerURL, err = asString(v)
	case "result_backend":
		s.ResultBackend, err = asString(v)
	case "task_default_queue":
		s.DefaultQueue, err = asString(v)
	case "worker_hostname":
		s.Hostname, err = asString(v)
	case "worker_direct":
		s.WorkerDirect, err = asBool(v)
	case "worker_loglevel":
		s.LogLevel, err = asString(v)
	case "worker_concurrency":
		s.Concurrency, err = asInt(v)
	case "worker_prefetch_multiplier":
		s.PrefetchMultiplier, err = asInt(v)
	case "task_acks_late":
		s.AcksLate, err = asBool(v)
	case "task_track_started":
		s.TrackStarted, err = asBool(v)
	case "result_persistent":
		s.ResultPersistent, err = asBool(v)
	case "result_extended":
		s.ResultExtended, err = asBool(v)
	case "accept_content":
		s.AcceptContent, err = asStrings(v)
	case "result_expires":
		s.ResultExpires, err = asSeconds(v)
	case "broker_transport_options":
		s.TransportOptions, err = asMap(v)
	case "result_backend_transport_options":
		s.ResultTransportOpt, err = asMap(v)
	case "task_queues":
		s.TaskQueues, err = asQueues(v)
	case "task_time_limit":
		s.TimeLimit, err = asSeconds(v)
	case "task_soft_time_limit":
		s.SoftTimeLimit, err = asSeconds(v)
	case "task_acks_on_failure_or_timeout":
		s.AcksOnFailureOrTimeout, err = asBool(v)
	case "task_reject_on_worker_lost":
		s.RejectOnWorkerLost, err = asBool(v)
	case "task_store_errors_even_if_ignored":
		s.StoreErrorsEvenIfIgnored, err = asBool(v)
	case "timezone":
		if v == nil {
			s.Timezone = ""
			break
		}
		s.Timezone, err = asString(v)
		if err == nil {
			_, err = time.LoadLocation(s.Timezone)
		}
	case "task_annotations":
		s.RateLimits, err = asAnnotations(v)
	default:
		err = fmt.Errorf("unknown setting")
	}
	return err
}

func asString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %T", v)
	}
	return s, nil
}

func asInt(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case string:
		return strconv.Atoi(x)
	}
	return 0, fmt.Errorf("want an integer, got %T", v)
}

func asBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		return strconv.ParseBool(x)
	}
	return false, fmt.Errorf("want true or false, got %T", v)
}

// asSeconds reads a duration in seconds. A negative or NaN value is an
// error (a negative visibility timeout would restore every unacked
// message at once); one beyond a Duration's range (about 292 years) is
// the longest Duration rather than a conversion that wraps negative.
func asSeconds(v any) (time.Duration, error) {
	var f float64
	switch x := v.(type) {
	case nil:
		return 0, nil
	case int:
		f = float64(x)
	case float64:
		f = x
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
			return 0, err
		}
	default:
		return 0, fmt.Errorf("want seconds, got %T", v)
	}
	return seconds.NonNegative(f)
}

func asStrings(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return splitList(x), nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, err := asString(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a list of strings, got %T", v)
}

func asMap(v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a mapping, got %T", v)
	}
	return m, nil
}

// asQueues reads task_queues: a list of {name, exchange, exchange_type,
// routing_key, max_priority, queue_arguments}, or a mapping name → the rest.
func asQueues(v any) ([]queueSetting, error) {
	var entries []map[string]any
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("queue entry must be a mapping, got %T", e)
			}
			entries = append(entries, m)
		}
	case map[string]any:
		for name, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				if e != nil {
					return nil, fmt.Errorf("queue %q must be a mapping", name)
				}
				m = map[string]any{}
			}
			m["name"] = name
			entries = append(entries, m)
		}
	default:
		return nil, fmt.Errorf("want a list of queues, got %T", v)
	}
	var out []queueSetting
	for _, m := range entries {
		var q queueSetting
		for k, val := range m {
			var err error
			switch k {
			case "name":
				q.Name, err = asString(val)
			case "exchange":
				if em, ok := val.(map[string]any); ok {
					q.Exchange, err = asString(em["name"])
					if t, ok := em["type"]; ok && err == nil {
						q.ExchangeType, err = asString(t)
					}
				} else {
					q.Exchange, err = asString(val)
				}
			case "exchange_type":
				q.ExchangeType, err = asString(val)
			case "routing_key":
				q.RoutingKey, err = asString(val)
			case "max_priority":
				q.MaxPriority, err = asInt(val)
			case "queue_arguments":
				args, e := asMap(val)
				err = e
				if qt, ok := args["x-queue-type"].(string); ok {
					q.QueueType = qt
				}
				if mp, ok := args["x-max-priority"]; ok && err == nil {
					q.MaxPriority, err = asInt(mp)
				}
			default:
				err = fmt.Errorf("unknown queue field %q", k)
			}
			if err != nil {
				return nil, fmt.Errorf("queue %q: %w", q.Name, err)
			}
		}
		if q.Name == "" {
			return nil, fmt.Errorf("queue without a name")
		}
		out = append(out, q)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// asAnnotations reads task_annotations: a mapping task name (or "*" for
// every task) → {rate_limit: "10/s"}. Only rate_limit is supported.
func asAnnotations(v any) (map[string]string, error) {
	m, err := asMap(v)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for name, a := range m {
		am, err := asMap(a)
		if err != nil {
			return nil, fmt.Errorf("task %q: %w", name, err)
		}
		for k, val := range am {
			if k != "rate_limit" {
				return nil, fmt.Errorf("task %q: unsupported annotation %q (only rate_limit)", name, k)
			}
			switch x := val.(type) {
			case string:
				out[name] = x
			case int:
				out[name] = strconv.Itoa(x)
			case float64:
				out[name] = strconv.FormatFloat(x, 'g', -1, 64)
			case nil:
				out[name] = ""
			default:
				return nil, fmt.Errorf("task %q: rate_limit: want a string, got %T", name, val)
			}
		}
	}
	return out, nil
}

// asRoutes reads the mapping form of task_routes: task name (or glob) →
// {queue: name} or → "queue name". Router functions and lists of routers
// exist only in Python and are refused.
func asRoutes(v any) (map[string]string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a mapping of task name to {queue: ...}, got %T", v)
	}
	out := make(map[string]string, len(m))
	for name, r := range m {
		switch x := r.(type) {
		case string:
			out[name] = x
		case map[string]any:
			q, ok := x["queue"].(string)
			if !ok {
				return nil, fmt.Errorf("route for %q has no queue", name)
			}
			out[name] = q
		default:
			return nil, fmt.Errorf("route for %q: want {queue: ...}, got %T", name, r)
		}
	}
	return out, nil
}
