package protocolv2

import (
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/celerity-go/celerity/internal/pyliteral"
	"github.com/celerity-go/celerity/kombu"
)

const capturesDir = "../testdata/captures"

func readCapture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(capturesDir, name))
	if err != nil {
		tb.Fatalf("read capture: %v", err)
	}
	return b
}

// loadMessage returns the kombu message of a capture: Redis captures are
// envelopes; amqp-* captures are py-amqp's decoded view, mapped the way the
// AMQP transport maps a delivery.
func loadMessage(tb testing.TB, name string) *kombu.Message {
	tb.Helper()
	raw := readCapture(tb, name)
	if filepath.Ext(name) == ".json" && len(name) > 5 && name[:5] == "amqp-" {
		return amqpMessage(tb, raw)
	}
	m, err := kombu.DecodeEnvelope(raw)
	if err != nil {
		tb.Fatalf("DecodeEnvelope(%s): %v", name, err)
	}
	return m
}

type amqpCapture struct {
	DeliveryInfo struct {
		Redelivered bool   `json:"redelivered"`
		Exchange    string `json:"exchange"`
		RoutingKey  string `json:"routing_key"`
	} `json:"delivery_info"`
	Properties struct {
		ContentType     string `json:"content_type"`
		ContentEncoding string `json:"content_encoding"`
		DeliveryMode    uint8  `json:"delivery_mode"`
		Priority        int    `json:"priority"`
		CorrelationID   string `json:"correlation_id"`
		ReplyTo         string `json:"reply_to"`
		Expiration      string `json:"expiration"`
	} `json:"properties"`
	Headers  json.RawMessage `json:"application_headers"`
	Body     string          `json:"body"`
	BodyType string          `json:"body_type"`
}

func amqpMessage(tb testing.TB, raw []byte) *kombu.Message {
	tb.Helper()
	var c amqpCapture
	if err := json.Unmarshal(raw, &c); err != nil {
		tb.Fatalf("amqp capture: %v", err)
	}
	hv, err := kombu.UnmarshalJSON(c.Headers)
	if err != nil {
		tb.Fatalf("amqp headers: %v", err)
	}
	body := []byte(c.Body)
	if c.BodyType == "bytes" {
		if body, err = pyliteral.Bytes(c.Body); err != nil {
			tb.Fatalf("amqp body: %v", err)
		}
	}
	return &kombu.Message{
		Body:            body,
		ContentType:     c.Properties.ContentType,
		ContentEncoding: c.Properties.ContentEncoding,
		Headers:         hv.(map[string]any),
		Properties: kombu.Properties{
			CorrelationID: c.Properties.CorrelationID,
			ReplyTo:       c.Properties.ReplyTo,
			DeliveryMode:  c.Properties.DeliveryMode,
			Priority:      c.Properties.Priority,
			Expiration:    c.Properties.Expiration,
			DeliveryInfo: kombu.DeliveryInfo{
				Exchange:    c.DeliveryInfo.Exchange,
				RoutingKey:  c.DeliveryInfo.RoutingKey,
				Redelivered: c.DeliveryInfo.Redelivered,
			},
		},
	}
}

func newRegistry(tb testing.TB) *kombu.Registry {
	tb.Helper()
	r, err := kombu.NewRegistry([]string{"json", "msgpack", "yaml"})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func intp(i int) *int { return &i }

func bigInt(s string) *big.Int {
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return b
}
