package kombu

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Content types of the serializers kombu ships.
const (
	ContentTypeJSON    = "application/json"
	ContentTypeMsgpack = "application/x-msgpack"
	ContentTypeYAML    = "application/x-yaml"
	ContentTypePickle  = "application/x-python-serialize"
	ContentTypeData    = "application/data"
	ContentTypeText    = "application/text"
)

// serializerNames maps kombu serializer names to content types.
var serializerNames = map[string]string{
	"json":    ContentTypeJSON,
	"msgpack": ContentTypeMsgpack,
	"yaml":    ContentTypeYAML,
	"pickle":  ContentTypePickle,
}

// typeNames is the reverse of serializerNames (for error messages).
var typeNames = map[string]string{
	ContentTypeJSON:    "json",
	ContentTypeMsgpack: "msgpack",
	ContentTypeYAML:    "yaml",
	ContentTypePickle:  "pickle",
}

// Registry decodes message bodies by content type, enforcing an accept list
// the way kombu's registry.loads does. It is immutable and safe for
// concurrent use.
type Registry struct {
	accept map[string]bool
}

// NewRegistry builds a registry accepting the given serializer names
// ("json", "msgpack", "yaml", "pickle") or content types (anything
// containing '/', kept verbatim, as kombu's prepare_accept_content does).
// nil or empty means ["json"], Celery's default. An unknown name without a
// '/' is an error. Listing pickle is allowed but pickle bodies are still
// refused by Decode (Go cannot unpickle).
func NewRegistry(accept []string) (*Registry, error) {
	if len(accept) == 0 {
		accept = []string{"json"}
	}
	r := &Registry{accept: make(map[string]bool, len(accept))}
	for _, n := range accept {
		if strings.Contains(n, "/") {
			r.accept[n] = true
			continue
		}
		ct, ok := serializerNames[n]
		if !ok {
			return nil, fmt.Errorf("kombu: no encoder/decoder installed for %q", n)
		}
		r.accept[ct] = true
	}
	return r, nil
}

// Accepts reports whether a body of this content type would pass the accept
// check (application/data and application/text are always trusted; an empty
// content type means application/data).
func (r *Registry) Accepts(contentType string) bool {
	if contentType == "" {
		contentType = ContentTypeData
	}
	return contentType == ContentTypeData || contentType == ContentTypeText || r.accept[contentType]
}

// Decode deserializes body according to contentType, as kombu's
// registry.loads with an accept list does:
//
//   - a content type that is neither accepted nor trusted is a
//     *ContentDisallowedError; pickle always is (Go cannot unpickle);
//   - an empty body is returned as-is ([]byte{}) without decoding;
//   - JSON, msgpack and YAML bodies decode to the package value model
//     (JSON markers converted as kombu >= 5.3 does);
//   - any other accepted or trusted type is returned as []byte when
//     contentEncoding is "binary" / "ascii-8bit", else as a string decoded
//     from contentEncoding (utf-8, ascii, latin-1 supported).
//
// Malformed payloads are a *DecodeError.
func (r *Registry) Decode(contentType, contentEncoding string, body []byte) (any, error) {
	if contentType == "" {
		contentType = ContentTypeData
	}
	if !r.Accepts(contentType) || contentType == ContentTypePickle {
		return nil, &ContentDisallowedError{ContentType: contentType, Name: typeNames[contentType]}
	}
	if len(body) == 0 {
		return []byte{}, nil
	}
	switch contentType {
	case ContentTypeJSON:
		return UnmarshalJSON(body)
	case ContentTypeMsgpack:
		return unmarshalMsgpack(body)
	case ContentTypeYAML:
		return unmarshalYAML(body)
	}
	return decodeText(contentEncoding, body)
}

func decodeText(enc string, body []byte) (any, error) {
	switch strings.ToLower(enc) {
	case "binary", "ascii-8bit":
		return body, nil
	case "", "utf-8", "utf8", "utf_8", "u8":
		if !utf8.Valid(body) {
			return nil, &DecodeError{Err: errors.New("body is not valid utf-8")}
		}
		return string(body), nil
	case "ascii", "us-ascii":
		for _, c := range body {
			if c >= 0x80 {
				return nil, &DecodeError{Err: errors.New("body is not valid ascii")}
			}
		}
		return string(body), nil
	case "latin-1", "latin1", "iso-8859-1", "iso8859-1", "l1":
		rs := make([]rune, len(body))
		for i, c := range body {
			rs[i] = rune(c)
		}
		return string(rs), nil
	}
	return nil, &DecodeError{Err: fmt.Errorf("unsupported content encoding %q", enc)}
}

// DecodeBody decompresses m.Body according to the "compression" header (if
// any) and decodes it with Decode. The accept check runs before
// decompression so refused content is never inflated; a bad compressed
// body is a *DecodeError.
func (r *Registry) DecodeBody(m *Message) (any, error) {
	ct := m.ContentType
	if ct == "" {
		ct = ContentTypeData
	}
	if !r.Accepts(ct) || ct == ContentTypePickle {
		return nil, &ContentDisallowedError{ContentType: ct, Name: typeNames[ct]}
	}
	body := m.Body
	c, ok := m.Headers["compression"]
	if m.Headers == nil && m.HeadersJSON != "" {
		var err error
		if c, ok, err = m.lazyCompression(); err != nil {
			return nil, &DecodeError{Err: fmt.Errorf("headers: %w", err)}
		}
	}
	if ok && c != nil {
		name, ok := c.(string)
		if !ok {
			return nil, &DecodeError{Err: fmt.Errorf("compression header is %T, not a string", c)}
		}
		if name != "" {
			out, err := Decompress(name, body)
			if err != nil {
				return nil, &DecodeError{Err: err}
			}
			body = out
		}
	}
	return r.Decode(ct, m.ContentEncoding, body)
}

// UnmarshalJSON decodes one JSON document into the package value model,
// converting kombu >= 5.3 type markers. Errors are *DecodeError.
func UnmarshalJSON(data []byte) (any, error) {
	d := jsonDecoder{data: data, markers: true}
	v, err := d.decodeDocument()
	if err != nil {
		return nil, &DecodeError{Err: err}
	}
	return v, nil
}

// Marshal serializes v with the named serializer ("json", "msgpack",
// "yaml", or their content types) and returns the body with the content
// type and content encoding kombu would put on the message. mode applies
// to JSON only. pickle and unknown names are an *EncodeError.
func Marshal(serializer string, v any, mode JSONMode) (body []byte, contentType, contentEncoding string, err error) {
	switch serializer {
	case "json", ContentTypeJSON:
		body, err = AppendJSON(nil, v, mode)
		return body, ContentTypeJSON, "utf-8", err
	case "msgpack", ContentTypeMsgpack:
		body, err = marshalMsgpack(v)
		return body, ContentTypeMsgpack, "binary", err
	case "yaml", ContentTypeYAML:
		body, err = marshalYAML(v)
		return body, ContentTypeYAML, "utf-8", err
	case "pickle", ContentTypePickle:
		return nil, "", "", &EncodeError{Err: errors.New("pickle serialization is not supported")}
	}
	return nil, "", "", &EncodeError{Err: fmt.Errorf("unknown serializer %q", serializer)}
}
