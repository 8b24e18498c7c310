// Package kombu implements the message layer Celery sits on: the kombu
// envelope (the Redis JSON document and the AMQP property mapping),
// serializers keyed by content type with accept_content enforcement, and
// body compression. It is pure: bytes in, typed values out, no I/O.
package kombu

// DeliveryInfo records where a message was published to, as kombu keeps it
// in properties["delivery_info"].
type DeliveryInfo struct {
	Exchange    string
	RoutingKey  string
	Redelivered bool
}

// Properties are the kombu message properties. On AMQP they are basic
// properties; on Redis they live in the envelope's "properties" object.
type Properties struct {
	CorrelationID string
	ReplyTo       string
	// DeliveryMode is 2 (persistent) or 1 (transient); 0 when absent.
	DeliveryMode uint8
	// Priority is the message priority (0..255 on AMQP, 0..9 used on Redis).
	Priority int
	// Expiration is the per-message TTL in milliseconds, as a string.
	Expiration string
	// DeliveryTag identifies the message for ack/reject. On Redis it is the
	// publisher-generated uuid4 string; on AMQP the transport keeps its own
	// numeric tag and this stays empty.
	DeliveryTag  string
	DeliveryInfo DeliveryInfo
	// BodyEncoding is "base64" for Redis envelopes.
	BodyEncoding string
	// Extra holds properties kombu does not define (Celery leaks some on
	// retries); they are kept so a message round-trips unchanged.
	Extra map[string]any
}

// Message is one kombu message: a serialized (and maybe compressed) body
// plus the metadata needed to decode and route it.
type Message struct {
	// Body is the serialized payload, possibly compressed (see the
	// "compression" header). Transport encodings such as base64 are already
	// removed.
	Body            []byte
	ContentType     string
	ContentEncoding string
	// Headers is the application headers table; Celery protocol v2 keeps its
	// task metadata here.
	Headers    map[string]any
	Properties Properties
}
