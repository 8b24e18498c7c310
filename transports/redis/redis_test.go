package redistransport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/transports"
	"github.com/celerity-go/celerity/transports/transporttest"
)

const testURL = "redis://127.0.0.1:6379/0"

var (
	prefixes sync.Map // *testing.T -> string
	runID    = func() string {
		var b [4]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	nonKey = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)
)

// requireRedis skips (or fails under CI=true) when Redis is unreachable.
func requireRedis(t testing.TB) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis not reachable: %v", err)
		}
		t.Skipf("redis not reachable: %v", err)
	}
}

// testPrefix returns a global_keyprefix unique to t, and deletes every key
// under it when t ends.
func testPrefix(t testing.TB) string {
	if p, ok := prefixes.Load(t); ok {
		return p.(string)
	}
	p := "celerity-test:" + runID + ":" + nonKey.ReplaceAllString(t.Name(), "_") + ":"
	prefixes.Store(t, p)
	t.Cleanup(func() {
		prefixes.Delete(t)
		deleteKeys(t, p)
	})
	return p
}

func deleteKeys(t testing.TB, prefix string) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, escapeGlob(prefix)+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		if err := c.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

func escapeGlob(s string) string {
	return regexp.MustCompile(`([*?\[\]\\])`).ReplaceAllString(s, `\$1`)
}

func newTestTransport(t testing.TB, opts Options) *Transport {
	t.Helper()
	requireRedis(t)
	if opts.GlobalKeyprefix == "" {
		opts.GlobalKeyprefix = testPrefix(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr, err := New(ctx, testURL, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func TestConformance(t *testing.T) {
	requireRedis(t)
	transporttest.Run(t, func(t *testing.T) transports.Transport {
		return newTestTransport(t, Options{})
	}, transporttest.Options{
		Priority: transporttest.LowerFirst,
		Recover: func(t *testing.T, _ transports.Transport) {
			// A crash leaves entries in unacked; any kombu process's
			// visibility sweep brings them back. Use a tiny timeout.
			tr := newTestTransport(t, Options{VisibilityTimeout: time.Nanosecond})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			idx := tr.ks.key(tr.opts.UnackedIndexKey)
			for {
				if _, err := tr.RestoreVisible(ctx); err != nil {
					t.Fatalf("RestoreVisible: %v", err)
				}
				n, err := tr.client.ZCard(ctx, idx).Result()
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					return
				}
				if ctx.Err() != nil {
					t.Fatalf("unacked_index still has %d entries", n)
				}
			}
		},
	})
}
