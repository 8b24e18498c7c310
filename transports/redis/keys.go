package redistransport

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// kombu's virtual channel bounds for message priorities.
const (
	minPriority = 0
	maxPriority = 9
)

// keyspace knows kombu's key naming for one set of transport options.
type keyspace struct {
	prefix string
	sep    string
	steps  []int
	// stepSuffix[i] is sep+steps[i] ("" for step 0).
	stepSuffix []string
	db         int
}

func newKeyspace(o Options, db int) *keyspace {
	ks := &keyspace{prefix: o.GlobalKeyprefix, sep: o.Sep, steps: o.PrioritySteps, db: db}
	for _, s := range ks.steps {
		if s == 0 {
			ks.stepSuffix = append(ks.stepSuffix, "")
		} else {
			ks.stepSuffix = append(ks.stepSuffix, o.Sep+strconv.Itoa(s))
		}
	}
	return ks
}

// step maps a priority to its bucket like kombu's Channel.priority:
// steps[bisect(steps, n) - 1] (a negative index wraps, as in Python).
func (ks *keyspace) step(n int) int {
	i := 0
	for i < len(ks.steps) && ks.steps[i] <= n {
		i++
	}
	i--
	if i < 0 {
		i += len(ks.steps)
	}
	return ks.steps[i]
}

// clampPriority bounds a priority to 0..9 like
// virtual.Channel._get_message_priority.
func clampPriority(p int) int {
	return min(max(p, minPriority), maxPriority)
}

// queueKey is kombu's _q_for_pri without the global prefix.
func (ks *keyspace) queueKey(queue string, priority int) string {
	s := ks.step(priority)
	if s == 0 {
		return queue
	}
	return queue + ks.sep + strconv.Itoa(s)
}

// key prefixes a key with global_keyprefix.
func (ks *keyspace) key(k string) string { return ks.prefix + k }

// bindingKey is the prefixed "_kombu.binding.<exchange>" set.
func (ks *keyspace) bindingKey(exchange string) string {
	return ks.prefix + "_kombu.binding." + exchange
}

// bindingMember is "<routing_key><sep><pattern><sep><queue>".
func (ks *keyspace) bindingMember(routingKey, pattern, queue string) string {
	return routingKey + ks.sep + pattern + ks.sep + queue
}

// fanoutChannel is kombu's _get_publish_topic plus the global prefix.
func (ks *keyspace) fanoutChannel(exchange, routingKey string) string {
	ch := ks.prefix + "/" + strconv.Itoa(ks.db) + "." + exchange
	if routingKey != "" {
		ch += "/" + routingKey
	}
	return ch
}

// binding is one parsed member of a _kombu.binding set.
type binding struct {
	routingKey, pattern, queue string
}

func (ks *keyspace) parseBinding(member string) (binding, bool) {
	parts := strings.Split(member, ks.sep)
	if len(parts) != 3 {
		return binding{}, false
	}
	return binding{parts[0], parts[1], parts[2]}, true
}

// topicPattern is kombu's TopicExchange.key_to_pattern: the regular
// expression stored as the binding pattern of topic bindings.
func topicPattern(routingKey string) string {
	var esc strings.Builder
	for _, r := range routingKey {
		switch {
		case r == '.' || r == '#' || r == '*' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r):
			esc.WriteRune(r)
		case r == 0:
			esc.WriteString(`\000`)
		default:
			esc.WriteByte('\\')
			esc.WriteRune(r)
		}
	}
	words := strings.Split(esc.String(), ".")
	for i, w := range words {
		switch w {
		case "*":
			words[i] = `.*?[^\.]`
		case "#":
			words[i] = `.*?`
		}
	}
	return "^" + strings.Join(words, `\.`) + "$"
}

var patternCache sync.Map // string -> *regexp.Regexp (nil when invalid)

// topicMatch mirrors TopicExchange._match: re.match(pattern, key).
func topicMatch(pattern, key string) bool {
	v, ok := patternCache.Load(pattern)
	if !ok {
		re, err := regexp.Compile(`^(?:` + pattern + `)`)
		if err != nil {
			re = nil
		}
		v, _ = patternCache.LoadOrStore(pattern, re)
	}
	re, _ := v.(*regexp.Regexp)
	return re != nil && re.MatchString(key)
}

// route selects the queues of table that receive routingKey on an
// exchange of the given type (kombu's ExchangeType.lookup), deduplicated.
func route(typ string, table []binding, routingKey string) []string {
	var out []string
	seen := map[string]bool{}
	for _, b := range table {
		var ok bool
		switch typ {
		case "topic":
			ok = topicMatch(b.pattern, routingKey)
		case "fanout":
			ok = true
		default:
			ok = b.routingKey == routingKey
		}
		if ok && !seen[b.queue] {
			seen[b.queue] = true
			out = append(out, b.queue)
		}
	}
	return out
}

// appendPyString appends s as Python's json.dumps writes it (ensure_ascii).
func appendPyString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"':
				dst = append(dst, '\\', '"')
			case c == '\\':
				dst = append(dst, '\\', '\\')
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\b':
				dst = append(dst, '\\', 'b')
			case c == '\f':
				dst = append(dst, '\\', 'f')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		u := func(v rune) {
			dst = append(dst, '\\', 'u', hex[v>>12&0xf], hex[v>>8&0xf], hex[v>>4&0xf], hex[v&0xf])
		}
		if r > 0xffff {
			r -= 0x10000
			u(0xd800 + (r>>10)&0x3ff)
			u(0xdc00 + r&0x3ff)
		} else {
			u(r)
		}
	}
	return append(dst, '"')
}

// unackedValue builds the "unacked" hash value kombu writes:
// json.dumps([envelope, exchange, routing_key]).
func unackedValue(dst, envelope []byte, exchange, routingKey string) []byte {
	dst = append(dst, '[')
	dst = append(dst, envelope...)
	dst = append(dst, ", "...)
	dst = appendPyString(dst, exchange)
	dst = append(dst, ", "...)
	dst = appendPyString(dst, routingKey)
	return append(dst, ']')
}

// parseUnackedValue splits an "unacked" hash value.
func parseUnackedValue(v []byte) (envelope []byte, exchange, routingKey string, err error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(v, &parts); err != nil {
		return nil, "", "", err
	}
	if len(parts) != 3 {
		return nil, "", "", errors.New("unacked entry is not [message, exchange, routing_key]")
	}
	// Python writes null when delivery_info lacked a value; treat as "".
	_ = json.Unmarshal(parts[1], &exchange)
	_ = json.Unmarshal(parts[2], &routingKey)
	return parts[0], exchange, routingKey, nil
}

// member is one key/value pair of a JSON object, in document order.
type member struct {
	key   string
	value json.RawMessage
}

func objectMembers(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		ms = append(ms, member{k, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return ms, nil
}

func appendObject(dst []byte, ms []member) []byte {
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendPyString(dst, m.key)
		dst = append(dst, ": "...)
		dst = append(dst, m.value...)
	}
	return append(dst, '}')
}

func lookup(ms []member, key string) int {
	for i := range ms {
		if ms[i].key == key {
			return i
		}
	}
	return -1
}

// setMember assigns key like a Python dict does: in place when present,
// appended otherwise.
func setMember(ms []member, key string, v json.RawMessage) []member {
	if i := lookup(ms, key); i >= 0 {
		ms[i].value = v
		return ms
	}
	return append(ms, member{key, v})
}

var jsonTrue = json.RawMessage("true")

// markRedelivered performs kombu's _do_restore_message edit:
// payload['headers']['redelivered'] = True, then
// payload['properties']['delivery_info']['redelivered'] = True, stopping
// at the first missing level. Other bytes are kept as they were (Python's
// separators are used for the objects it rewrites).
func markRedelivered(envelope []byte) ([]byte, error) {
	top, err := objectMembers(envelope)
	if err != nil {
		return nil, err
	}
	hi := lookup(top, "headers")
	if hi < 0 {
		return envelope, nil
	}
	headers, err := objectMembers(top[hi].value)
	if err != nil {
		return envelope, nil // null or not an object: leave unchanged
	}
	top[hi].value = appendObject(nil, setMember(headers, "redelivered", jsonTrue))
	if pi := lookup(top, "properties"); pi >= 0 {
		if props, err := objectMembers(top[pi].value); err == nil {
			if di := lookup(props, "delivery_info"); di >= 0 {
				if info, err := objectMembers(props[di].value); err == nil {
					props[di].value = appendObject(nil, setMember(info, "redelivered", jsonTrue))
					top[pi].value = appendObject(nil, props)
				}
			}
		}
	}
	return appendObject(make([]byte, 0, len(envelope)+48), top), nil
}

// envelopePriority reads properties.priority the way
// _get_message_priority does: int(value) clamped to 0..9, 0 on error.
func envelopePriority(envelope []byte) int {
	var doc struct {
		Properties struct {
			Priority json.RawMessage `json:"priority"`
		} `json:"properties"`
	}
	if json.Unmarshal(envelope, &doc) != nil {
		return 0
	}
	raw := doc.Properties.Priority
	var f float64
	var s string
	var b bool
	switch {
	case json.Unmarshal(raw, &f) == nil:
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0
		}
		return clampPriority(int(math.Max(math.Min(f, 1e9), -1e9)))
	case json.Unmarshal(raw, &s) == nil:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0
		}
		return clampPriority(n)
	case json.Unmarshal(raw, &b) == nil:
		if b {
			return 1
		}
		return 0
	}
	return 0
}

// newUUID4 returns a random (version 4) UUID string like Python's
// str(uuid.uuid4()).
func newUUID4() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[c>>4], hex[c&0xf]
		j += 2
	}
	return string(b[:])
}

// newToken returns 32 random hex digits, the shape of redis-py's lock
// token (uuid1().hex).
func newToken() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	const hex = "0123456789abcdef"
	var b [32]byte
	for i, c := range u {
		b[2*i], b[2*i+1] = hex[c>>4], hex[c&0xf]
	}
	return string(b[:])
}
