package protocolv2

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/kombu"
)

// reprCases mirror testdata/gen_saferepr.py; the expected strings in
// testdata/saferepr.json were produced by Celery 5.2's saferepr(v, 1024).
func reprCases() map[string]any {
	longDict := map[string]any{}
	for i := range 200 {
		longDict["k"+pad3(i)] = int64(i)
	}
	longList := make([]any, 400)
	for i := range longList {
		longList[i] = int64(i)
	}
	u, _ := kombu.ParseUUID("12345678-1234-5678-1234-567812345678")
	return map[string]any{
		"none": nil, "true": true, "false": false, "int": int64(5), "negint": int64(-42),
		"bigint": bigInt("1208925819614629174706176"), "float1": 1.0, "float_small": 1e-05,
		"float_big": 1e16, "float_15": 123456789012345.0, "float_pi": math.Pi, "float_0001": 0.0001,
		"float_neg0": math.Copysign(0, -1), "inf": math.Inf(1), "ninf": math.Inf(-1), "nan": math.NaN(),
		"float_1e22": 1e22, "float_1_5e300": 1.5e300, "float_tiny": 5e-324, "float_01": 0.1,
		"str": "hello", "str_quote": "it's", "str_dq": `say "hi"`, "str_nl": "a\nb", "str_backslash": `a\b`,
		"str_unicode": "héllo ☃", "bytes": []byte("abc"), "bytes_bin": []byte{0xff, 0}, "bytes_quote": []byte("it's"),
		"list": []any{int64(1), "a", nil}, "empty_list": []any{}, "tuple1": Tuple{int64(7)},
		"tuple2": Tuple{int64(2), int64(3)}, "empty_tuple": Tuple{},
		"dict": map[string]any{"x": int64(1), "y": int64(2)}, "empty_dict": map[string]any{},
		"nested":         Tuple{[]any{[]any{[]any{int64(1)}}}},
		"nested_dict":    Tuple{map[string]any{"a": map[string]any{"b": map[string]any{"c": int64(1)}}}},
		"tuple_nested4":  Tuple{Tuple{Tuple{Tuple{int64(1)}}}},
		"dt_utc":         time.Date(2024, 1, 2, 3, 4, 5, 600000000, time.UTC),
		"dt_off":         time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("", 8*3600)),
		"dt_neg":         time.Date(2024, 1, 2, 3, 4, 0, 0, time.FixedZone("", -(5*3600+30*60))),
		"dt_naive":       time.Date(2024, 1, 2, 3, 4, 5, 0, kombu.Naive),
		"dt_naive_min":   time.Date(2024, 1, 2, 0, 0, 0, 0, kombu.Naive),
		"dt_us_zero_sec": time.Date(2024, 1, 2, 3, 4, 0, 5000, kombu.Naive),
		"date":           kombu.Date{Year: 2024, Month: 1, Day: 2},
		"time":           kombu.TimeOfDay{Hour: 3, Minute: 4, Second: 5},
		"time_min":       kombu.TimeOfDay{Hour: 3, Minute: 4},
		"time_us":        kombu.TimeOfDay{Hour: 3, Minute: 4, Nanosecond: 7000},
		"time_zero":      kombu.TimeOfDay{},
		"decimal":        kombu.Decimal("1.10"),
		"uuid":           u,
		"long_str":       Tuple{strings.Repeat("word ", 300)},
		"long_list":      Tuple{longList},
		"long_dict":      Tuple{longDict},
		"long_bytes":     Tuple{[]byte(strings.Repeat("x", 2000))},
		"kw":             map[string]any{"a": []any{int64(1), 2.5, "s"}, "b": map[string]any{"c": nil}},
	}
}

func pad3(i int) string {
	s := "00" + string(appendPad(nil, i, 1))
	return s[len(s)-3:]
}

func TestSafeReprMatchesCelery(t *testing.T) {
	raw, err := os.ReadFile("testdata/saferepr.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]string
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	cases := reprCases()
	if len(cases) != len(want) {
		t.Fatalf("%d Go cases, %d Python cases", len(cases), len(want))
	}
	for name, v := range cases {
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: no Python expectation", name)
			continue
		}
		if got := PyRepr(v); got != w {
			t.Errorf("%s:\n got %q\nwant %q", name, got, w)
		}
	}
}

func TestSafeReprOther(t *testing.T) {
	cases := []struct {
		v      any
		maxlen int
		want   string
	}{
		{[]string{"a", "b"}, 0, "['a', 'b']"},
		{map[string]int{"b": 2, "a": 1}, 0, "{'a': 1, 'b': 2}"},
		{int32(-3), 0, "-3"},
		{uint8(200), 0, "200"},
		{float32(0.5), 0, "0.5"},
		{"abcdefgh", 5, "'abcde...'"},
		{Tuple{"a b c d e f"}, 6, "('a b...', ..."}, // sic: Celery drops the ",)" here
		{kombu.TimeOfDay{Hour: 1, Minute: 2, Aware: true, Offset: 3600}, 0, "datetime.time(1, 2, tzinfo=datetime.timezone(datetime.timedelta(seconds=3600)))"},
		{(*int)(nil), 0, "None"},
		{strings.Repeat("x", 5000), 0, "'" + strings.Repeat("x", 5000) + "'"},
	}
	for _, c := range cases {
		if got := SafeRepr(c.v, c.maxlen); got != c.want {
			t.Errorf("SafeRepr(%#v, %d) = %q, want %q", c.v, c.maxlen, got, c.want)
		}
	}
	eq(t, "ArgsRepr", ArgsRepr([]any{int64(2), int64(3)}), "(2, 3)")
	eq(t, "ArgsRepr single", ArgsRepr([]any{int64(7)}), "(7,)")
	eq(t, "ArgsRepr nil", ArgsRepr(nil), "()")
	eq(t, "KwargsRepr", KwargsRepr(map[string]any{"y": int64(2), "x": int64(1)}), "{'x': 1, 'y': 2}")
}

func TestFormatPyFloat(t *testing.T) {
	cases := map[float64]string{
		0: "0.0", 1: "1.0", -1.5: "-1.5", 100: "100.0", 1e15: "1000000000000000.0", 1e16: "1e+16",
		1.5e16: "1.5e+16", 0.001: "0.001", 1e-4: "0.0001", 1e-5: "1e-05", 1.25e-7: "1.25e-07",
		123.456: "123.456", math.MaxFloat64: "1.7976931348623157e+308", 1e100: "1e+100",
	}
	for f, want := range cases {
		if got := FormatPyFloat(f); got != want {
			t.Errorf("FormatPyFloat(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestParseTime(t *testing.T) {
	p8 := 8 * 3600
	cases := []struct {
		in     string
		want   time.Time
		offset int
		naive  bool
	}{
		{"2026-11-26T07:55:52.549680+00:00", time.Date(2026, 11, 26, 7, 55, 52, 549680000, time.UTC), 0, false},
		{"2026-11-26T07:55:52+00:00", time.Date(2026, 11, 26, 7, 55, 52, 0, time.UTC), 0, false},
		{"2026-11-26T07:55:52Z", time.Date(2026, 11, 26, 7, 55, 52, 0, time.UTC), 0, false},
		{"2026-11-26T07:55:52z", time.Date(2026, 11, 26, 7, 55, 52, 0, time.UTC), 0, false},
		{"2026-11-26T15:55:52+08:00", time.Date(2026, 11, 26, 7, 55, 52, 0, time.UTC), p8, false},
		{"2026-11-26T15:55:52+0800", time.Date(2026, 11, 26, 7, 55, 52, 0, time.UTC), p8, false},
		{"2026-11-26T15:55:52+08", time.Date(2026, 11, 26, 7, 55, 52, 0, time.UTC), p8, false},
		{"2026-11-26T02:25:52-05:30", time.Date(2026, 11, 26, 7, 55, 52, 0, time.UTC), -(5*3600 + 1800), false},
		{"2026-11-26T07:55:52.5", time.Date(2026, 11, 26, 7, 55, 52, 500000000, time.UTC), 0, true},
		{"2026-11-26T07:55:52,123", time.Date(2026, 11, 26, 7, 55, 52, 123000000, time.UTC), 0, true},
		{"2026-11-26T07:55:52.1234567891", time.Date(2026, 11, 26, 7, 55, 52, 123456000, time.UTC), 0, true},
		{"2026-11-26T07:55:52", time.Date(2026, 11, 26, 7, 55, 52, 0, time.UTC), 0, true},
		{"2026-11-26 07:55:52.549680", time.Date(2026, 11, 26, 7, 55, 52, 549680000, time.UTC), 0, true},
		{"2026-11-26T07:55", time.Date(2026, 11, 26, 7, 55, 0, 0, time.UTC), 0, true},
		{"2026-11-26T07", time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC), 0, true},
		{"2026-11-26", time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), 0, true},
		{"20261126T075552Z", time.Date(2026, 11, 26, 7, 55, 52, 0, time.UTC), 0, false},
		{"2026-1-5T07:55:52", time.Date(2026, 1, 5, 7, 55, 52, 0, time.UTC), 0, true},
		{"2024-02-29T00:00:00", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), 0, true},
	}
	for _, c := range cases {
		got, err := ParseTime(c.in)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", c.in, err)
			continue
		}
		if !got.Equal(c.want) {
			t.Errorf("ParseTime(%q) = %v, want %v", c.in, got, c.want)
		}
		if _, off := got.Zone(); off != c.offset {
			t.Errorf("ParseTime(%q) offset %d, want %d", c.in, off, c.offset)
		}
		if IsNaive(got) != c.naive {
			t.Errorf("ParseTime(%q) naive = %v, want %v", c.in, IsNaive(got), c.naive)
		}
		if !c.naive && c.offset == 0 && got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) location %v, want UTC", c.in, got.Location())
		}
	}
	for _, bad := range []string{
		"", "2026", "2026-11", "2026-13-01", "2026-02-30", "2023-02-29", "2026-11-26T24:00:00",
		"2026-11-26T07:60", "2026-11-26T07:55:61", "2026-11-26T07:55:52+25:00", "2026-11-26T07:55:52.",
		"2026-11-26T07:55:52 junk", "0000-01-01", "tomorrow", "2026-11-26T7:55", "2026-11-26T07:55:52+8",
		"2026-11-26é07:55",
	} {
		if got, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) = %v, want error", bad, got)
		}
	}
}

func TestFormatTime(t *testing.T) {
	cases := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 26, 7, 55, 52, 549680000, time.UTC), "2026-11-26T07:55:52.549680+00:00"},
		{time.Date(2026, 11, 26, 7, 55, 52, 0, time.UTC), "2026-11-26T07:55:52+00:00"},
		{time.Date(2026, 11, 26, 7, 55, 52, 1000, time.UTC), "2026-11-26T07:55:52.000001+00:00"},
		{time.Date(2026, 11, 26, 7, 55, 52, 999, time.UTC), "2026-11-26T07:55:52+00:00"},
		{time.Date(2026, 11, 26, 15, 55, 52, 0, time.FixedZone("", 8*3600)), "2026-11-26T15:55:52+08:00"},
		{time.Date(2026, 11, 26, 2, 25, 52, 0, time.FixedZone("", -(5*3600+1800))), "2026-11-26T02:25:52-05:30"},
		{time.Date(2026, 11, 26, 2, 25, 52, 0, time.FixedZone("", 3600+61)), "2026-11-26T02:25:52+01:01:01"},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, kombu.Naive), "2024-01-02T03:04:05"},
		{time.Date(5, 1, 2, 3, 4, 5, 600000000, kombu.Naive), "0005-01-02T03:04:05.600000"},
	}
	for _, c := range cases {
		if got := FormatTime(c.t); got != c.want {
			t.Errorf("FormatTime(%v) = %q, want %q", c.t, got, c.want)
		}
		back, err := ParseTime(c.want)
		if err != nil || !back.Equal(c.t.Truncate(time.Microsecond)) {
			t.Errorf("ParseTime(FormatTime) = %v, %v; want %v", back, err, c.t)
		}
	}
}
