package memory

import (
	"sync"
	"testing"

	"github.com/celerity-go/celerity/transports"
	"github.com/celerity-go/celerity/transports/transporttest"
)

func TestConformance(t *testing.T) {
	var brokers sync.Map // *testing.T -> *Broker
	brokerFor := func(t *testing.T) *Broker {
		b, _ := brokers.LoadOrStore(t, NewBroker())
		return b.(*Broker)
	}
	transporttest.Run(t, func(t *testing.T) transports.Transport {
		return brokerFor(t).Transport()
	}, transporttest.Options{
		Priority: transporttest.LowerFirst,
		Recover: func(t *testing.T, tr transports.Transport) {
			tr.(*Transport).Broker().Recover()
		},
	})
}

func TestTopicMatch(t *testing.T) {
	tests := []struct {
		pattern, key string
		want         bool
	}{
		{"a.b", "a.b", true},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.#", "a", true},
		{"a.#", "a.b.c", true},
		{"#", "", true},
		{"#.c", "a.b.c", true},
		{"*.c", "a.b.c", false},
		{"a.b", "a.c", false},
	}
	for _, tc := range tests {
		if got := topicMatch(tc.pattern, tc.key); got != tc.want {
			t.Errorf("topicMatch(%q, %q) = %v, want %v", tc.pattern, tc.key, got, tc.want)
		}
	}
}
