package protocolv2

import (
	"errors"
	"fmt"

	"github.com/celerity-go/celerity/kombu"
)

// UnknownTaskError reports a protocol v2 message (one with a task header)
// naming a task the worker does not have. Celery's consumer looks the
// name up before it decodes the body, so this wins over any fault in the
// body or the other headers.
type UnknownTaskError struct {
	// Name is the task header ("" when it is not a string).
	Name string
}

func (e *UnknownTaskError) Error() string {
	return "protocolv2: unregistered task " + PyRepr(e.Name)
}

// DecodeKnown is Decode for a worker: a protocol v2 message whose task
// known rejects is an *UnknownTaskError, decided before its body is
// decoded, as Celery decides it. Everything else is as Decode.
//
// Headers that are still JSON text (kombu.DecodeEnvelopeStringLazy) are
// read straight into the Task, without building the message's header
// map. Only the messages Celery publishes today take that path: protocol
// v2 headers, each known header once, a v2 body. The rest (protocol v1,
// hybrid messages, a header given twice) build the map and go through
// Decode, so both paths decide every message alike.
func DecodeKnown(m *kombu.Message, reg *kombu.Registry, known func(name string) bool) (*Task, error) {
	if m == nil {
		return nil, errors.New("protocolv2: nil message")
	}
	if reg == nil {
		return nil, errors.New("protocolv2: nil registry")
	}
	if m.Headers != nil || m.HeadersJSON == "" {
		if name, proto := Peek(m); proto == 2 && !known(name) {
			return nil, &UnknownTaskError{Name: name}
		}
		return Decode(m, reg)
	}
	t := &Task{Protocol: 2, UTC: true}
	var s headerScan
	if err := m.RangeHeaders(func(k string, v *kombu.HeaderValue) error { return s.header(t, k, v) }); err != nil {
		return nil, fmt.Errorf("protocolv2: headers: %w", err)
	}
	if s.seenTask && !known(s.name) {
		return nil, &UnknownTaskError{Name: s.name}
	}
	if !s.seenTask || s.repeated {
		return decodeMap(m, reg)
	}
	body, err := reg.DecodeBody(m)
	if err != nil {
		return nil, fmt.Errorf("protocolv2: decode body: %w", err)
	}
	if _, ok := body.(map[string]any); ok {
		return decodeMap(m, reg) // hybrid: v2 headers, v1 body
	}
	if s.err != nil {
		return nil, s.err
	}
	if err := t.checkRequired(s.seenTask, s.seenID); err != nil {
		return nil, err
	}
	if err := t.setBodyV2(body); err != nil {
		return nil, err
	}
	return t, nil
}

// decodeMap builds m's header map and decodes it with Decode.
func decodeMap(m *kombu.Message, reg *kombu.Registry) (*Task, error) {
	if err := m.DecodeHeaders(); err != nil {
		return nil, fmt.Errorf("protocolv2: headers: %w", err)
	}
	return Decode(m, reg)
}

// headerScan is what DecodeKnown learns walking the header text.
type headerScan struct {
	seenTask, seenID bool
	name             string // the task header, for the registry check
	seen             uint32 // the known headers met (bit per stringField/setHeader case)
	repeated         bool   // a known header came twice: the map path decides
	err              error  // the first invalid header; reported after the body
}

// headerBit numbers the headers setHeader handles by name, so that a
// repeated one is noticed (the map keeps only the last, and only that one
// is checked). Extra keeps the last of a repeated unknown header, as the
// map does, so those need no bit.
func headerBit(k string) uint32 {
	switch k {
	case "task":
		return 1 << 0
	case "id":
		return 1 << 1
	case "lang":
		return 1 << 2
	case "shadow":
		return 1 << 3
	case "group":
		return 1 << 4
	case "root_id":
		return 1 << 5
	case "parent_id":
		return 1 << 6
	case "argsrepr":
		return 1 << 7
	case "kwargsrepr":
		return 1 << 8
	case "origin":
		return 1 << 9
	case "eta":
		return 1 << 10
	case "expires":
		return 1 << 11
	case "group_index":
		return 1 << 12
	case "retries":
		return 1 << 13
	case "replaced_task_nesting":
		return 1 << 14
	case "timelimit":
		return 1 << 15
	case "ignore_result":
		return 1 << 16
	case "stamped_headers":
		return 1 << 17
	case "stamps":
		return 1 << 18
	case "compression":
		return 1 << 19
	case "redelivered":
		return 1 << 20
	}
	return 0
}

func (s *headerScan) header(t *Task, k string, v *kombu.HeaderValue) error {
	if bit := headerBit(k); bit != 0 {
		if s.seen&bit != 0 {
			s.repeated = true
		}
		s.seen |= bit
	}
	switch k {
	case "task":
		s.seenTask = true
		str, ok, err := v.String()
		if err != nil {
			return err
		}
		if !ok {
			val, err := v.Value()
			if err != nil {
				return err
			}
			str, _ = asString(val)
		}
		s.name = str
	case "id":
		s.seenID = true
	}
	if s.err != nil {
		return nil // the scan goes on only for the task header and repeats
	}
	if f, required := t.stringField(k); f != nil {
		str, ok, err := v.String()
		if err != nil {
			return err
		}
		if ok {
			if required && str == "" {
				s.err = invalid(k, "empty")
			} else {
				*f = str
			}
			return nil
		}
	}
	val, err := v.Value()
	if err != nil {
		return err
	}
	s.err = t.setHeader(k, val)
	return nil
}
