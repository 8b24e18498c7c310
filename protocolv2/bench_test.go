package protocolv2

import (
	"testing"

	"github.com/celerity-go/celerity/kombu"
)

// BenchmarkDecodeTask measures envelope bytes -> Task for the basic capture.
func BenchmarkDecodeTask(b *testing.B) {
	raw := readCapture(b, "redis-5.2-task-basic.json")
	reg := newRegistry(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		m, err := kombu.DecodeEnvelope(raw)
		if err != nil {
			b.Fatal(err)
		}
		task, err := Decode(m, reg)
		if err != nil || task.Name != "wiretasks.add" {
			b.Fatal(task, err)
		}
	}
}

// BenchmarkEncodeTask measures Task -> envelope bytes (argsrepr computed,
// fresh delivery tag).
func BenchmarkEncodeTask(b *testing.B) {
	task := &Task{ID: "11111111-1111-4111-8111-111111111111", Name: "wiretasks.add", Args: []any{int64(2), int64(3)},
		Kwargs: map[string]any{}, Origin: "gen1@host"}
	opt := EncodeOptions{ReplyTo: "f6727ea5-3d15-3fd5-92da-b1eb3839c3de", RoutingKey: "wire_q"}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		m, err := Encode(task, opt)
		if err != nil {
			b.Fatal(err)
		}
		if buf, err = kombu.AppendEnvelope(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeKnown measures a Redis reply -> Task as the worker
// decodes it: the envelope from a string, its headers built into a map
// (eager) or read straight into the task (lazy), then DecodeKnown.
func BenchmarkDecodeKnown(b *testing.B) {
	raw := string(readCapture(b, "redis-5.2-task-basic.json"))
	reg := newRegistry(b)
	for _, c := range []struct {
		name   string
		decode func(string) (*kombu.Message, error)
	}{{"eager", kombu.DecodeEnvelopeString}, {"lazy", kombu.DecodeEnvelopeStringLazy}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				m, err := c.decode(raw)
				if err != nil {
					b.Fatal(err)
				}
				task, err := DecodeKnown(m, reg, allKnown)
				if err != nil || task.Name != "wiretasks.add" {
					b.Fatal(task, err)
				}
			}
		})
	}
}
