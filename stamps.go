package celerity

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/celerity-go/celerity/protocolv2"
)

// revokedStamps is Celery 5.3+'s revoked_stamps: stamp header name →
// revoked values, filled by revoke_by_stamped_headers and kept for the
// worker's life, as Celery keeps them.
type revokedStamps struct {
	mu  sync.Mutex
	any atomic.Bool // set once a stamp was revoked: the hot path checks nothing before
	m   map[string][]any
}

func (s *revokedStamps) add(headers map[string][]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]any{}
	}
	for h, vs := range headers {
		s.m[h] = append(s.m[h], vs...)
	}
	s.any.Store(len(s.m) > 0)
}

// match reports whether t is revoked by one of its stamps, as Celery's
// Request.revoked decides: the first of the task's stamped headers that
// has revoked values is compared (each value of a list stamp, or the
// stamp itself), and the matching header and value are returned.
func (s *revokedStamps) match(t *protocolv2.Task) (header string, value any, ok bool) {
	if !s.any.Load() || len(t.StampedHeaders) == 0 {
		return "", nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range t.StampedHeaders {
		revoked, isRevoked := s.m[h]
		if !isRevoked {
			continue
		}
		stamp := t.Stamps[h]
		if list, isList := stamp.([]any); isList {
			for _, v := range list {
				if containsValue(revoked, v) {
					return h, v, true
				}
			}
			return "", nil, false
		}
		return h, stamp, containsValue(revoked, stamp)
	}
	return "", nil, false
}

// containsValue is Python's `v in values` for the values stamps hold.
func containsValue(values []any, v any) bool {
	return slices.ContainsFunc(values, func(x any) bool { return protocolv2.PyEqual(x, v) })
}

// RevokeByStampedHeaders is Celery 5.3+'s revoke_by_stamped_headers:
// tasks carrying one of the given stamp values (stamp header name →
// values) are revoked when they are received or about to start. With
// terminate, running tasks whose stamps match have their context
// cancelled with cause ErrRevoked; the stamp values that matched are
// returned by header.
func (w *Worker) RevokeByStampedHeaders(headers map[string][]any, terminate bool, signal string) (terminated map[string][]any) {
	w.stamps.add(headers)
	if len(headers) > 0 {
		w.log.Info("Tasks flagged as revoked by stamped headers: "+protocolv2.PyRepr(stampsArg(headers)), "headers", headers)
	}
	if !terminate {
		return nil
	}
	tk := w.track
	tk.mu.Lock()
	defer tk.mu.Unlock()
	for j, r := range tk.active {
		if r.cancel == nil || len(j.t.Stamps) == 0 {
			continue
		}
		hit := false
		for h, want := range headers {
			stamp, has := j.t.Stamps[h]
			if !has {
				continue
			}
			actual, isList := stamp.([]any)
			if !isList {
				actual = []any{stamp}
			}
			for _, v := range actual {
				if containsValue(want, v) {
					if terminated == nil {
						terminated = map[string][]any{}
					}
					if !containsValue(terminated[h], v) {
						terminated[h] = append(terminated[h], v)
					}
					hit = true
				}
			}
		}
		if hit {
			j.terminated.Store(true)
			r.cancel(ErrRevoked)
		}
	}
	return terminated
}

// stampsArg is headers as a map for PyRepr.
func stampsArg(headers map[string][]any) map[string]any {
	m := make(map[string]any, len(headers))
	for h, vs := range headers {
		m[h] = vs
	}
	return m
}

// revokedByStamp checks j against the revoked stamps and remembers the
// match for the log line.
func (p *pipeline) revokedByStamp(j *job) bool {
	h, v, ok := p.w.stamps.match(j.t)
	if ok {
		j.revokedBy = "{" + protocolv2.PyRepr(h) + ": " + protocolv2.PyRepr(v) + "}"
	}
	return ok
}
