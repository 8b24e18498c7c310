// Package redisstore is Celery's Redis result backend (celery/backends/redis.py):
// task meta documents under celery-task-meta-<id>, written with SETEX and
// PUBLISHed on the key-named channel so a waiting AsyncResult.get() wakes,
// plus the chord part-return protocol on celery-taskset-meta-<gid>.j/.t/.s.
package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/resultstore"
)

// Celery's key prefixes (BaseKeyValueStoreBackend).
const (
	TaskKeyPrefix  = "celery-task-meta-"
	GroupKeyPrefix = "celery-taskset-meta-"
)

// DefaultResultExpires is Celery's result_expires default (one day).
const DefaultResultExpires = 24 * time.Hour

// Options configure a Backend. The zero value is Celery's defaults.
type Options struct {
	// ResultExpires is result_expires: the TTL of every stored document.
	// Zero means DefaultResultExpires; a negative value means no expiry
	// (plain SET), like result_expires=None in Celery.
	ResultExpires time.Duration
	// KeyPrefix is result_backend_transport_options["global_keyprefix"]
	// (Celery ≥ 5.3). It is prepended to the task and group key prefixes,
	// with an "_" added unless it already ends in one of ":_-.".
	KeyPrefix string
	// ChordUnordered is result_backend_transport_options
	// ["result_chord_ordered"] = False: chord parts go to a LIST instead of
	// a sorted set.
	ChordUnordered bool
	// Style selects the date_done and JSON flavour (default: Celery 5.2
	// form, readable by every Celery version).
	Style resultstore.Style
	// Logger receives debug lines (skipped writes); nil discards them.
	Logger *slog.Logger
}

// Backend is a Celery-compatible Redis result backend. It is safe for
// concurrent use.
type Backend struct {
	client     *redis.Client
	expires    int64 // seconds; 0 = no expiry
	expiresArg any   // expires, boxed once for the script calls
	taskPrefix string
	groupPref  string
	style      resultstore.Style
	ordered    bool
	log        *slog.Logger

	// pipelineMin is the batch size from which Store checks and writes
	// with two pipelined round trips instead of the script (storeBatched).
	pipelineMin int

	mu        sync.Mutex
	storeSHA  string
	chordSHA  string
	bufs      sync.Pool
	ownClient bool
}

var _ resultstore.Backend = (*Backend)(nil)

// New connects to the Redis result backend at url (redis://[:password@]host:port/db,
// rediss://, unix://; query options as go-redis ParseURL understands them)
// and loads the Lua scripts.
func New(ctx context.Context, url string, opts Options) (*Backend, error) {
	ropts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	if !strings.Contains(url, "protocol=") {
		// RESP2, as redis-py speaks it: go-redis then skips its RESP3
		// push notification checks, which cost a socket peek per reply.
		ropts.Protocol = 2
	}
	b, err := NewWithClient(ctx, redis.NewClient(ropts), opts)
	if err != nil {
		return nil, err
	}
	b.ownClient = true
	return b, nil
}

// NewWithClient uses an existing go-redis client; Close then leaves the
// client open.
func NewWithClient(ctx context.Context, client *redis.Client, opts Options) (*Backend, error) {
	b := &Backend{
		client:     client,
		taskPrefix: prefixed(opts.KeyPrefix, TaskKeyPrefix),
		groupPref:  prefixed(opts.KeyPrefix, GroupKeyPrefix),
		style:      opts.Style,
		ordered:    !opts.ChordUnordered,
		log:        opts.Logger,

		pipelineMin: pipelineStoreMin,
	}
	switch {
	case opts.ResultExpires == 0:
		b.expires = int64(DefaultResultExpires / time.Second)
	case opts.ResultExpires < 0:
		b.expires = 0
	default:
		b.expires = int64((opts.ResultExpires + time.Second - 1) / time.Second)
	}
	b.expiresArg = strconv.FormatInt(b.expires, 10)
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if err := b.loadScripts(ctx); err != nil {
		if b.ownClient {
			client.Close()
		}
		return nil, err
	}
	return b, nil
}

// prefixed applies Celery's global_keyprefix rule (base.py:
// _add_global_keyprefix).
func prefixed(global, prefix string) string {
	if global == "" {
		return prefix
	}
	if !strings.ContainsRune(":_-.", rune(global[len(global)-1])) {
		global += "_"
	}
	return global + prefix
}

// TaskKey returns the key (and PUBLISH channel) of taskID's meta document.
func (b *Backend) TaskKey(taskID string) string { return b.taskPrefix + taskID }

// GroupKey returns the key of group gid's saved GroupResult; chord keys
// append ".j", ".t" and ".s".
func (b *Backend) GroupKey(gid string) string { return b.groupPref + gid }

// Client returns the underlying go-redis client.
func (b *Backend) Client() *redis.Client { return b.client }

// Close closes the connection pool if New created it.
func (b *Backend) Close() error {
	if b.ownClient {
		return b.client.Close()
	}
	return nil
}

// storeScript writes a batch of meta documents in order, each one unless
// a SUCCESS is stored under its key: GET-check, SETEX (or SET), PUBLISH on
// the key channel. One script call per batch instead of one per document
// saves Redis the per-call overhead and the client one reply per result.
//
// KEYS = task keys; ARGV[1] = expiry seconds (0: SET); ARGV[1+i] = the
// document for KEYS[i]. Returns how many documents were written.
//
// Documents Celery writes start with {"status": "<STATE>", so the state is
// read from that prefix; anything else is decoded with cjson/cmsgpack.
const storeScript = `
local ttl = tonumber(ARGV[1])
local written = 0
for i = 1, #KEYS do
  local key, doc = KEYS[i], ARGV[i + 1]
  local cur = redis.call('GET', key)
  local st
  if cur then
    if string.sub(cur, 1, 12) == '{"status": "' then
      st = string.match(cur, '^([^"]*)"', 13)
    else
      local ok, d = pcall(cjson.decode, cur)
      if not ok then ok, d = pcall(cmsgpack.unpack, cur) end
      if ok and type(d) == 'table' then st = d['status'] end
    end
  end
  if st ~= 'SUCCESS' then
    if ttl > 0 then
      redis.call('SETEX', key, ttl, doc)
    else
      redis.call('SET', key, doc)
    end
    redis.call('PUBLISH', key, doc)
    written = written + 1
  end
end
return written
`

// pipelineStoreMin is the smallest batch Store writes with storeBatched.
// Smaller batches, a lone result above all (a worker answering one task at
// a time, where the result's latency is what counts), take the script's
// single round trip; batches this size come from a worker under load,
// where Redis's time per result matters more than a round trip.
const pipelineStoreMin = 4

// storeChunk bounds the documents written by one script call, so one call
// never blocks Redis for long.
const storeChunk = 128

// chordScript records one chord part (RedisBackend.on_chord_part_return's
// pipeline) and, when it completes the chord, reads everything the caller
// needs to fire the body in the same atomic step.
//
// The part whose record completes the chord leaves its task id in a
// marker key. A part recorded again (the Redis client repeats a call
// whose reply a broken connection lost; a redelivered task) finds its
// member already in the sorted set: it fires only if the marker names it
// (the first reply was lost, or it crashed before publishing the body),
// never when another part completed the chord. Celery fires on every
// count that equals the size, so a part repeated while the chord's keys
// still exist fired the body twice. In list mode a repeat pushes a
// duplicate, so the count exceeds the size; the marker decides the same
// way.
//
// KEYS: .j, .t, .s, taskset key, marker. ARGV: member, score ("+inf" or
// index), expiry seconds (0: none), "1" for a sorted set / "0" for a
// list, task id.
// Returns {count, t, s, saved group or false, {members...} or false}.
const chordScript = `
local count, added
if ARGV[4] == '1' then
  added = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  count = redis.call('ZCOUNT', KEYS[1], '-inf', '+inf')
else
  count = redis.call('RPUSH', KEYS[1], ARGV[1])
  added = 1
end
local t = redis.call('GET', KEYS[2])
local s = redis.call('GET', KEYS[3])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
end
if not s then return {count, t, false, false, false} end
local size, diff = tonumber(s), tonumber(t or '0')
if not size or not diff or count < size + diff then
  return {count, t, s, false, false}
end
if count == size + diff and added == 1 then
  if ttl <= 0 then ttl = 86400 end
  redis.call('SET', KEYS[5], ARGV[5], 'EX', ttl)
elseif redis.call('GET', KEYS[5]) ~= ARGV[5] then
  return {count, t, s, false, false}
end
local saved = redis.call('GET', KEYS[4])
local members
if ARGV[4] == '1' then
  members = redis.call('ZRANGE', KEYS[1], 0, -1)
else
  members = redis.call('LRANGE', KEYS[1], 0, size + diff - 1)
end
return {count, t, s, saved, members}
`

func (b *Backend) loadScripts(ctx context.Context) error {
	store, err := b.client.ScriptLoad(ctx, storeScript).Result()
	if err != nil {
		return fmt.Errorf("redisstore: load store script: %w", err)
	}
	chord, err := b.client.ScriptLoad(ctx, chordScript).Result()
	if err != nil {
		return fmt.Errorf("redisstore: load chord script: %w", err)
	}
	b.mu.Lock()
	b.storeSHA, b.chordSHA = store, chord
	b.mu.Unlock()
	return nil
}

func (b *Backend) shas() (store, chord string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.storeSHA, b.chordSHA
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

type batchBuf struct {
	data []byte
	ends []int
	keys []string
	args []any // scratch for storeBatched's command arguments
}

// Encode appends the meta document for m in the backend's style.
func (b *Backend) Encode(dst []byte, m *resultstore.Meta) ([]byte, error) {
	return resultstore.AppendMeta(dst, m, b.style)
}

// Store writes every meta, in order: a document is skipped when the
// stored document is a SUCCESS, otherwise it is SETEX'd with
// result_expires and PUBLISHed on the key channel. A batch of fewer than
// pipelineStoreMin documents goes in one round trip, each check-and-write
// one atomic script; a larger one with one pipelined read and one
// pipelined write (storeBatched).
func (b *Backend) Store(ctx context.Context, metas ...*resultstore.Meta) error {
	_, err := b.store(ctx, metas)
	return err
}

// StoreCount is Store that also reports how many documents were written
// (the rest were skipped because a SUCCESS was already stored).
func (b *Backend) StoreCount(ctx context.Context, metas ...*resultstore.Meta) (int, error) {
	return b.store(ctx, metas)
}

func (b *Backend) store(ctx context.Context, metas []*resultstore.Meta) (int, error) {
	if len(metas) == 0 {
		return 0, nil
	}
	buf, _ := b.bufs.Get().(*batchBuf)
	if buf == nil {
		buf = &batchBuf{}
	}
	defer func() {
		buf.data, buf.ends = buf.data[:0], buf.ends[:0]
		clear(buf.keys)
		buf.keys = buf.keys[:0]
		clear(buf.args[:cap(buf.args)])
		buf.args = buf.args[:0]
		if cap(buf.data) <= 1<<20 {
			b.bufs.Put(buf)
		}
	}()
	for _, m := range metas {
		var err error
		if buf.data, err = resultstore.AppendMeta(buf.data, m, b.style); err != nil {
			return 0, fmt.Errorf("redisstore: task %s: %w", m.TaskID, err)
		}
		buf.ends = append(buf.ends, len(buf.data))
		buf.keys = append(buf.keys, b.taskPrefix+m.TaskID)
	}
	var n int
	var err error
	if len(metas) >= b.pipelineMin {
		if n, err = b.storeBatched(ctx, buf); err != nil {
			err = fmt.Errorf("redisstore: store: %w", err)
		}
	} else {
		n, err = b.storeScripted(ctx, buf)
	}
	if err != nil {
		return n, err
	}
	if skipped := len(metas) - n; skipped > 0 {
		b.log.Debug("result not overwritten: SUCCESS already stored", "skipped", skipped)
	}
	return n, nil
}

// storeScripted writes a batch with the store script, loading the
// scripts again once when Redis has lost them (NOSCRIPT).
func (b *Backend) storeScripted(ctx context.Context, buf *batchBuf) (int, error) {
	for attempt := 0; ; attempt++ {
		sha, _ := b.shas()
		n, err := b.runStore(ctx, sha, buf)
		if isNoScript(err) && attempt == 0 {
			if err := b.loadScripts(ctx); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return n, fmt.Errorf("redisstore: store: %w", err)
		}
		return n, nil
	}
}

// storeBatched writes a batch the way Celery's worker writes one result
// (GET the current document, skip when it is a SUCCESS, else SETEX and
// PUBLISH), with one pipelined MGET for the whole batch and one pipeline
// for the writes. For Redis that is half the work of the script per
// document (the script's Lua copies and hashes every key, document and
// reply it touches), at the price of a second round trip and of the
// check not being atomic with the write, which Celery's check is not
// either. A document for a task that an earlier document of the same
// batch stored as SUCCESS is skipped, as the script would.
func (b *Backend) storeBatched(ctx context.Context, buf *batchBuf) (int, error) {
	n := len(buf.keys)
	// The commands' arguments are carved from one slice, and each key and
	// document is boxed once for all the commands that name it: the
	// Redis client takes arguments as []any, and boxing a string or a
	// slice allocates.
	nchunks := (n + storeChunk - 1) / storeChunk
	// boxed: key and document of each result; then the MGETs (nchunks +
	// n) and at most SETEX (4) and PUBLISH (3) per result.
	buf.args = slices.Grow(buf.args[:0], 2*n+nchunks+n+7*n)
	boxed := buf.args[:0]
	for i, key := range buf.keys {
		start := 0
		if i > 0 {
			start = buf.ends[i-1]
		}
		boxed = append(boxed, key, buf.data[start:buf.ends[i]:buf.ends[i]])
	}
	args := boxed[len(boxed):]
	pipe := b.client.Pipeline()
	gets := make([]*redis.SliceCmd, 0, nchunks)
	for from := 0; from < n; from += storeChunk {
		to := min(from+storeChunk, n)
		at := len(args)
		args = append(args, "mget")
		for i := from; i < to; i++ {
			args = append(args, boxed[2*i])
		}
		cmd := redis.NewSliceCmd(ctx, args[at:len(args):len(args)]...)
		_ = pipe.Process(ctx, cmd)
		gets = append(gets, cmd)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	var done map[string]bool // keys holding a SUCCESS, when any
	for _, g := range gets {
		for i, v := range g.Val() {
			if s, ok := v.(string); ok && storedSuccess(s) {
				if done == nil {
					done = map[string]bool{}
				}
				done[g.Args()[1+i].(string)] = true
			}
		}
	}
	pipe = b.client.Pipeline()
	written := 0
	for i, key := range buf.keys {
		if done[key] {
			continue
		}
		k, doc := boxed[2*i], boxed[2*i+1]
		at := len(args)
		if b.expires > 0 {
			args = append(args, "setex", k, b.expiresArg, doc)
		} else {
			args = append(args, "set", k, doc)
		}
		_ = pipe.Process(ctx, redis.NewStatusCmd(ctx, args[at:len(args):len(args)]...))
		at = len(args)
		args = append(args, "publish", k, doc)
		_ = pipe.Process(ctx, redis.NewIntCmd(ctx, args[at:len(args):len(args)]...))
		written++
		// Documents written here start with their status (AppendMeta).
		if bytes.HasPrefix(doc.([]byte), successPrefix) {
			if done == nil {
				done = map[string]bool{}
			}
			done[key] = true
		}
	}
	if written == 0 {
		return 0, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	return written, nil
}

var successPrefix = []byte(`{"status": "SUCCESS"`)

// storedSuccess reports whether a stored result document has state
// SUCCESS: Celery's JSON (read from its {"status": "..." prefix when it
// has one), JSON in another layout, or msgpack.
func storedSuccess(doc string) bool {
	const prefix = `{"status": "`
	if rest, ok := strings.CutPrefix(doc, prefix); ok {
		if st, _, ok := strings.Cut(rest, `"`); ok {
			return st == resultstore.Success
		}
	}
	v, err := kombu.UnmarshalJSON([]byte(doc))
	if err != nil {
		v, err = storedDocs.Decode(kombu.ContentTypeMsgpack, "binary", []byte(doc))
		if err != nil {
			return false
		}
	}
	m, ok := v.(map[string]any)
	return ok && m["status"] == resultstore.Success
}

// storedDocs decodes stored documents in the serializers Celery writes
// results in that the store script's check reads too.
var storedDocs = func() *kombu.Registry {
	r, err := kombu.NewRegistry([]string{"json", "msgpack"})
	if err != nil {
		panic(err)
	}
	return r
}()

func (b *Backend) runStore(ctx context.Context, sha string, buf *batchBuf) (int, error) {
	args := func(from, to int) []any {
		a := make([]any, 0, 1+to-from)
		a = append(a, b.expiresArg)
		start := 0
		if from > 0 {
			start = buf.ends[from-1]
		}
		for i := from; i < to; i++ {
			end := buf.ends[i]
			a = append(a, buf.data[start:end:end])
			start = end
		}
		return a
	}
	n := len(buf.keys)
	if n <= storeChunk {
		return b.client.EvalSha(ctx, sha, buf.keys, args(0, n)...).Int()
	}
	pipe := b.client.Pipeline()
	cmds := make([]*redis.Cmd, 0, (n+storeChunk-1)/storeChunk)
	for from := 0; from < n; from += storeChunk {
		to := min(from+storeChunk, n)
		cmds = append(cmds, pipe.EvalSha(ctx, sha, buf.keys[from:to:to], args(from, to)...))
	}
	_, err := pipe.Exec(ctx)
	written := 0
	var firstErr error
	for _, c := range cmds {
		w, cerr := c.Int()
		if cerr != nil {
			if firstErr == nil {
				firstErr = cerr
			}
			continue
		}
		written += w
	}
	if firstErr != nil {
		return written, firstErr
	}
	return written, err
}

// Get returns the stored meta document of taskID decoded to plain values,
// or nil when there is none (PENDING).
func (b *Backend) Get(ctx context.Context, taskID string) (map[string]any, error) {
	if taskID == "" {
		return nil, resultstore.ErrNoTaskID
	}
	data, err := b.client.Get(ctx, b.taskPrefix+taskID).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: get %s: %w", taskID, err)
	}
	return resultstore.DecodeMeta(data)
}

// ChordPart, ChordMember and ChordStatus are the backend-neutral chord
// types of package resultstore.
type (
	ChordPart   = resultstore.ChordPart
	ChordMember = resultstore.ChordMember
	ChordStatus = resultstore.ChordStatus
)

// ChordPartReturn records a finished chord header task exactly like
// Celery's RedisBackend.on_chord_part_return: ZADD <gid>.j with score
// group_index (+inf when nil) and member [1, "<tid>", "<STATE>", <result>],
// ZCOUNT, GET <gid>.t and <gid>.s, EXPIRE the three keys with
// result_expires. When the count reaches .s + .t, the parts (and a saved
// GroupResult, if any) are read in the same atomic script and returned with
// Ready set. The keys are left in place so a crash before the body is
// published can be recovered by redelivery; call ChordComplete afterwards.
// A part recorded again is Ready only if it was the one that completed the
// chord (see chordScript), so a repeated call never fires the body twice.
func (b *Backend) ChordPartReturn(ctx context.Context, p ChordPart) (*ChordStatus, error) {
	if p.GroupID == "" || p.TaskID == "" {
		return nil, errors.New("redisstore: chord part needs a group id and a task id")
	}
	mode := b.style.JSON
	member := make([]byte, 0, 64)
	member = append(member, "[1, "...)
	member = appendJSONString(member, p.TaskID)
	member = append(member, ", "...)
	member = appendJSONString(member, p.State)
	member = append(member, ", "...)
	member, err := resultstore.AppendResult(member, p.Result, mode)
	if err != nil {
		return nil, fmt.Errorf("redisstore: chord part %s: %w", p.TaskID, err)
	}
	member = append(member, ']')
	score := "+inf"
	if p.GroupIndex != nil {
		score = strconv.Itoa(*p.GroupIndex)
	}
	ordered := "0"
	if b.ordered {
		ordered = "1"
	}
	gk := b.GroupKey(p.GroupID)
	keys := []string{gk + ".j", gk + ".t", gk + ".s", gk, gk + chordFiredSuffix}

	var res []any
	for attempt := 0; ; attempt++ {
		_, sha := b.shas()
		res, err = b.client.EvalSha(ctx, sha, keys, member, score, b.expires, ordered, p.TaskID).Slice()
		if isNoScript(err) && attempt == 0 {
			if err := b.loadScripts(ctx); err != nil {
				return nil, err
			}
			continue
		}
		break
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: chord part %s: %w", p.TaskID, err)
	}
	return parseChordReply(res)
}

func parseChordReply(res []any) (*ChordStatus, error) {
	if len(res) != 5 {
		return nil, fmt.Errorf("redisstore: chord script returned %d values", len(res))
	}
	st := &ChordStatus{}
	st.Count, _ = res[0].(int64)
	var diff int64
	if t, ok := res[1].(string); ok {
		v, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redisstore: chord counter .t = %q: %w", t, err)
		}
		diff = v
	}
	if s, ok := res[2].(string); ok {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redisstore: chord size .s = %q: %w", s, err)
		}
		st.Size, st.SizeKnown = v+diff, true
	}
	raw, ok := res[4].([]any)
	if !ok {
		return st, nil
	}
	st.Ready = true
	if saved, ok := res[3].(string); ok {
		doc, err := resultstore.DecodeMeta([]byte(saved))
		if err != nil {
			return nil, fmt.Errorf("redisstore: saved group: %w", err)
		}
		st.SavedGroup = doc
	}
	st.Members = make([]ChordMember, 0, len(raw))
	for _, r := range raw {
		s, _ := r.(string)
		m, err := DecodeChordMember([]byte(s))
		if err != nil {
			return nil, err
		}
		st.Members = append(st.Members, m)
	}
	return st, nil
}

// DecodeChordMember decodes one <gid>.j member, [1, tid, state, result].
func DecodeChordMember(data []byte) (ChordMember, error) {
	v, err := unmarshalJSON(data)
	if err != nil {
		return ChordMember{}, fmt.Errorf("redisstore: chord member: %w", err)
	}
	l, ok := v.([]any)
	if !ok || len(l) != 4 {
		return ChordMember{}, fmt.Errorf("redisstore: chord member is not a 4-element list: %.100s", data)
	}
	var m ChordMember
	if m.TaskID, ok = l[1].(string); !ok {
		return ChordMember{}, fmt.Errorf("redisstore: chord member task id is %T", l[1])
	}
	if m.State, ok = l[2].(string); !ok {
		return ChordMember{}, fmt.Errorf("redisstore: chord member state is %T", l[2])
	}
	m.Result = l[3]
	switch m.State {
	case resultstore.Failure, resultstore.Retry, resultstore.Revoked:
		if e, ok := resultstore.ExceptionFromValue(l[3]); ok {
			m.Result = e
		}
	}
	return m, nil
}

// chordFiredSuffix names the key (after the taskset key) holding the id
// of the part that completed a chord; Celery has no key of this name.
const chordFiredSuffix = ".celerity_fired"

// ChordComplete deletes the chord keys <gid>.j, .t and .s, as Celery does
// once the body was published (or its failure stored), and the marker of
// the part that completed it.
func (b *Backend) ChordComplete(ctx context.Context, groupID string) error {
	gk := b.GroupKey(groupID)
	if err := b.client.Del(ctx, gk+".j", gk+".t", gk+".s", gk+chordFiredSuffix).Err(); err != nil {
		return fmt.Errorf("redisstore: chord complete %s: %w", groupID, err)
	}
	return nil
}

// SetChordSize stores the chord size under <gid>.s (SETEX + PUBLISH, like
// Celery's set_chord_size). A client must do this before publishing the
// last header task, or the chord never fires.
func (b *Backend) SetChordSize(ctx context.Context, groupID string, size int) error {
	key := b.GroupKey(groupID) + ".s"
	val := strconv.Itoa(size)
	pipe := b.client.TxPipeline()
	if b.expires > 0 {
		pipe.SetEx(ctx, key, val, time.Duration(b.expires)*time.Second)
	} else {
		pipe.Set(ctx, key, val, 0)
	}
	pipe.Publish(ctx, key, val)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redisstore: set chord size %s: %w", groupID, err)
	}
	return nil
}
