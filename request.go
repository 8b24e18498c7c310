package celerity

import (
	"time"

	"github.com/celerity-go/celerity/protocolv2"
)

// DeliveryInfo tells where the task message came from.
type DeliveryInfo struct {
	Exchange    string
	RoutingKey  string
	Priority    int
	Redelivered bool
}

// Request is what the worker understood of one task message: Celery's
// task.request. Handlers read it; they must not modify it.
type Request struct {
	ID       string
	Name     string
	Args     []any
	Kwargs   map[string]any
	Retries  int
	ETA      time.Time // zero when the task had no ETA
	Expires  time.Time // zero when the task never expires
	RootID   string
	ParentID string
	Group    string
	// GroupIndex is the position in the group, or nil.
	GroupIndex    *int
	ReplyTo       string
	CorrelationID string
	// Hostname is the worker's node name (celery@host).
	Hostname     string
	DeliveryInfo DeliveryInfo
	// Headers holds custom headers the producer added.
	Headers map[string]any
	// Message is the fully decoded task message.
	Message *protocolv2.Task
}
