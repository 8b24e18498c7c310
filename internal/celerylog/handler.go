// Package celerylog is a log/slog handler that prints records in the shape
// of Celery's worker log: "[2026-11-26 10:00:00,123: INFO/MainProcess] msg".
// Structured attributes stay available to other handlers; this one prints
// only the message, plus a traceback attribute on the following lines.
package celerylog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// Handler writes Celery-shaped lines to an io.Writer.
type Handler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	proc  string
}

// New returns a handler writing records at or above level to w.
func New(w io.Writer, level slog.Leveler) *Handler {
	return &Handler{mu: &sync.Mutex{}, w: w, level: level, proc: "MainProcess"}
}

// Enabled reports whether level is logged.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// LevelName maps slog levels to Celery's (logging) names. A record may
// carry level="CRITICAL" to be shown as such.
func LevelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

// Handle prints one record.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	level := LevelName(r.Level)
	var tb string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "level":
			level = a.Value.String()
		case "traceback":
			tb = a.Value.String()
		}
		return true
	})
	t := r.Time
	line := fmt.Sprintf("[%s,%03d: %s/%s] %s\n", t.Format("2006-01-02 15:04:05"), t.Nanosecond()/1e6, level, h.proc, r.Message)
	if tb != "" {
		line += tb
		if tb[len(tb)-1] != '\n' {
			line += "\n"
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, line)
	return err
}

// WithAttrs returns the handler itself: attributes are not printed.
func (h *Handler) WithAttrs([]slog.Attr) slog.Handler { return h }

// WithGroup returns the handler itself.
func (h *Handler) WithGroup(string) slog.Handler { return h }
