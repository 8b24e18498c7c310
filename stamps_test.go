package celerity

import (
	"context"
	"reflect"
	"testing"

	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/resultstore"
)

// revoke_by_stamped_headers revokes received tasks whose stamp (or one
// value of a list stamp) was revoked, leaves the others, and with
// terminate cancels a running task whose stamps match.
func TestRevokeByStampedHeaders(t *testing.T) {
	h, g := gatedHarness(t, Config{Concurrency: 2})
	if err := h.w.Handle("t.add", func(context.Context, *Request) (any, error) { return int64(3), nil }); err != nil {
		t.Fatal(err)
	}
	h.start()
	if got := h.w.RevokeByStampedHeaders(map[string][]any{"mystamp": {"v1", int64(7)}}, false, ""); got != nil {
		t.Errorf("without terminate: %v", got)
	}
	stamped := func(name string, stamps map[string]any) string {
		task := &protocolv2.Task{Name: name, StampedHeaders: []string{"mystamp", "run"}, Stamps: stamps}
		h.send(task, protocolv2.EncodeOptions{})
		return task.ID
	}
	for _, c := range []struct {
		stamps map[string]any
		want   string
	}{
		{map[string]any{"mystamp": "v1"}, resultstore.Revoked},
		{map[string]any{"mystamp": "v2"}, resultstore.Success},
		{map[string]any{"mystamp": []any{"x", "v1"}}, resultstore.Revoked},
		{map[string]any{"mystamp": 7.0}, resultstore.Revoked}, // 7 == 7.0, as in Python
		{map[string]any{"other": "v1"}, resultstore.Success},
		{nil, resultstore.Success},
	} {
		id := stamped("t.add", c.stamps)
		if m := h.waitFinal(id); m.Status != c.want {
			t.Errorf("stamps %v: %s, want %s", c.stamps, m.Status, c.want)
		}
	}

	long := stamped("t.gate", map[string]any{"run": "long"})
	h.waitFor("the stamped task to run", func() bool { r, _, _ := g.state(); return r == 1 })
	got := h.w.RevokeByStampedHeaders(map[string][]any{"run": {"long", "other"}}, true, "SIGTERM")
	if want := map[string][]any{"run": {"long"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("terminated %v, want %v", got, want)
	}
	g.release(1)
	m := h.waitFinal(long)
	if e := excOf(t, m); m.Status != resultstore.Revoked || !reflect.DeepEqual(e.Message, []any{"terminated"}) {
		t.Errorf("terminated task: %s %+v", m.Status, e)
	}
}
