package kombu

import "fmt"

// ContentDisallowedError reports a body whose content type is not in the
// accept list (kombu's ContentDisallowed). A worker rejects such a message
// without requeue and stores no result.
type ContentDisallowedError struct {
	// ContentType is the message's content type, e.g.
	// "application/x-python-serialize".
	ContentType string
	// Name is the serializer name kombu knows the type by ("pickle"), or
	// empty when it has none.
	Name string
}

// Error returns kombu's wording, e.g. "Refusing to deserialize untrusted
// content of type pickle (application/x-python-serialize)".
func (e *ContentDisallowedError) Error() string {
	if e.Name == "" || e.Name == e.ContentType {
		return "Refusing to deserialize untrusted content of type " + e.ContentType
	}
	return fmt.Sprintf("Refusing to deserialize untrusted content of type %s (%s)", e.Name, e.ContentType)
}

// DecodeError reports a payload that could not be decoded (bad JSON,
// msgpack, YAML, base64, compression, or an unknown kombu type marker).
// Python workers ack and drop such messages.
type DecodeError struct {
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string { return "kombu: decode error: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeError reports a value that cannot be serialized (kombu's
// EncodeError), e.g. a channel, or non-UTF-8 bytes in JSONPlain mode.
type EncodeError struct {
	Err error
}

// Error implements error.
func (e *EncodeError) Error() string { return "kombu: encode error: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *EncodeError) Unwrap() error { return e.Err }
