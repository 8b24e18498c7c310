// Package rpc implements Celery's rpc:// result backend
// (celery/backends/rpc.py): each state is published as a message to the
// client's reply queue instead of being stored.
//
// Store publishes every meta to the default exchange "" with routing key
// Meta.ReplyTo and correlation_id Meta.CorrelationID (or the task id when
// empty), delivery_mode 1 (2 with Options.Persistent), no headers, and the
// body {"task_id", "status", "result", "traceback", "children"} in the
// result serializer. A meta without ReplyTo is skipped, as Celery does.
// The publisher is expected to wait for publisher confirms
// (amqptransport.Transport does).
//
// The rpc backend cannot read results back: Get always returns nil, nil
// (PENDING), and nothing prevents a SUCCESS from being followed by another
// state; the Python client keeps the latest message per task id.
package rpc

import (
	"context"
	"fmt"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/resultstore"
)

// Publisher sends one message; transports.Transport satisfies it.
type Publisher interface {
	Publish(ctx context.Context, exchange, routingKey string, m *kombu.Message) error
}

// Options configures a Backend. The zero value is Celery's default
// (result_serializer json, result_persistent False, 5.2 JSON style).
type Options struct {
	// Serializer is the result_serializer: "json" (default), "msgpack" or
	// "yaml" (or their content types).
	Serializer string
	// Persistent sends delivery_mode 2 (result_persistent).
	Persistent bool
	// Style selects the JSON flavour (plain 5.2 or kombu ≥ 5.3 typed).
	Style resultstore.Style
	// CloseFunc, if set, is called by Close (for example to close a
	// transport the backend owns).
	CloseFunc func() error
}

// Backend is the rpc:// result backend. It is safe for concurrent use if
// the publisher is.
type Backend struct {
	pub  Publisher
	opts Options
}

var _ resultstore.Backend = (*Backend)(nil)

// New returns an rpc backend publishing through pub.
func New(pub Publisher, opts Options) *Backend {
	if opts.Serializer == "" {
		opts.Serializer = "json"
	}
	return &Backend{pub: pub, opts: opts}
}

// Message builds the reply message for m, or nil when m has no ReplyTo.
func (b *Backend) Message(m *resultstore.Meta) (*kombu.Message, error) {
	if m.ReplyTo == "" {
		return nil, nil
	}
	var (
		body        []byte
		ctype, cenc string
		err         error
	)
	switch b.opts.Serializer {
	case "json", kombu.ContentTypeJSON:
		body, err = resultstore.AppendRPCMeta(nil, m, b.opts.Style)
		ctype, cenc = kombu.ContentTypeJSON, "utf-8"
	default:
		var v map[string]any
		v, err = rpcValue(m, b.opts.Style)
		if err == nil {
			mode := b.opts.Style.JSON
			if m.TypedJSON {
				mode = kombu.JSONTyped
			}
			body, ctype, cenc, err = kombu.Marshal(b.opts.Serializer, v, mode)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("rpc: encode result of %s: %w", m.TaskID, err)
	}
	corr := m.CorrelationID
	if corr == "" {
		corr = m.TaskID
	}
	mode := uint8(1)
	if b.opts.Persistent {
		mode = 2
	}
	return &kombu.Message{
		Body:            body,
		ContentType:     ctype,
		ContentEncoding: cenc,
		Properties: kombu.Properties{
			CorrelationID: corr,
			DeliveryMode:  mode,
		},
	}, nil
}

// rpcValue is the rpc document as a plain value for non-JSON serializers.
func rpcValue(m *resultstore.Meta, style resultstore.Style) (map[string]any, error) {
	full, err := resultstore.MetaValue(m, style)
	if err != nil {
		return nil, err
	}
	v := make(map[string]any, 5)
	for _, k := range []string{"task_id", "status", "result", "traceback", "children"} {
		v[k] = full[k]
	}
	return v, nil
}

// Store publishes each meta to its reply queue, in order, waiting for each
// publish to be confirmed. Metas without ReplyTo are skipped.
func (b *Backend) Store(ctx context.Context, metas ...*resultstore.Meta) error {
	for _, m := range metas {
		msg, err := b.Message(m)
		if err != nil {
			return err
		}
		if msg == nil {
			continue
		}
		if err := b.pub.Publish(ctx, "", m.ReplyTo, msg); err != nil {
			return fmt.Errorf("rpc: publish %s state of %s to %q: %w", m.Status, m.TaskID, m.ReplyTo, err)
		}
	}
	return nil
}

// Get returns nil, nil: rpc results live only in the client's reply queue
// and cannot be read back by the worker.
func (b *Backend) Get(ctx context.Context, taskID string) (map[string]any, error) {
	return nil, nil
}

// Close calls Options.CloseFunc, if any. The publisher is otherwise left
// open; it belongs to the caller.
func (b *Backend) Close() error {
	if b.opts.CloseFunc != nil {
		return b.opts.CloseFunc()
	}
	return nil
}
