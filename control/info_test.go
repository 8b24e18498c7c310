package control

import (
	"reflect"
	"testing"

	"github.com/celerity-go/celerity"
)

// A task without args or kwargs is reported with [] and {}, as Celery's
// Request.info does, never null.
func TestInfoEmptyArgs(t *testing.T) {
	n := &Node{hostname: "celery@h"}
	got := n.info(&celerity.TaskInfo{ID: "x", Name: "t"}, false)
	if a, ok := got["args"].([]any); !ok || a == nil || len(a) != 0 {
		t.Errorf("args %#v, want an empty list", got["args"])
	}
	if k, ok := got["kwargs"].(map[string]any); !ok || k == nil || len(k) != 0 {
		t.Errorf("kwargs %#v, want an empty dict", got["kwargs"])
	}
	if !reflect.DeepEqual(got["hostname"], "celery@h") {
		t.Errorf("hostname %v", got["hostname"])
	}
}
