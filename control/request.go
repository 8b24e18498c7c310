package control

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/celerity-go/celerity/kombu"
)

// Request is one decoded remote control message (kombu pidbox body).
type Request struct {
	// Method is the command name, e.g. "ping".
	Method string
	// Arguments are the command's keyword arguments (never nil).
	Arguments map[string]any
	// Destination lists the node names the command is for; nil means all.
	Destination []string
	// Pattern and Matcher ("glob" or "pcre") select nodes by name when
	// Destination is empty.
	Pattern, Matcher string
	// Ticket identifies the call; replies carry it in their headers.
	Ticket string
	// ReplyTo is where the reply goes; nil for casts (no reply wanted).
	ReplyTo *ReplyTo
	// Clock is the sender's Lamport clock (header "clock"), 0 if absent.
	Clock int64

	// destSubstr: destination was a string, which kombu tests with
	// Python's substring "in".
	destSubstr bool
}

// ReplyTo is the reply address of a call.
type ReplyTo struct {
	Exchange   string
	RoutingKey string
}

// ErrBadRequest is wrapped by DecodeRequest errors about the body's shape.
var ErrBadRequest = errors.New("control: bad request")

func badf(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadRequest}, a...)...)
}

// DecodeRequest decodes a pidbox message body with reg (enforcing the
// accept list, as kombu's Consumer does) and checks its shape.
func DecodeRequest(m *kombu.Message, reg *kombu.Registry) (*Request, error) {
	v, err := reg.DecodeBody(m)
	if err != nil {
		return nil, err
	}
	body, ok := v.(map[string]any)
	if !ok {
		return nil, badf("body is %T, not a dict", v)
	}
	r := &Request{Arguments: map[string]any{}}
	if r.Method, ok = body["method"].(string); !ok || r.Method == "" {
		return nil, badf("missing method")
	}
	switch a := body["arguments"].(type) {
	case nil:
	case map[string]any:
		r.Arguments = a
	default:
		return nil, badf("arguments is %T, not a dict", a)
	}
	switch d := body["destination"].(type) {
	case nil:
	case string:
		// kombu tests "hostname in destination": on a string that is a
		// substring test, so a string destination still works.
		if d != "" {
			r.Destination, r.destSubstr = []string{d}, true
		}
	case []any:
		r.Destination = make([]string, 0, len(d))
		for _, e := range d {
			if s, ok := e.(string); ok {
				r.Destination = append(r.Destination, s)
			}
		}
		if len(d) > 0 && len(r.Destination) == 0 {
			r.Destination = []string{"\x00"} // non-empty, matches nobody
		}
	default:
		return nil, badf("destination is %T", d)
	}
	r.Pattern, _ = body["pattern"].(string)
	r.Matcher, _ = body["matcher"].(string)
	r.Ticket, _ = body["ticket"].(string)
	if rt, ok := body["reply_to"].(map[string]any); ok {
		ex, _ := rt["exchange"].(string)
		rk, _ := rt["routing_key"].(string)
		r.ReplyTo = &ReplyTo{Exchange: ex, RoutingKey: rk}
	}
	r.Clock = clockValue(m.Headers["clock"])
	return r, nil
}

// clockValue reads a Lamport clock value (an int, or a float from some
// serializers); 0 when absent or not a number.
func clockValue(v any) int64 {
	switch c := v.(type) {
	case int64:
		return c
	case float64:
		return int64(c)
	}
	return 0
}

// For reports whether a node named hostname must run r, with kombu's
// Node.handle_message rules: a non-empty destination must contain the
// name; otherwise pattern and matcher, when both given, must match;
// otherwise the command is a broadcast.
func (r *Request) For(hostname string) bool {
	if len(r.Destination) > 0 {
		if r.destSubstr {
			return strings.Contains(r.Destination[0], hostname)
		}
		for _, d := range r.Destination {
			if d == hostname {
				return true
			}
		}
		return false
	}
	if r.Pattern != "" && r.Matcher != "" {
		return match(hostname, r.Pattern, r.Matcher)
	}
	return true
}

// match is kombu.matcher.match: "glob" is fnmatch.fnmatch (case
// sensitive on POSIX), "pcre" is re.match (anchored at the start only).
// An unknown matcher or a bad pattern matches nothing.
func match(hostname, pattern, matcher string) bool {
	var expr string
	switch matcher {
	case "glob":
		expr = globToRegexp(pattern)
	case "pcre":
		expr = `^(?:` + pattern + `)`
	default:
		return false
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return false
	}
	return re.MatchString(hostname)
}

// globToRegexp translates an fnmatch pattern: * any run (including
// '/'), ? one character, [seq] and [!seq] character sets.
func globToRegexp(p string) string {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			j := i + 1
			if j < len(p) && p[j] == '!' {
				j++
			}
			if j < len(p) && p[j] == ']' {
				j++
			}
			for j < len(p) && p[j] != ']' {
				j++
			}
			if j >= len(p) {
				b.WriteString(`\[`)
				continue
			}
			set := p[i+1 : j]
			i = j
			neg := strings.HasPrefix(set, "!")
			if neg {
				set = set[1:]
			}
			set = strings.ReplaceAll(set, `\`, `\\`)
			b.WriteByte('[')
			if neg {
				b.WriteByte('^')
			}
			b.WriteString(set)
			b.WriteByte(']')
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`)\z`)
	return b.String()
}
