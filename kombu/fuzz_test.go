package kombu

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
)

func captureSeeds(f *testing.F) [][]byte {
	files, _ := filepath.Glob(filepath.Join(captureDir, "redis-*-task-*.json"))
	var out [][]byte
	for _, p := range files {
		out = append(out, readCapture(f, filepath.Base(p)))
	}
	if len(out) == 0 {
		f.Fatal("no capture seeds")
	}
	return out
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range captureSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte(`{"body": "abc", "properties": {"priority": null, "delivery_info": null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeEnvelope(data)
		ms, errs := DecodeEnvelopeString(string(data))
		if _, errl := DecodeEnvelopeStringLazy(string(data)); (errl == nil) != (errs == nil) {
			t.Fatalf("DecodeEnvelopeStringLazy error %v, DecodeEnvelopeString error %v", errl, errs)
		}
		if (err == nil) != (errs == nil) {
			t.Fatalf("DecodeEnvelope error %v, DecodeEnvelopeString error %v", err, errs)
		}
		if err != nil {
			if m != nil || ms != nil {
				t.Fatal("message returned with error")
			}
			return
		}
		if a, b := fmt.Sprintf("%#v", *m), fmt.Sprintf("%#v", *ms); a != b {
			t.Fatalf("DecodeEnvelopeString differs:\n%s\n%s", b, a)
		}
		checkLazyAgrees(t, string(data), ms)
		out, err := AppendEnvelope(nil, m)
		if err != nil {
			return // e.g. non-UTF-8-safe extras cannot be re-encoded plainly
		}
		m2, err := DecodeEnvelope(out)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v\n%s", err, out)
		}
		if !bytes.Equal(m2.Body, m.Body) || m2.Properties.DeliveryTag != m.Properties.DeliveryTag ||
			m2.Properties.Priority != m.Properties.Priority || m2.ContentType != m.ContentType {
			t.Fatalf("round trip changed the message")
		}
	})
}

func FuzzUnmarshalJSON(f *testing.F) {
	for _, s := range captureSeeds(f) {
		m, err := DecodeEnvelope(s)
		if err == nil {
			f.Add(m.Body)
		}
		f.Add(s)
	}
	for _, s := range []string{
		`{"__type__": "datetime", "__value__": "2024-01-02T03:04:05.600000+00:00"}`,
		`{"__type__": "time", "__value__": "03:04:05.1+01:30"}`,
		`{"__type__": "uuid", "__value__": {"hex": "12345678123456781234567812345678"}}`,
		`[NaN, -Infinity, 1e999, 123456789012345678901234567890, "\ud800"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := UnmarshalJSON(data)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes in typed mode and decodes again.
		b, err := AppendJSON(nil, v, JSONTyped)
		if err != nil {
			return // e.g. a datetime marker with a year Python would refuse
		}
		if _, err := UnmarshalJSON(b); err != nil {
			t.Fatalf("re-encoded value does not decode: %v\n%s", err, b)
		}
	})
}

func FuzzDecodeBody(f *testing.F) {
	types := []string{ContentTypeJSON, ContentTypeMsgpack, ContentTypeYAML, ContentTypePickle, "application/data", "text/plain", ""}
	comps := []string{"", CompressionZlib, CompressionBzip2, CompressionLZMA, CompressionBrotli, CompressionZstd, "bogus"}
	for _, s := range captureSeeds(f) {
		m, err := DecodeEnvelope(s)
		if err != nil {
			continue
		}
		c, _ := m.Headers["compression"].(string)
		f.Add(uint8(0), uint8(0), m.Body)
		f.Add(uint8(1), uint8(0), m.Body)
		if c != "" {
			f.Add(uint8(0), uint8(1), m.Body)
		}
	}
	for i := range comps[1:6] {
		_, out, _ := Compress(comps[i+1], []byte(`[[1, 2], {}, {}]`))
		f.Add(uint8(0), uint8(i+1), out)
	}
	reg, _ := NewRegistry([]string{"json", "msgpack", "yaml", "pickle", "text/plain"})
	old := MaxDecompressedSize
	MaxDecompressedSize = 1 << 20
	f.Cleanup(func() { MaxDecompressedSize = old })
	f.Fuzz(func(t *testing.T, ct, comp uint8, body []byte) {
		m := &Message{ContentType: types[int(ct)%len(types)], ContentEncoding: "utf-8", Body: body}
		if c := comps[int(comp)%len(comps)]; c != "" {
			m.Headers = map[string]any{"compression": c}
		}
		_, _ = reg.DecodeBody(m)
	})
}

func FuzzDecompress(f *testing.F) {
	headers := []string{CompressionZlib, CompressionBzip2, CompressionLZMA, CompressionBrotli, CompressionZstd}
	for i, h := range headers {
		_, out, err := Compress(h, bytes.Repeat([]byte("celery"), 50))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), out)
	}
	m, _ := DecodeEnvelope(readCapture(f, "redis-5.2-task-zlib.json"))
	f.Add(uint8(0), m.Body)
	old := MaxDecompressedSize
	MaxDecompressedSize = 1 << 20
	f.Cleanup(func() { MaxDecompressedSize = old })
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		h := headers[int(which)%len(headers)]
		out, err := Decompress(h, data)
		if err == nil && int64(len(out)) > MaxDecompressedSize {
			t.Fatalf("%s produced %d bytes over the limit", h, len(out))
		}
	})
}
