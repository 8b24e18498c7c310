package celerity

import (
	"errors"
	"math/big"
	"reflect"
	"testing"
	"time"
)

type addArgs struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

type optArgs struct {
	Name  string
	Count int            `celery:",optional"`
	Rest  []any          `celery:"*"`
	Extra map[string]any `celery:"**"`
}

type nested struct {
	When  time.Time         `celery:"when"`
	Items []float64         `celery:"items"`
	Tags  map[string]string `celery:"tags"`
	Ptr   *int              `celery:"ptr,optional"`
	Inner struct {
		A int `celery:"a"`
	} `celery:"inner"`
}

func TestBindPythonSemantics(t *testing.T) {
	addB, err := newBinder(reflect.TypeFor[addArgs](), "tasks.add")
	if err != nil {
		t.Fatal(err)
	}
	optB, err := newBinder(reflect.TypeFor[optArgs](), "tasks.opt")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		b       *binder
		args    []any
		kwargs  map[string]any
		want    any
		wantErr string
	}{
		{"positional", addB, []any{int64(2), int64(3)}, nil, addArgs{2, 3}, ""},
		{"keywords", addB, nil, map[string]any{"x": int64(2), "y": int64(3)}, addArgs{2, 3}, ""},
		{"mixed", addB, []any{int64(2)}, map[string]any{"y": int64(3)}, addArgs{2, 3}, ""},
		{"missing one", addB, []any{int64(1)}, nil, nil, "add() missing 1 required positional argument: 'y'"},
		{"missing two", addB, nil, nil, nil, "add() missing 2 required positional arguments: 'x' and 'y'"},
		{"too many", addB, []any{int64(1), int64(2), int64(3)}, nil, nil, "add() takes 2 positional arguments but 3 were given"},
		{"multiple values", addB, []any{int64(1)}, map[string]any{"x": int64(2)}, nil, "add() got multiple values for argument 'x'"},
		{"unexpected kw", addB, []any{int64(1), int64(2)}, map[string]any{"z": int64(2)}, nil, "add() got an unexpected keyword argument 'z'"},
		{"wrong type", addB, []any{"a", int64(2)}, nil, nil, "add() argument 'x': expected int, got str"},
		{"overflow", addB, []any{new(big.Int).Lsh(big.NewInt(1), 70), int64(2)}, nil, nil, "add() argument 'x': expected int, got int"},
		{"optional omitted", optB, []any{"n"}, nil, optArgs{Name: "n"}, ""},
		{"var args and kwargs", optB, []any{"n", int64(2), "r1", int64(7)}, map[string]any{"k": true},
			optArgs{Name: "n", Count: 2, Rest: []any{"r1", int64(7)}, Extra: map[string]any{"k": true}}, ""},
		{"too many with optional", addB, []any{int64(1), int64(2), int64(3), int64(4)}, nil, nil, "add() takes 2 positional arguments but 4 were given"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := reflect.New(tc.b.paramsType())
			err := tc.b.bind(tc.args, tc.kwargs, dst.Elem())
			if tc.wantErr != "" {
				var pe *PyError
				if !errors.As(err, &pe) || pe.Type != "TypeError" || pe.Module != "builtins" || pe.Args[0] != tc.wantErr {
					t.Fatalf("got %v, want TypeError(%q)", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := dst.Elem().Interface(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestBindNestedValues(t *testing.T) {
	b, err := newBinder(reflect.TypeFor[nested](), "t.nested")
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var got nested
	err = b.bind([]any{when, []any{int64(1), 2.5}, map[string]any{"a": "b"}}, map[string]any{
		"ptr": int64(9), "inner": map[string]any{"a": int64(4)},
	}, reflect.ValueOf(&got).Elem())
	if err != nil {
		t.Fatal(err)
	}
	if !got.When.Equal(when) || !reflect.DeepEqual(got.Items, []float64{1, 2.5}) ||
		got.Tags["a"] != "b" || got.Ptr == nil || *got.Ptr != 9 || got.Inner.A != 4 {
		t.Fatalf("got %+v", got)
	}
}

func TestNewBinderRejectsBadTypes(t *testing.T) {
	if _, err := newBinder(reflect.TypeFor[int](), "x"); err == nil {
		t.Error("non-struct accepted")
	}
	type badVar struct {
		Rest []string `celery:"*"`
	}
	if _, err := newBinder(reflect.TypeFor[badVar](), "x"); err == nil {
		t.Error("* on []string accepted")
	}
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{"X": "x", "FooBar": "foo_bar", "HTTPCode": "http_code", "UserID": "user_id"} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}
