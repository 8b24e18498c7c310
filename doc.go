// Package celerity is a Celery worker written in Go. It consumes the queues
// that Python Celery producers publish to (protocol v2 and v1 inside kombu
// envelopes, on Redis or RabbitMQ), runs each task with a Go handler
// registered under the task's Python name, and writes results in Celery's
// own format, so Python clients keep using AsyncResult.get() unchanged.
//
// A worker is built from a transport (package transports and its
// sub-packages), an optional result backend (package resultstore and its
// sub-packages) and a Config whose fields are named after Celery settings.
// Handlers are registered either typed, with Python-style binding of
// positional and keyword arguments onto a Go struct (Register), or raw
// (Worker.Handle), seeing the decoded arguments directly.
//
// A handler reports its outcome the Celery way: a nil error stores SUCCESS;
// Retry asks for the task to be published again; Reject and Ignore settle
// the message without a result; any other error stores FAILURE, named after
// a Python exception type when the error says so (PyError, ValueError, …).
// A panic becomes a FAILURE whose traceback is the Go stack.
package celerity
