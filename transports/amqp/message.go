package amqptransport

import (
	"fmt"
	"time"

	"github.com/celerity-go/celerity/kombu"
	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQP basic properties kombu keeps but kombu.Properties has no field for
// travel in Properties.Extra under these (py-amqp) names.
const (
	extraMessageID = "message_id"
	extraTimestamp = "timestamp"
	extraType      = "type"
	extraUserID    = "user_id"
	extraAppID     = "app_id"
)

// MessageFromDelivery maps an AMQP delivery to a kombu message: basic
// properties become kombu properties, the headers table becomes Headers
// (see the package doc for the value mapping), the body is shared, not
// copied. delivery_info records the exchange, routing key and redelivered
// flag.
func MessageFromDelivery(d *amqp.Delivery) *kombu.Message {
	m := &kombu.Message{
		Body:            d.Body,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		Headers:         fromTable(d.Headers),
		Properties: kombu.Properties{
			CorrelationID: d.CorrelationId,
			ReplyTo:       d.ReplyTo,
			DeliveryMode:  d.DeliveryMode,
			Priority:      int(d.Priority),
			Expiration:    d.Expiration,
			DeliveryInfo: kombu.DeliveryInfo{
				Exchange:    d.Exchange,
				RoutingKey:  d.RoutingKey,
				Redelivered: d.Redelivered,
			},
		},
	}
	if m.Headers == nil {
		m.Headers = map[string]any{}
	}
	if d.MessageId != "" || !d.Timestamp.IsZero() || d.Type != "" || d.UserId != "" || d.AppId != "" {
		x := make(map[string]any, 2)
		if d.MessageId != "" {
			x[extraMessageID] = d.MessageId
		}
		if !d.Timestamp.IsZero() {
			x[extraTimestamp] = d.Timestamp.UTC()
		}
		if d.Type != "" {
			x[extraType] = d.Type
		}
		if d.UserId != "" {
			x[extraUserID] = d.UserId
		}
		if d.AppId != "" {
			x[extraAppID] = d.AppId
		}
		m.Properties.Extra = x
	}
	return m
}

// PublishingFromMessage maps a kombu message to AMQP publishing properties,
// the inverse of MessageFromDelivery. Priority 0 and DeliveryMode 0 are
// left unset (the broker default). Header values must be table-compatible:
// nil, bool, string, []byte, integers, floats, time.Time, []any, []string,
// map[string]any (nested table), json.Number.
func PublishingFromMessage(m *kombu.Message) (amqp.Publishing, error) {
	h, err := toTable(m.Headers)
	if err != nil {
		return amqp.Publishing{}, err
	}
	p := amqp.Publishing{
		Headers:         h,
		ContentType:     m.ContentType,
		ContentEncoding: m.ContentEncoding,
		DeliveryMode:    m.Properties.DeliveryMode,
		CorrelationId:   m.Properties.CorrelationID,
		ReplyTo:         m.Properties.ReplyTo,
		Expiration:      m.Properties.Expiration,
		Body:            m.Body,
	}
	if pr := m.Properties.Priority; pr != 0 {
		if pr < 0 || pr > 255 {
			return amqp.Publishing{}, fmt.Errorf("amqp: priority %d out of range 0..255", pr)
		}
		p.Priority = uint8(pr)
	}
	if x := m.Properties.Extra; x != nil {
		if s, ok := x[extraMessageID].(string); ok {
			p.MessageId = s
		}
		if t, ok := x[extraTimestamp].(time.Time); ok {
			p.Timestamp = t
		}
		if s, ok := x[extraType].(string); ok {
			p.Type = s
		}
		if s, ok := x[extraUserID].(string); ok {
			p.UserId = s
		}
		if s, ok := x[extraAppID].(string); ok {
			p.AppId = s
		}
	}
	return p, nil
}
