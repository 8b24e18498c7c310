package amqptransport

import (
	"fmt"
	"net/url"
	"strings"
)

// brokerURL is one entry of a Celery broker URL list, with the virtual host
// resolved the way kombu resolves it.
type brokerURL struct {
	// dial is the URL handed to amqp091 (scheme, credentials, host, port and
	// query; the path is replaced by the vhost in the dial config).
	dial string
	// vhost is the virtual host: the URL path without its first "/",
	// unescaped; "" (no path, or a bare "/") means "/".
	vhost string
	// redacted is the URL with the password masked, for log lines.
	redacted string
}

// parseBrokerURLs splits a Celery broker URL ("amqp://a;amqp://b", the
// failover form) into its entries and resolves each vhost like kombu's
// url_to_parts: "amqp://h//" is vhost "/", "amqp://h/x" is "x", "amqp://h"
// and "amqp://h/" are "/". The pyamqp:// scheme is accepted as amqp://.
func parseBrokerURLs(raw string) ([]brokerURL, error) {
	var out []brokerURL
	for _, part := range strings.Split(raw, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil {
			return nil, fmt.Errorf("amqp: bad broker url: %w", err)
		}
		switch u.Scheme {
		case "amqp", "amqps":
		case "pyamqp":
			u.Scheme = "amqp"
		default:
			return nil, fmt.Errorf("amqp: unsupported broker url scheme %q", u.Scheme)
		}
		vhost := strings.TrimPrefix(u.Path, "/")
		if vhost == "" {
			vhost = "/"
		}
		if u.Host == "" {
			u.Host = "localhost"
		}
		if u.User == nil {
			u.User = url.UserPassword("guest", "guest")
		}
		u.Path, u.RawPath = "", ""
		out = append(out, brokerURL{dial: u.String(), vhost: vhost, redacted: u.Redacted()})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("amqp: empty broker url")
	}
	return out, nil
}
