package kombu

import "testing"

func BenchmarkDecodeEnvelope(b *testing.B) {
	data := readCapture(b, "redis-5.2-task-basic.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeEnvelope(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEnvelopeString(b *testing.B) {
	data := string(readCapture(b, "redis-5.2-task-basic.json"))
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeEnvelopeString(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendEnvelope(b *testing.B) {
	m, err := DecodeEnvelope(readCapture(b, "redis-5.2-task-basic.json"))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = AppendEnvelope(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalJSON(b *testing.B) {
	m, err := DecodeEnvelope(readCapture(b, "redis-5.2-task-basic.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(m.Body)))
	for b.Loop() {
		if _, err := UnmarshalJSON(m.Body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	m, err := DecodeEnvelope(readCapture(b, "redis-5.2-task-basic.json"))
	if err != nil {
		b.Fatal(err)
	}
	v, err := UnmarshalJSON(m.Body)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = AppendJSON(buf[:0], v, JSONTyped); err != nil {
			b.Fatal(err)
		}
	}
}
