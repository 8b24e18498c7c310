package redisstore

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/internal/cmdlog"
	"github.com/celerity-go/celerity/resultstore"
	"github.com/celerity-go/celerity/resultstore/resultstoretest"
)

// testURL is the Redis the integration tests use (DB 0 by default; every
// key is unique to the test and removed afterwards).
func testURL() string {
	if u := os.Getenv("CELERITY_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// rawClient connects to url, skipping the test when Redis is unreachable
// (failing instead when CI=true).
func rawClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis at %s not reachable: %v", url, err)
		}
		t.Skipf("redis at %s not reachable: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9]+`)

// testPrefix returns a global_keyprefix unique to t, ending in ":".
func testPrefix(t testing.TB) string {
	return "rstest-" + unsafeChars.ReplaceAllString(t.Name(), "-") + "-" + randHex(4) + ":"
}

// deleteMatching removes every key matching pattern.
func deleteMatching(c *redis.Client, pattern string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, pattern, 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		c.Del(ctx, keys...)
	}
}

// newTestBackend returns a backend on a fresh unique key prefix (unless
// opts sets one) whose keys are deleted when the test ends.
func newTestBackend(t testing.TB, opts Options) (*Backend, *redis.Client) {
	t.Helper()
	raw := rawClient(t, testURL())
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = testPrefix(t)
	}
	b, err := New(context.Background(), testURL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	prefix := prefixed(opts.KeyPrefix, "")
	t.Cleanup(func() {
		b.Close()
		deleteMatching(raw, redisGlobEscape(prefix)+"*")
	})
	return b, raw
}

func redisGlobEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`, `\`, `\\`)
	return r.Replace(s)
}

func TestConformance(t *testing.T) {
	resultstoretest.Run(t, resultstoretest.Config{
		NewBackend: func(t *testing.T) resultstore.Backend {
			b, _ := newTestBackend(t, Options{})
			return b
		},
		// Read the key directly rather than through Backend.Get.
		Read: func(t *testing.T, rb resultstore.Backend, taskID string) map[string]any {
			b := rb.(*Backend)
			data, err := b.Client().Get(context.Background(), b.TaskKey(taskID)).Bytes()
			if err == redis.Nil {
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			doc, err := resultstore.DecodeMeta(data)
			if err != nil {
				t.Fatal(err)
			}
			return doc
		},
	})
}

func TestGetMatchesRaw(t *testing.T) {
	b, raw := newTestBackend(t, Options{})
	ctx := context.Background()
	id := resultstoretest.NewTaskID()
	if doc, err := b.Get(ctx, id); err != nil || doc != nil {
		t.Fatalf("Get of a missing id = %v, %v; want nil, nil", doc, err)
	}
	m := &resultstore.Meta{TaskID: id, Status: resultstore.Success, Result: "v", DateDone: time.Now()}
	if err := b.Store(ctx, m); err != nil {
		t.Fatal(err)
	}
	want, err := resultstore.AppendMeta(nil, m, resultstore.Style{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := raw.Get(ctx, b.TaskKey(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if stored != string(want) {
		t.Errorf("stored\n%s\nwant\n%s", stored, want)
	}
	doc, err := b.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if doc["result"] != "v" || doc["status"] != "SUCCESS" || doc["task_id"] != id {
		t.Errorf("Get = %v", doc)
	}
	if _, err := b.Get(ctx, ""); err == nil {
		t.Error("Get(\"\") succeeded")
	}
}

func TestExpiry(t *testing.T) {
	cases := []struct {
		name    string
		expires time.Duration
		wantTTL int64 // seconds; -1 = persistent
	}{
		{"default one day", 0, 86400},
		{"custom", 90 * time.Second, 90},
		{"rounds up", 1500 * time.Millisecond, 2},
		{"no expiry", -1, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bothStorePaths(t, func(t *testing.T, pipelineMin int) {
				testExpiry(t, c.expires, c.wantTTL, pipelineMin)
			})
		})
	}
}

func testExpiry(t *testing.T, expires time.Duration, wantTTL int64, pipelineMin int) {
	b, raw := newPathBackend(t, Options{ResultExpires: expires}, pipelineMin)
	ctx := context.Background()
	id := resultstoretest.NewTaskID()
	if err := b.Store(ctx, &resultstore.Meta{TaskID: id, Status: resultstore.Success, DateDone: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ttl, err := raw.Do(ctx, "TTL", b.TaskKey(id)).Int64()
	if err != nil {
		t.Fatal(err)
	}
	if wantTTL < 0 {
		if ttl != -1 {
			t.Errorf("TTL = %d, want -1 (no expiry)", ttl)
		}
		return
	}
	if ttl > wantTTL || ttl < wantTTL-2 {
		t.Errorf("TTL = %d, want %d", ttl, wantTTL)
	}
}

// bothStorePaths runs test once with every batch written by the store
// script and once with every batch written by storeBatched.
func bothStorePaths(t *testing.T, test func(t *testing.T, pipelineMin int)) {
	t.Run("script", func(t *testing.T) { test(t, math.MaxInt) })
	t.Run("pipelined", func(t *testing.T) { test(t, 1) })
}

// newPathBackend is newTestBackend writing batches of pipelineMin or more
// with storeBatched.
func newPathBackend(t *testing.T, opts Options, pipelineMin int) (*Backend, *redis.Client) {
	t.Helper()
	b, raw := newTestBackend(t, opts)
	b.pipelineMin = pipelineMin
	return b, raw
}

// subscribe subscribes to channel and waits for Redis to confirm.
func subscribe(t *testing.T, raw *redis.Client, channel string) *redis.PubSub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps := raw.Subscribe(ctx, channel)
	if _, err := ps.Receive(ctx); err != nil { // the subscription confirmation
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	return ps
}

func receive(t *testing.T, ps *redis.PubSub) *redis.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatalf("no message: %v", err)
	}
	return msg
}

func TestPublishOnKeyChannel(t *testing.T) { bothStorePaths(t, testPublishOnKeyChannel) }

func testPublishOnKeyChannel(t *testing.T, pipelineMin int) {
	b, raw := newPathBackend(t, Options{}, pipelineMin)
	ctx := context.Background()
	ids := []string{resultstoretest.NewTaskID(), resultstoretest.NewTaskID()}
	subs := make([]*redis.PubSub, len(ids))
	for i, id := range ids {
		subs[i] = subscribe(t, raw, b.TaskKey(id))
	}
	metas := []*resultstore.Meta{
		{TaskID: ids[0], Status: resultstore.Started, Result: resultstore.StartedInfo{PID: 1, Hostname: "h"}},
		{TaskID: ids[1], Status: resultstore.Success, Result: int64(9), DateDone: time.Now()},
		{TaskID: ids[0], Status: resultstore.Success, Result: int64(8), DateDone: time.Now()},
	}
	if err := b.Store(ctx, metas...); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		var wantMsgs []*resultstore.Meta
		for _, m := range metas {
			if m.TaskID == id {
				wantMsgs = append(wantMsgs, m)
			}
		}
		for _, m := range wantMsgs {
			msg := receive(t, subs[i])
			want, _ := resultstore.AppendMeta(nil, m, resultstore.Style{})
			if msg.Channel != b.TaskKey(id) {
				t.Errorf("channel %q, want %q", msg.Channel, b.TaskKey(id))
			}
			if msg.Payload != string(want) {
				t.Errorf("payload\n%s\nwant\n%s", msg.Payload, want)
			}
		}
		// The published document is the stored one.
		stored, err := raw.Get(ctx, b.TaskKey(id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		last, _ := resultstore.AppendMeta(nil, wantMsgs[len(wantMsgs)-1], resultstore.Style{})
		if stored != string(last) {
			t.Errorf("stored %s, want %s", stored, last)
		}
	}
}

func TestSkippedWriteIsNotPublished(t *testing.T) { bothStorePaths(t, testSkippedWriteIsNotPublished) }

func testSkippedWriteIsNotPublished(t *testing.T, pipelineMin int) {
	b, raw := newPathBackend(t, Options{}, pipelineMin)
	ctx := context.Background()
	id := resultstoretest.NewTaskID()
	if err := b.Store(ctx, &resultstore.Meta{TaskID: id, Status: resultstore.Success, Result: "ok", DateDone: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ps := subscribe(t, raw, b.TaskKey(id))
	n, err := b.StoreCount(ctx,
		&resultstore.Meta{TaskID: id, Status: resultstore.Failure, DateDone: time.Now(),
			Result: &resultstore.ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"late"}}},
		&resultstore.Meta{TaskID: id, Status: resultstore.Started, Result: resultstore.StartedInfo{PID: 2, Hostname: "h"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("StoreCount wrote %d documents over a SUCCESS, want 0", n)
	}
	// Messages on one channel arrive in order: the sentinel must be first.
	if err := raw.Publish(ctx, b.TaskKey(id), "sentinel").Err(); err != nil {
		t.Fatal(err)
	}
	if msg := receive(t, ps); msg.Payload != "sentinel" {
		t.Errorf("skipped write was published: %s", msg.Payload)
	}
	doc, err := b.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if doc["status"] != "SUCCESS" || doc["result"] != "ok" {
		t.Errorf("stored doc = %v", doc)
	}
}

// A SUCCESS written by Python (or stored in another serializer form) is
// recognised too, not only documents that start with {"status": ...
func TestSuccessDetectionForeignDocuments(t *testing.T) {
	bothStorePaths(t, testSuccessDetectionForeignDocuments)
}

func testSuccessDetectionForeignDocuments(t *testing.T, pipelineMin int) {
	b, raw := newPathBackend(t, Options{}, pipelineMin)
	ctx := context.Background()
	cases := []struct {
		name, doc string
		written   int
	}{
		{"python key order", `{"status": "SUCCESS", "result": 1, "task_id": "x"}`, 0},
		{"other key order", `{"result": 1, "status": "SUCCESS", "task_id": "x"}`, 0},
		{"compact separators", `{"status":"SUCCESS","result":1}`, 0},
		{"started", `{"status": "STARTED", "result": null}`, 1},
		{"failure reordered", `{"result": null, "status": "FAILURE"}`, 1},
		{"garbage", `not json`, 1},
		// msgpack {"status": "SUCCESS"}
		{"msgpack success", "\x81\xa6status\xa7SUCCESS", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := resultstoretest.NewTaskID()
			if err := raw.Set(ctx, b.TaskKey(id), c.doc, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			n, err := b.StoreCount(ctx, &resultstore.Meta{TaskID: id, Status: resultstore.Failure, DateDone: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if n != c.written {
				t.Errorf("written = %d, want %d", n, c.written)
			}
			got, _ := raw.Get(ctx, b.TaskKey(id)).Result()
			if (got == c.doc) != (c.written == 0) {
				t.Errorf("stored value %q (written=%d)", got, c.written)
			}
		})
	}
}

func TestKeyPrefixRule(t *testing.T) {
	cases := []struct{ global, want string }{
		{"", "celery-task-meta-"},
		{"pfx", "pfx_celery-task-meta-"},
		{"pfx_", "pfx_celery-task-meta-"},
		{"pfx:", "pfx:celery-task-meta-"},
		{"pfx-", "pfx-celery-task-meta-"},
		{"pfx.", "pfx.celery-task-meta-"},
		{"a/", "a/_celery-task-meta-"},
	}
	for _, c := range cases {
		if got := prefixed(c.global, TaskKeyPrefix); got != c.want {
			t.Errorf("prefixed(%q) = %q, want %q", c.global, got, c.want)
		}
	}
	if got := prefixed("pfx", GroupKeyPrefix); got != "pfx_celery-taskset-meta-" {
		t.Errorf("group prefix = %q", got)
	}
}

func TestKeyPrefixIntegration(t *testing.T) {
	global := "rstest" + randHex(4) // no separator: "_" is added
	b, raw := newTestBackend(t, Options{KeyPrefix: global})
	ctx := context.Background()
	id := resultstoretest.NewTaskID()
	key := global + "_celery-task-meta-" + id
	if b.TaskKey(id) != key {
		t.Fatalf("TaskKey = %q, want %q", b.TaskKey(id), key)
	}
	ps := subscribe(t, raw, key)
	if err := b.Store(ctx, &resultstore.Meta{TaskID: id, Status: resultstore.Success, Result: int64(1), DateDone: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if n, _ := raw.Exists(ctx, key).Result(); n != 1 {
		t.Errorf("key %q not written", key)
	}
	if n, _ := raw.Exists(ctx, "celery-task-meta-"+id).Result(); n != 0 {
		t.Errorf("unprefixed key written")
	}
	if msg := receive(t, ps); msg.Channel != key {
		t.Errorf("published on %q, want %q", msg.Channel, key)
	}
	if b.GroupKey("g") != global+"_celery-taskset-meta-g" {
		t.Errorf("GroupKey = %q", b.GroupKey("g"))
	}
}

// A flushed script cache (Redis restart, SCRIPT FLUSH) is recovered from.
// Rather than flushing the shared server's cache, the test gives the
// backend SHAs Redis does not know.
func TestNoScriptRecovery(t *testing.T) {
	b, _ := newTestBackend(t, Options{})
	ctx := context.Background()
	b.mu.Lock()
	b.storeSHA = strings.Repeat("0", 40)
	b.chordSHA = strings.Repeat("0", 40)
	b.mu.Unlock()
	id := resultstoretest.NewTaskID()
	if err := b.Store(ctx,
		&resultstore.Meta{TaskID: id, Status: resultstore.Started},
		&resultstore.Meta{TaskID: id, Status: resultstore.Success, Result: int64(3), DateDone: time.Now()},
	); err != nil {
		t.Fatal(err)
	}
	if doc, err := b.Get(ctx, id); err != nil || doc["result"] != int64(3) {
		t.Fatalf("Get = %v, %v", doc, err)
	}
	st, err := b.ChordPartReturn(ctx, ChordPart{GroupID: resultstoretest.NewTaskID(), TaskID: id, State: "SUCCESS", Result: int64(1)})
	if err != nil || st.Count != 1 {
		t.Fatalf("ChordPartReturn = %+v, %v", st, err)
	}
}

// chordCapture is one ZADD from redis-5.2-chord-monitor.txt.
type chordCapture struct {
	score  string
	member string
}

var monitorArg = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

func unquoteMonitor(s string) string {
	// redis-cli MONITOR escapes " and \ with a backslash (and bytes as \xNN,
	// which this capture does not contain).
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func loadChordCapture(t *testing.T) (gid string, size string, parts []chordCapture, commands []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "captures", "redis-5.2-chord-monitor.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var args []string
		for _, m := range monitorArg.FindAllStringSubmatch(line, -1) {
			args = append(args, unquoteMonitor(m[1]))
		}
		cmd := args[0]
		key := strings.TrimPrefix(args[1], "celery-taskset-meta-")
		if i := strings.IndexByte(key, '.'); i >= 0 {
			gid = key[:i]
			commands = append(commands, cmd+" "+key[i:])
		} else {
			commands = append(commands, cmd+" (group)")
		}
		switch cmd {
		case "SETEX":
			size = args[3]
		case "ZADD":
			parts = append(parts, chordCapture{score: args[2], member: args[3]})
		}
	}
	return gid, size, parts, commands
}

// TestChordAgainstCapture replays the chord of redis-5.2-chord-monitor.txt
// and checks the exact keys, scores, members and TTLs Celery produced.
func TestChordAgainstCapture(t *testing.T) {
	capGID, size, parts, commands := loadChordCapture(t)
	if size != "3" || len(parts) != 3 {
		t.Fatalf("capture: size %q, %d parts", size, len(parts))
	}
	wantCmds := "SETEX .s,PUBLISH .s," + strings.Repeat("ZADD .j,ZCOUNT .j,GET .t,GET .s,EXPIRE .j,EXPIRE .t,EXPIRE .s,", 3) +
		"GET (group),ZRANGE .j,DEL .j,DEL .t,DEL .s"
	if got := strings.Join(commands, ","); got != wantCmds {
		t.Fatalf("capture commands changed:\n%s", got)
	}
	// Use the real Celery key names (no prefix) on a fresh group id: the
	// captured id with a random suffix keeps the layout and stays unique.
	raw := rawClient(t, testURL())
	gid := capGID[:len(capGID)-8] + randHex(4)
	ropts, err := redis.ParseURL(testURL())
	if err != nil {
		t.Fatal(err)
	}
	clientName := "rstest-chord-" + randHex(4)
	ropts.ClientName = clientName
	client := redis.NewClient(ropts)
	b, err := NewWithClient(context.Background(), client, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		raw.Del(context.Background(), "celery-taskset-meta-"+gid+".j", "celery-taskset-meta-"+gid+".t", "celery-taskset-meta-"+gid+".s")
		client.Close()
	})
	ctx := context.Background()
	gk := "celery-taskset-meta-" + gid
	if b.GroupKey(gid) != gk {
		t.Fatalf("GroupKey = %q", b.GroupKey(gid))
	}
	mon := startMonitor(t, raw)
	ps := subscribe(t, raw, gk+".s")
	if err := b.SetChordSize(ctx, gid, 3); err != nil {
		t.Fatal(err)
	}
	if msg := receive(t, ps); msg.Payload != "3" {
		t.Errorf(".s published %q", msg.Payload)
	}
	if v, _ := raw.Get(ctx, gk+".s").Result(); v != "3" {
		t.Errorf(".s = %q, want 3", v)
	}
	for i, p := range parts {
		member, err := DecodeChordMember([]byte(p.member))
		if err != nil {
			t.Fatal(err)
		}
		idx, _ := strconv.Atoi(p.score)
		st, err := b.ChordPartReturn(ctx, ChordPart{GroupID: gid, GroupIndex: &idx, TaskID: member.TaskID, State: member.State, Result: member.Result})
		if err != nil {
			t.Fatal(err)
		}
		if st.Count != int64(i+1) || st.Size != 3 || !st.SizeKnown {
			t.Errorf("part %d: count %d size %d known %v", i, st.Count, st.Size, st.SizeKnown)
		}
		if st.Ready != (i == 2) {
			t.Errorf("part %d: ready = %v", i, st.Ready)
		}
		for _, suffix := range []string{".j", ".s"} {
			if ttl, _ := raw.TTL(ctx, gk+suffix).Result(); ttl <= 86398*time.Second || ttl > 86400*time.Second {
				t.Errorf("part %d: TTL %s = %v", i, suffix, ttl)
			}
		}
		if i < 2 {
			continue
		}
		if st.SavedGroup != nil {
			t.Errorf("SavedGroup = %v, want nil", st.SavedGroup)
		}
		if got := st.Results(); !resultstoretest.Equal(got, []any{2, 4, 6}) {
			t.Errorf("results = %v, want [2 4 6]", got)
		}
		for j, m := range st.Members {
			if m.Failed() || m.State != "SUCCESS" {
				t.Errorf("member %d = %+v", j, m)
			}
		}
	}
	// The sorted set holds Celery's exact members and scores.
	zs, err := raw.ZRangeWithScores(ctx, gk+".j", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(zs) != 3 {
		t.Fatalf("zset has %d members", len(zs))
	}
	for i, z := range zs {
		if z.Member != parts[i].member || strconv.FormatFloat(z.Score, 'f', -1, 64) != parts[i].score {
			t.Errorf("member %d = %v %q, want %s %q", i, z.Score, z.Member, parts[i].score, parts[i].member)
		}
	}
	if err := b.ChordComplete(ctx, gid); err != nil {
		t.Fatal(err)
	}
	if n, _ := raw.Exists(ctx, gk+".j", gk+".t", gk+".s").Result(); n != 0 {
		t.Errorf("%d chord keys left after ChordComplete", n)
	}

	// The commands Redis executed for this group (inside our scripts) are
	// the ones Celery sends, in the same order (besides those on the
	// marker of the part that completed the chord, which is celerity's).
	lines := mon.stop(t, raw, gid)
	// Keep only what the backend's own connections (and its scripts) ran.
	clients, err := raw.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, c := range strings.Split(clients, "\n") {
		if strings.Contains(c, " name="+clientName+" ") {
			for _, f := range strings.Fields(c) {
				if addr, ok := strings.CutPrefix(f, "addr="); ok {
					sources = append(sources, " "+addr+"]")
				}
			}
		}
	}
	if len(sources) == 0 {
		t.Fatalf("backend connections not found in CLIENT LIST")
	}
	var got []string
	for _, line := range lines {
		if !strings.Contains(line, gid) {
			continue
		}
		fromBackend := strings.Contains(line, " lua]")
		for _, src := range sources {
			fromBackend = fromBackend || strings.Contains(line, src)
		}
		if !fromBackend {
			continue
		}
		var args []string
		for _, m := range monitorArg.FindAllStringSubmatch(line, -1) {
			args = append(args, unquoteMonitor(m[1]))
		}
		cmd := strings.ToUpper(args[0])
		if cmd == "EVALSHA" || cmd == "ECHO" {
			continue
		}
		for _, key := range args[1:] {
			if cmd != "DEL" && key != args[1] {
				break
			}
			key = strings.TrimPrefix(key, "celery-taskset-meta-"+gid)
			if key == chordFiredSuffix {
				continue // celerity's own marker, beside Celery's commands
			}
			if key == "" {
				key = "(group)"
			}
			got = append(got, cmd+" "+key)
		}
		if cmd == "ZADD" && (args[2] != parts[0].score && args[2] != parts[1].score && args[2] != parts[2].score) {
			t.Errorf("ZADD score %q", args[2])
		}
	}
	if strings.Join(got, ",") != wantCmds {
		t.Errorf("commands:\n got %s\nwant %s", strings.Join(got, ","), wantCmds)
	}
}

type monitor struct {
	conn  net.Conn
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

// startMonitor opens a MONITOR connection to the test Redis.
func startMonitor(t *testing.T, raw *redis.Client) *monitor {
	t.Helper()
	conn, err := net.DialTimeout("tcp", raw.Options().Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Options().Password != "" {
		t.Skip("MONITOR helper does not authenticate")
	}
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR: %q %v", line, err)
	}
	conn.SetReadDeadline(time.Time{})
	m := &monitor{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			m.mu.Lock()
			m.lines = append(m.lines, strings.TrimRight(line, "\r\n"))
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-m.done })
	return m
}

// stop sends a marker, waits until MONITOR has shown it, and returns the
// lines seen.
func (m *monitor) stop(t *testing.T, raw *redis.Client, tag string) []string {
	t.Helper()
	marker := tag + "-monitor-end"
	if err := raw.Echo(context.Background(), marker).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.mu.Lock()
		n := len(m.lines)
		seen := n > 0 && strings.Contains(m.lines[n-1], marker)
		for i := 0; i < n && !seen; i++ {
			seen = strings.Contains(m.lines[i], marker)
		}
		lines := append([]string(nil), m.lines...)
		m.mu.Unlock()
		if seen {
			m.conn.Close()
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatal("MONITOR never showed the end marker")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestChordVariants(t *testing.T) {
	ctx := context.Background()
	t.Run("failure member, nil index, out of order", func(t *testing.T) {
		b, raw := newTestBackend(t, Options{})
		gid := resultstoretest.NewTaskID()
		if err := b.SetChordSize(ctx, gid, 3); err != nil {
			t.Fatal(err)
		}
		two, zero := 2, 0
		exc := &resultstore.ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"x"}}
		steps := []ChordPart{
			{GroupID: gid, GroupIndex: &two, TaskID: "t2", State: "SUCCESS", Result: map[string]any{"k": "v"}},
			{GroupID: gid, TaskID: "tinf", State: "FAILURE", Result: exc},
			{GroupID: gid, GroupIndex: &zero, TaskID: "t0", State: "SUCCESS", Result: "é"},
		}
		var st *ChordStatus
		for _, p := range steps {
			var err error
			if st, err = b.ChordPartReturn(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		if !st.Ready || len(st.Members) != 3 {
			t.Fatalf("status = %+v", st)
		}
		order := []string{st.Members[0].TaskID, st.Members[1].TaskID, st.Members[2].TaskID}
		if strings.Join(order, ",") != "t0,t2,tinf" {
			t.Errorf("order = %v, want t0,t2,tinf (score order, nil index last)", order)
		}
		if m := st.Members[2]; !m.Failed() || !resultstoretest.Equal(*m.Result.(*resultstore.ExceptionInfo), *exc) {
			t.Errorf("failure member = %+v", m)
		}
		if st.Members[0].Result != "é" {
			t.Errorf("unicode member = %#v", st.Members[0].Result)
		}
		zs, _ := raw.ZRangeWithScores(ctx, b.GroupKey(gid)+".j", 0, -1).Result()
		if len(zs) != 3 || zs[2].Member != `[1, "tinf", "FAILURE", {"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"}]` {
			t.Errorf("zset = %v", zs)
		}
		if len(zs) == 3 && zs[0].Member != `[1, "t0", "SUCCESS", "\u00e9"]` {
			t.Errorf("member 0 = %q", zs[0].Member)
		}
	})
	t.Run("missing size never fires", func(t *testing.T) {
		b, _ := newTestBackend(t, Options{})
		gid := resultstoretest.NewTaskID()
		st, err := b.ChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: "a", State: "SUCCESS", Result: int64(1)})
		if err != nil {
			t.Fatal(err)
		}
		if st.Ready || st.SizeKnown || st.Count != 1 {
			t.Errorf("status = %+v", st)
		}
	})
	t.Run("size adjustment .t", func(t *testing.T) {
		b, raw := newTestBackend(t, Options{})
		gid := resultstoretest.NewTaskID()
		b.SetChordSize(ctx, gid, 1)
		raw.Incr(ctx, b.GroupKey(gid)+".t")
		st, _ := b.ChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: "a", State: "SUCCESS", Result: int64(1)})
		if st.Ready || st.Size != 2 {
			t.Errorf("first part: %+v", st)
		}
		st, _ = b.ChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: "b", State: "SUCCESS", Result: int64(2)})
		if !st.Ready || !resultstoretest.Equal(st.Results(), []any{1, 2}) {
			t.Errorf("second part: %+v", st)
		}
	})
	t.Run("redelivered part does not double count", func(t *testing.T) {
		b, _ := newTestBackend(t, Options{})
		gid := resultstoretest.NewTaskID()
		b.SetChordSize(ctx, gid, 2)
		zero := 0
		p := ChordPart{GroupID: gid, GroupIndex: &zero, TaskID: "a", State: "SUCCESS", Result: int64(1)}
		b.ChordPartReturn(ctx, p)
		st, _ := b.ChordPartReturn(ctx, p)
		if st.Ready || st.Count != 1 {
			t.Errorf("duplicate: %+v", st)
		}
	})
	// A part recorded again after the chord completed (the Redis client
	// repeats a call whose reply was lost; a redelivered task) fires the
	// body only if it is the part that completed the chord, in both
	// modes. Celery's count check fired it for any part while the keys
	// existed: twice.
	for _, unordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("repeated part after completion, unordered=%v", unordered), func(t *testing.T) {
			b, raw := newTestBackend(t, Options{ChordUnordered: unordered})
			gid := resultstoretest.NewTaskID()
			b.SetChordSize(ctx, gid, 2)
			zero, one := 0, 1
			a := ChordPart{GroupID: gid, GroupIndex: &zero, TaskID: "a", State: "SUCCESS", Result: int64(1)}
			last := ChordPart{GroupID: gid, GroupIndex: &one, TaskID: "b", State: "SUCCESS", Result: int64(2)}
			for i, step := range []struct {
				p     ChordPart
				ready bool
			}{{a, false}, {last, true}, {a, false}, {last, true}, {a, false}} {
				st, err := b.ChordPartReturn(ctx, step.p)
				if err != nil {
					t.Fatal(err)
				}
				if st.Ready != step.ready {
					t.Fatalf("call %d (part %s): Ready = %v, want %v (%+v)", i, step.p.TaskID, st.Ready, step.ready, st)
				}
				if st.Ready && !resultstoretest.Equal(st.Results(), []any{1, 2}) {
					t.Fatalf("call %d: results %v, want [1 2]", i, st.Results())
				}
			}
			if err := b.ChordComplete(ctx, gid); err != nil {
				t.Fatal(err)
			}
			if n, _ := raw.Exists(ctx, b.GroupKey(gid)+chordFiredSuffix).Result(); n != 0 {
				t.Error("ChordComplete left the marker")
			}
		})
	}
	t.Run("unordered list", func(t *testing.T) {
		b, raw := newTestBackend(t, Options{ChordUnordered: true})
		gid := resultstoretest.NewTaskID()
		b.SetChordSize(ctx, gid, 2)
		b.ChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: "b", State: "SUCCESS", Result: int64(2)})
		st, _ := b.ChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: "a", State: "SUCCESS", Result: int64(1)})
		if !st.Ready || !resultstoretest.Equal(st.Results(), []any{2, 1}) {
			t.Errorf("status: %+v", st)
		}
		if typ, _ := raw.Type(ctx, b.GroupKey(gid)+".j").Result(); typ != "list" {
			t.Errorf(".j type = %s, want list", typ)
		}
	})
	t.Run("saved group returned", func(t *testing.T) {
		b, raw := newTestBackend(t, Options{})
		gid := resultstoretest.NewTaskID()
		raw.Set(ctx, b.GroupKey(gid), `{"result": [["`+gid+`", null], [[["x", null], null]]]}`, time.Minute)
		b.SetChordSize(ctx, gid, 1)
		st, err := b.ChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: "x", State: "SUCCESS", Result: nil})
		if err != nil {
			t.Fatal(err)
		}
		if !st.Ready || st.SavedGroup == nil || st.SavedGroup["result"] == nil {
			t.Errorf("status: %+v", st)
		}
	})
	t.Run("bad ids", func(t *testing.T) {
		b, _ := newTestBackend(t, Options{})
		if _, err := b.ChordPartReturn(ctx, ChordPart{TaskID: "a"}); err == nil {
			t.Error("empty group id accepted")
		}
	})
}

func TestDecodeChordMemberErrors(t *testing.T) {
	for _, bad := range []string{``, `{}`, `[1, "a", "SUCCESS"]`, `[1, 2, "SUCCESS", 3]`, `[1, "a", null, 3]`, `[1, "a"`} {
		if _, err := DecodeChordMember([]byte(bad)); err == nil {
			t.Errorf("DecodeChordMember(%q) succeeded", bad)
		}
	}
}

func FuzzDecodeChordMember(f *testing.F) {
	f.Add([]byte(`[1, "3cb81cc7-750d-4fb8-a3bd-c4911c3266bf", "SUCCESS", 2]`))
	f.Add([]byte(`[1, "t", "FAILURE", {"exc_type": "E", "exc_message": ["x"], "exc_module": "m"}]`))
	f.Add([]byte(`[1, "t", "REVOKED", {"exc_type": 5}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeChordMember(data)
		if err == nil && m.TaskID == "" && m.State == "" && !strings.Contains(string(data), `""`) {
			t.Fatalf("decoded empty member from %q", data)
		}
	})
}

func BenchmarkStoreBatch(b *testing.B) {
	be, _ := newTestBackend(b, Options{ResultExpires: time.Minute})
	ctx := context.Background()
	const batch = 64
	metas := make([]*resultstore.Meta, batch)
	for i := range metas {
		// RETRY takes the same path as a SUCCESS over a STARTED document
		// (GET, state check, SETEX, PUBLISH) and stays overwritable, so
		// every iteration really writes.
		metas[i] = &resultstore.Meta{
			TaskID: resultstoretest.NewTaskID(), Status: resultstore.Retry, Traceback: "Traceback ...",
			Result:   &resultstore.ExceptionInfo{Type: "Retry", Module: "celery.exceptions", Message: []any{"Retry in 1s"}},
			Extended: &resultstore.Extended{Name: "tasks.add", Args: []any{int64(i), int64(1)}, Worker: "w@h", Queue: "celery"},
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		n, err := be.StoreCount(ctx, metas...)
		if err != nil {
			b.Fatal(err)
		}
		if n != batch {
			b.Fatalf("wrote %d of %d", n, batch)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "results/s")
}

// A batch larger than one script call is split into pipelined calls, in
// order, and the SUCCESS guard still holds per document.
func TestStoreLargeBatch(t *testing.T) { bothStorePaths(t, testStoreLargeBatch) }

func testStoreLargeBatch(t *testing.T, pipelineMin int) {
	b, raw := newPathBackend(t, Options{ResultExpires: time.Minute}, pipelineMin)
	ctx := context.Background()
	const n = 2*storeChunk + 17
	metas := make([]*resultstore.Meta, n)
	for i := range metas {
		metas[i] = &resultstore.Meta{TaskID: resultstoretest.NewTaskID(), Status: resultstore.Success,
			Result: int64(i), DateDone: time.Now()}
	}
	guarded := storeChunk + 3
	if err := b.Store(ctx, &resultstore.Meta{TaskID: metas[guarded].TaskID, Status: resultstore.Success,
		Result: "first", DateDone: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// The same task twice in one batch: STARTED then SUCCESS, in order.
	metas[5].Status, metas[5].Result = resultstore.Started, nil
	metas = append(metas, &resultstore.Meta{TaskID: metas[5].TaskID, Status: resultstore.Success,
		Result: int64(5), DateDone: time.Now()})
	written, err := b.StoreCount(ctx, metas...)
	if err != nil {
		t.Fatal(err)
	}
	if written != n {
		t.Fatalf("written = %d, want %d (one skipped, one extra)", written, n)
	}
	for i := 0; i < n; i++ {
		doc, err := b.Get(ctx, metas[i].TaskID)
		if err != nil {
			t.Fatal(err)
		}
		want := any(int64(i))
		if i == guarded {
			want = "first"
		}
		if doc["status"] != "SUCCESS" || doc["result"] != want {
			t.Errorf("task %d: status %v result %v, want SUCCESS %v", i, doc["status"], doc["result"], want)
		}
		if i == 0 || i == n-1 {
			ttl, err := raw.TTL(ctx, b.TaskKey(metas[i].TaskID)).Result()
			if err != nil || ttl <= 0 || ttl > time.Minute {
				t.Errorf("task %d: TTL %v, %v", i, ttl, err)
			}
		}
	}
}

// Within one batch a SUCCESS guards its task's later documents, as a
// SUCCESS stored before the batch does.
func TestSuccessGuardsLaterDocumentsOfTheBatch(t *testing.T) {
	bothStorePaths(t, testSuccessGuardsLaterDocumentsOfTheBatch)
}

func testSuccessGuardsLaterDocumentsOfTheBatch(t *testing.T, pipelineMin int) {
	b, _ := newPathBackend(t, Options{}, pipelineMin)
	ctx := context.Background()
	id, other := resultstoretest.NewTaskID(), resultstoretest.NewTaskID()
	n, err := b.StoreCount(ctx,
		&resultstore.Meta{TaskID: id, Status: resultstore.Success, Result: "first", DateDone: time.Now()},
		&resultstore.Meta{TaskID: other, Status: resultstore.Failure, DateDone: time.Now(),
			Result: &resultstore.ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"x"}}},
		&resultstore.Meta{TaskID: id, Status: resultstore.Failure, DateDone: time.Now(),
			Result: &resultstore.ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"late"}}},
		&resultstore.Meta{TaskID: other, Status: resultstore.Success, Result: "second", DateDone: time.Now()},
	)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("written = %d, want 3 (the FAILURE after the SUCCESS skipped)", n)
	}
	for _, c := range []struct{ id, want string }{{id, "first"}, {other, "second"}} {
		doc, err := b.Get(ctx, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if doc["status"] != "SUCCESS" || doc["result"] != c.want {
			t.Errorf("task %s: %v, want SUCCESS %q", c.id, doc, c.want)
		}
	}
}

// A lone result (a worker answering one task at a time) is written by the
// script in one round trip; a batch of pipelineStoreMin goes through one
// MGET and one pipeline of writes.
func TestStorePathBySize(t *testing.T) {
	b, _ := newTestBackend(t, Options{})
	log := &cmdlog.Log{Name: func(c redis.Cmder) string {
		switch c.Name() {
		case "hello", "client", "auth", "select", "ping":
			return "" // a new connection's setup
		}
		return c.Name()
	}}
	b.client.AddHook(log)
	ctx := context.Background()
	metas := func(n int) []*resultstore.Meta {
		ms := make([]*resultstore.Meta, n)
		for i := range ms {
			ms[i] = &resultstore.Meta{TaskID: resultstoretest.NewTaskID(), Status: resultstore.Success,
				Result: int64(i), DateDone: time.Now()}
		}
		return ms
	}
	if err := b.Store(ctx, metas(1)...); err != nil {
		t.Fatal(err)
	}
	if got := log.Take(); got != "evalsha" {
		t.Errorf("one result: commands %q, want evalsha", got)
	}
	if err := b.Store(ctx, metas(pipelineStoreMin-1)...); err != nil {
		t.Fatal(err)
	}
	if got := log.Take(); got != "evalsha" {
		t.Errorf("%d results: commands %q, want evalsha", pipelineStoreMin-1, got)
	}
	if err := b.Store(ctx, metas(pipelineStoreMin)...); err != nil {
		t.Fatal(err)
	}
	want := "mget" + strings.Repeat(" setex publish", pipelineStoreMin)
	if got := log.Take(); got != want {
		t.Errorf("%d results: commands %q, want %q", pipelineStoreMin, got, want)
	}
}
