package redistransport

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of kombu's Redis transport options.
const (
	DefaultVisibilityTimeout  = time.Hour
	DefaultUnackedMutexExpire = 300 * time.Second
	DefaultSep                = "\x06\x16"
	DefaultPollTimeout        = time.Second
	// DefaultRestoreInterval approximates kombu's cadence: restore_visible
	// is called every 10 s but acts only on every 10th call.
	DefaultRestoreInterval = 100 * time.Second
)

// DefaultPrioritySteps are kombu's priority_steps.
var DefaultPrioritySteps = []int{0, 3, 6, 9}

// Options are the kombu Redis transport options (broker_transport_options)
// that matter for sharing a broker with Python workers. Every party on a
// database must use the same values for GlobalKeyprefix, Sep,
// PrioritySteps, VisibilityTimeout and the unacked key names. The zero
// value means kombu's defaults.
type Options struct {
	// GlobalKeyprefix (global_keyprefix) is prepended verbatim to every
	// key and PUBLISH channel. Default "".
	GlobalKeyprefix string
	// VisibilityTimeout (visibility_timeout) is how long a delivered,
	// unacknowledged message may stay in "unacked" before any kombu
	// process re-queues it. Default 3600 s.
	VisibilityTimeout time.Duration
	// UnackedMutexExpire (unacked_mutex_expire) is the lifetime of the
	// lock taken by the visibility sweep. Default 300 s.
	UnackedMutexExpire time.Duration
	// UnackedRestoreLimit (unacked_restore_limit) bounds how many entries
	// one sweep restores; 0 means no limit (kombu's None).
	UnackedRestoreLimit int
	// UnackedKey, UnackedIndexKey and UnackedMutexKey (unacked_key,
	// unacked_index_key, unacked_mutex_key) default to "unacked",
	// "unacked_index" and "unacked_mutex".
	UnackedKey      string
	UnackedIndexKey string
	UnackedMutexKey string
	// PrioritySteps (priority_steps) are the priority buckets, ascending.
	// Default [0, 3, 6, 9].
	PrioritySteps []int
	// Sep (sep) separates the queue name from the priority step in list
	// keys and the fields of binding members. Default "\x06\x16".
	Sep string
	// PollTimeout (brpop_timeout / polling_interval) is the BRPOP timeout.
	// Default 1 s.
	PollTimeout time.Duration
	// RestoreInterval is how often a consumer runs the visibility sweep
	// (kombu 5.2–5.6: about every 100 s; kombu main calls it
	// unacked_restore_interval). Default 100 s; negative disables the
	// periodic sweep (RestoreVisible still works on demand).
	RestoreInterval time.Duration
	// TLSConfig overrides the TLS settings derived from a rediss:// URL.
	TLSConfig *tls.Config
	// ClientName is sent with CLIENT SETNAME (client_name).
	ClientName string
	// Logger receives the transport's own log lines (restores, failed
	// sweeps, undecodable messages). Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.VisibilityTimeout == 0 {
		o.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if o.UnackedMutexExpire <= 0 {
		o.UnackedMutexExpire = DefaultUnackedMutexExpire
	}
	if o.UnackedKey == "" {
		o.UnackedKey = "unacked"
	}
	if o.UnackedIndexKey == "" {
		o.UnackedIndexKey = "unacked_index"
	}
	if o.UnackedMutexKey == "" {
		o.UnackedMutexKey = "unacked_mutex"
	}
	if len(o.PrioritySteps) == 0 {
		o.PrioritySteps = DefaultPrioritySteps
	}
	if o.Sep == "" {
		o.Sep = DefaultSep
	}
	if o.PollTimeout <= 0 {
		o.PollTimeout = DefaultPollTimeout
	}
	if o.RestoreInterval == 0 {
		o.RestoreInterval = DefaultRestoreInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// ParseURL turns a kombu/Celery Redis broker URL into go-redis options.
// Accepted forms:
//
//	redis://[[user]:password@]host[:port][/db]
//	rediss://[[user]:password@]host[:port][/db][?ssl_cert_reqs=CERT_NONE]
//	redis+socket:///path/to/redis.sock[?virtual_host=db]   (also socket://)
//	unix:///path/to/redis.sock[?db=db]
//
// As in kombu the database comes from the path (default 0) and user and
// password are URL-unescaped.
func ParseURL(rawURL string) (*redis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redistransport: bad broker URL: %w", err)
	}
	// RESP2, as redis-py speaks it: go-redis then skips its RESP3 push
	// notification checks, which cost a socket peek on every reply.
	opt := &redis.Options{Protocol: 2}
	if u.User != nil {
		opt.Username = u.User.Username()
		if p, ok := u.User.Password(); ok {
			opt.Password = p
		}
	}
	q := u.Query()
	dbText := ""
	switch u.Scheme {
	case "redis", "rediss":
		host := u.Hostname()
		if host == "" {
			host = "127.0.0.1"
		}
		port := u.Port()
		if port == "" {
			port = "6379"
		}
		opt.Network = "tcp"
		opt.Addr = host + ":" + port
		dbText = strings.Trim(u.Path, "/")
		if u.Scheme == "rediss" {
			opt.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
			switch strings.ToUpper(q.Get("ssl_cert_reqs")) {
			case "CERT_NONE", "NONE":
				opt.TLSConfig.InsecureSkipVerify = true
			}
		}
	case "redis+socket", "socket", "unix":
		path := u.Path
		if u.Host != "" { // socket://relative/path
			path = u.Host + path
		}
		if path == "" {
			return nil, fmt.Errorf("redistransport: %q: missing socket path", rawURL)
		}
		opt.Network = "unix"
		opt.Addr = path
		dbText = q.Get("virtual_host")
		if dbText == "" {
			dbText = q.Get("db")
		}
	default:
		return nil, fmt.Errorf("redistransport: unsupported URL scheme %q", u.Scheme)
	}
	if dbText != "" {
		db, err := strconv.Atoi(dbText)
		if err != nil || db < 0 {
			return nil, fmt.Errorf("redistransport: database is an int between 0 and limit - 1, not %q", dbText)
		}
		opt.DB = db
	}
	return opt, nil
}
