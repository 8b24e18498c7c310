// Package protocolv2 maps kombu messages to Celery task messages and back.
//
// Celery's task protocol v2 keeps task metadata in the message headers and
// the call in the body as [args, kwargs, embed]; protocol v1 (still accepted
// by every Celery 5 worker) puts everything into one body dict. Decode
// accepts both, deciding the way a Python worker does; Encode always writes
// v2 in the shape Celery 5.2 sends. The package is pure: it turns
// *kombu.Message values into *Task values and back, without I/O.
//
// Values inside args, kwargs, signatures and stamps follow kombu's value
// model: nil, bool, string, int64 (*big.Int when large), float64, []any,
// map[string]any, time.Time, kombu.Date, kombu.TimeOfDay, kombu.Decimal,
// kombu.UUID and []byte.
package protocolv2
