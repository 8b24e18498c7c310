package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/protocolv2"
)

// ResultKeyPrefix is the Redis result backend's key prefix (Celery's
// default, no global_keyprefix).
const ResultKeyPrefix = "celery-task-meta-"

// resultWatcher counts the batch's results in a Redis result backend.
// Workers finish tasks roughly in queue order, so it checks ids in order
// from the first one not yet seen, a chunk at a time, with one EXISTS per
// chunk: each key is looked up about once, so the watcher costs Redis
// little next to the worker it measures.
type resultWatcher struct {
	client *redis.Client
	b      *Batch
	next   int // every result before next exists
	keys   []string
}

const watchChunk = 128

func newResultWatcher(client *redis.Client, b *Batch) *resultWatcher {
	return &resultWatcher{client: client, b: b, keys: make([]string, 0, watchChunk)}
}

// poll returns how many results exist (a lower bound: it counts ids in
// order and the partial count of the first incomplete chunk).
func (w *resultWatcher) poll(ctx context.Context) (int, error) {
	for w.next < len(w.b.IDs) {
		end := min(w.next+watchChunk, len(w.b.IDs))
		w.keys = w.keys[:0]
		for _, id := range w.b.IDs[w.next:end] {
			w.keys = append(w.keys, ResultKeyPrefix+id)
		}
		n, err := w.client.Exists(ctx, w.keys...).Result()
		if err != nil {
			return w.next, err
		}
		if int(n) < end-w.next {
			return w.next + int(n), nil
		}
		w.next = end
	}
	return w.next, nil
}

// resultStats are read back from the stored results after a run.
type resultStats struct {
	First, Last time.Time // min and max date_done
	Found       int
	Wrong       int    // not SUCCESS, or not the expected value
	Example     string // first wrong document
}

// collectResults reads every result of the batch and checks state and
// value.
func collectResults(ctx context.Context, client *redis.Client, b *Batch) (resultStats, error) {
	var st resultStats
	const chunk = 1000
	keys := make([]string, 0, chunk)
	for start := 0; start < len(b.IDs); start += chunk {
		end := min(start+chunk, len(b.IDs))
		keys = keys[:0]
		for _, id := range b.IDs[start:end] {
			keys = append(keys, ResultKeyPrefix+id)
		}
		vals, err := client.MGet(ctx, keys...).Result()
		if err != nil {
			return st, err
		}
		for k, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue
			}
			st.Found++
			var doc struct {
				Status   string          `json:"status"`
				Result   json.RawMessage `json:"result"`
				DateDone string          `json:"date_done"`
			}
			bad := func() {
				st.Wrong++
				if st.Example == "" {
					st.Example = s
				}
			}
			if err := json.Unmarshal([]byte(s), &doc); err != nil {
				bad()
				continue
			}
			var got int64
			if doc.Status != "SUCCESS" || json.Unmarshal(doc.Result, &got) != nil || got != b.Expected(start+k) {
				bad()
			}
			t, err := protocolv2.ParseTime(doc.DateDone)
			if err != nil {
				bad()
				continue
			}
			if st.First.IsZero() || t.Before(st.First) {
				st.First = t
			}
			if t.After(st.Last) {
				st.Last = t
			}
		}
	}
	return st, nil
}

// redisDrained reports how many of the batch's messages left the queue
// list (fetched) and whether all are also gone from unacked (settled).
func redisDrained(ctx context.Context, client *redis.Client, b *Batch) (fetched int, settled bool, err error) {
	n, err := client.LLen(ctx, b.Queue).Result()
	if err != nil {
		return 0, false, err
	}
	fetched = len(b.IDs) - int(n)
	if n > 0 {
		return fetched, false, nil
	}
	const chunk = 4096
	for start := 0; start < len(b.Tags); start += chunk {
		end := min(start+chunk, len(b.Tags))
		vals, err := client.HMGet(ctx, "unacked", b.Tags[start:end]...).Result()
		if err != nil {
			return fetched, false, err
		}
		for _, v := range vals {
			if v != nil {
				return fetched, false, nil
			}
		}
	}
	return fetched, true, nil
}

// amqpDrained reports how many messages left the queue; settled is true
// when the queue holds no ready message. (Unacknowledged messages are not
// visible over AMQP; a worker holds at most its prefetch count of them.)
func amqpDrained(ch *amqp.Channel, b *Batch) (fetched int, settled bool, err error) {
	q, err := ch.QueueDeclarePassive(b.Queue, true, false, false, false, nil)
	if err != nil {
		return 0, false, fmt.Errorf("inspect queue: %w", err)
	}
	return len(b.IDs) - q.Messages, q.Messages == 0, nil
}
