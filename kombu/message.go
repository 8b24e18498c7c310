// Package kombu implements the message layer Celery sits on: the kombu
// envelope (the Redis JSON document and the AMQP property mapping),
// serializers keyed by content type with accept_content enforcement, and
// body compression. It is pure: bytes in, typed values out, no I/O.
//
// # Value model
//
// Decoded JSON, msgpack and YAML values use these Go types:
//
//	null                 -> nil
//	true/false           -> bool
//	string               -> string
//	integer              -> int64, or *big.Int when it does not fit (never float)
//	float (JSON 1.0 too) -> float64 (NaN/Infinity literals accepted as Python does)
//	array                -> []any
//	object/map           -> map[string]any
//	msgpack bin          -> []byte
//
// kombu >= 5.3 JSON type markers, objects with exactly the keys "__type__"
// and "__value__", are converted when a body is decoded (not inside
// envelope headers):
//
//	datetime -> time.Time (naive values in the Naive location)
//	date     -> Date
//	time     -> TimeOfDay
//	decimal  -> Decimal (exact text)
//	uuid     -> UUID
//	bytes    -> []byte (the UTF-8 text)
//	base64   -> []byte (decoded)
//
// An unknown __type__ is a *DecodeError, which Python workers answer by
// acking and dropping the message. kombu 5.2 peers send these types as
// plain strings, which stay strings.
//
// Encoding accepts the types above plus Go ints and uints of every width,
// float32/float64, []T and map[string]T (through reflection), json.Marshaler
// and, as a last resort, structs through encoding/json. JSONMode chooses
// between kombu 5.2 style strings and kombu 5.3+ markers.
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
	Headers map[string]any
	// HeadersJSON is the headers object as the envelope's JSON text. Only
	// DecodeEnvelopeStringLazy sets it, and leaves Headers nil: a reader
	// that wants a few fields need not build the map. RangeHeaders reads
	// the headers in either form; DecodeHeaders builds Headers from it.
	HeadersJSON string
	Properties  Properties

	// compression is the "compression" header of a message whose headers
	// DecodeEnvelopeStringLazy left as JSON text (scanned), with
	// hasCompression when the header is there, for DecodeBody.
	compression    any
	hasCompression bool
	scanned        bool
}
