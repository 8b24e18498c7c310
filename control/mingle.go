package control

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/transports"
)

// MingleTimeout is how long Mingle waits for replies, as Celery's mingle
// step waits for the other workers' hello replies.
const MingleTimeout = time.Second

// Mingle is Celery's start-up synchronisation (the mingle bootstep): it
// broadcasts hello with this node's revoked ids, waits wait for the other
// workers' replies, and takes their revoked ids and the highest clock. It
// returns how many nodes replied. Run it before consuming tasks, so that
// a task revoked while this worker was down is not run.
func (n *Node) Mingle(ctx context.Context, wait time.Duration) (int, error) {
	b, ok := n.tr.(transports.Broadcaster)
	if !ok {
		return 0, fmt.Errorf("control: transport %T cannot broadcast", n.tr)
	}
	n.log.Info("mingle: searching for neighbors")
	oid := protocolv2.NewID()
	sub, err := b.Subscribe(ctx, transports.Broadcast{
		Exchange:   transports.Exchange{Name: n.ReplyExchange(), Type: "direct"},
		BindingKey: oid,
		Queue:      oid + "." + n.ReplyExchange(),
		QueueArguments: map[string]any{
			"x-message-ttl": n.opts.QueueTTL.Milliseconds(),
			"x-expires":     n.opts.QueueExpires.Milliseconds(),
		},
	})
	if err != nil {
		return 0, fmt.Errorf("control: mingle: reply queue: %w", err)
	}
	// Closing waits for the reply queue's read in flight (up to a second
	// on Redis); the worker need not.
	defer func() { go sub.Close() }()
	if err := b.DeclareExchange(ctx, transports.Exchange{Name: n.Exchange(), Type: "fanout"}); err != nil {
		return 0, fmt.Errorf("control: mingle: %w", err)
	}
	ticket := protocolv2.NewID()
	now := time.Now()
	body, ct, ce, err := kombu.Marshal(n.opts.Serializer, map[string]any{
		"method":      "hello",
		"arguments":   map[string]any{"from_node": n.hostname, "revoked": n.revokedData()},
		"destination": nil, "pattern": nil, "matcher": nil,
		"ticket":   ticket,
		"reply_to": map[string]any{"exchange": n.ReplyExchange(), "routing_key": oid},
	}, kombu.JSONPlain)
	if err != nil {
		return 0, err
	}
	m := &kombu.Message{
		Body: body, ContentType: ct, ContentEncoding: ce,
		Headers: map[string]any{"clock": n.clock.Forward(),
			"expires": float64(now.Add(wait).UnixNano()) / 1e9},
		Properties: kombu.Properties{DeliveryMode: 2},
	}
	if err := n.tr.Publish(ctx, n.Exchange(), "", m); err != nil {
		return 0, fmt.Errorf("control: mingle: publish hello: %w", err)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var ids []string
	nodes := 0
	for {
		select {
		case <-ctx.Done():
			return nodes, ctx.Err()
		case <-timer.C:
			if nodes == 0 {
				n.log.Info("mingle: all alone")
				return 0, nil
			}
			n.log.Info(fmt.Sprintf("mingle: sync with %d nodes", nodes))
			slices.Sort(ids)
			ids = slices.Compact(ids)
			if len(ids) > 0 {
				n.w.Revoke(ids, false, "")
			}
			n.log.Info("mingle: sync complete", "revoked", len(ids))
			return nodes, nil
		case r, ok := <-sub.Messages():
			if !ok {
				return nodes, fmt.Errorf("control: mingle: reply queue closed")
			}
			if t, _ := r.Headers["ticket"].(string); t != ticket {
				continue
			}
			v, err := n.reg.DecodeBody(r)
			if err != nil {
				n.log.Warn("mingle: cannot decode a reply", "error", err)
				continue
			}
			replies, _ := v.(map[string]any)
			for node, reply := range replies {
				hello, isMap := reply.(map[string]any)
				if node == n.hostname || !isMap {
					continue
				}
				nodes++
				n.clock.Adjust(clockValue(hello["clock"]))
				ids = append(ids, revokedIDs(hello["revoked"])...)
			}
		}
	}
}
