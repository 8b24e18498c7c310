package kombu

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestUnmarshalJSONValueModel(t *testing.T) {
	big1, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	cases := []struct {
		in   string
		want any
	}{
		{`null`, nil},
		{`true`, true},
		{`"h\u00e9\ud83d\ude00\n"`, "h\u00e9\U0001F600\n"},
		{`9223372036854775807`, int64(math.MaxInt64)},
		{`-9223372036854775808`, int64(math.MinInt64)},
		{`123456789012345678901234567890`, big1},
		{`1.0`, 1.0},
		{`-0`, int64(0)},
		{`1e2`, 100.0},
		{`1e400`, math.Inf(1)},
		{`-Infinity`, math.Inf(-1)},
		{` [1, {"a": [ ]} ] `, []any{int64(1), map[string]any{"a": []any{}}}},
		{`{"__type__": "decimal", "__value__": "1.10"}`, Decimal("1.10")},
		{`{"__type__": "datetime", "__value__": "2024-01-02T03:04:05.600000+00:00"}`, time.Date(2024, 1, 2, 3, 4, 5, 6e8, time.UTC)},
		{`{"__type__": "datetime", "__value__": "2024-01-02T03:04:05+05:30"}`, time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("", 19800))},
		{`{"__type__": "datetime", "__value__": "2024-01-02T03:04:05Z"}`, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{`{"__type__": "datetime", "__value__": "2024-01-02 03:04"}`, time.Date(2024, 1, 2, 3, 4, 0, 0, Naive)},
		{`{"__type__": "date", "__value__": "2024-02-29"}`, Date{2024, time.February, 29}},
		{`{"__type__": "time", "__value__": "03:04:05.000001-02:00"}`, TimeOfDay{3, 4, 5, 1000, true, -7200}},
		{`{"__type__": "uuid", "__value__": {"hex": "12345678123456781234567812345678"}}`, mustUUID("12345678-1234-5678-1234-567812345678")},
		{`{"__type__": "bytes", "__value__": "abc"}`, []byte("abc")},
		{`{"__type__": "base64", "__value__": "/wA="}`, []byte{0xff, 0}},
		// Not exactly the two marker keys: stays a dict.
		{`{"__type__": "nope", "__value__": 1, "x": 2}`, map[string]any{"__type__": "nope", "__value__": int64(1), "x": int64(2)}},
		{`{"__type__": "decimal"}`, map[string]any{"__type__": "decimal"}},
	}
	for _, c := range cases {
		got, err := UnmarshalJSON([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !valuesEqual(got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.in, got, c.want)
		}
	}
}

func TestUnmarshalJSONErrors(t *testing.T) {
	for _, in := range []string{
		``, `{`, `[1,]`, `{"a" 1}`, `01`, `1.`, `"abc`, "\"a\x01\"", `"\x"`, `tru`, `[1] x`, "\"\xff\"",
		`{"__type__": "set", "__value__": [1]}`,
		`{"__type__": 1, "__value__": 1}`,
		`{"__type__": "datetime", "__value__": "yesterday"}`,
		`{"__type__": "decimal", "__value__": "1.2.3"}`,
		`{"__type__": "uuid", "__value__": {"hex": "xyz"}}`,
		`{"__type__": "base64", "__value__": "abc"}`,
	} {
		_, err := UnmarshalJSON([]byte(in))
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%q: err = %v, want *DecodeError", in, err)
		}
	}
	deep := make([]byte, 0, 2*maxJSONDepth+10)
	for i := 0; i <= maxJSONDepth; i++ {
		deep = append(deep, '[')
	}
	if _, err := UnmarshalJSON(deep); err == nil {
		t.Error("deep nesting accepted")
	}
}

type jsonStruct struct {
	A int    `json:"a"`
	B string `json:"b,omitempty"`
}

type myInt int16

func TestAppendJSON(t *testing.T) {
	u := mustUUID("12345678-1234-5678-1234-567812345678")
	ist := time.FixedZone("IST", 19800)
	cases := []struct {
		v     any
		plain string
		typed string
	}{
		{nil, `null`, `null`},
		{[]any{int8(-1), uint64(math.MaxUint64), myInt(7), float32(0.1), 2.0, 1e16, 1e-5, 0.0001, math.NaN()},
			`[-1, 18446744073709551615, 7, 0.1, 2.0, 1e+16, 1e-05, 0.0001, NaN]`, ""},
		{"\"\\\x00\x7f\u00e9\U0001F600", `"\"\\\u0000\u007f\u00e9\ud83d\ude00"`, ""},
		{map[string]int{"b": 1, "a": 2}, `{"a": 2, "b": 1}`, ""},
		{map[int]string{2: "x"}, `{"2": "x"}`, ""},
		{[]string{"x"}, `["x"]`, ""},
		{jsonStruct{A: 1}, `{"a":1}`, ""},
		{&jsonStruct{A: 2, B: "c"}, `{"a":2,"b":"c"}`, ""},
		{new(big.Int).Lsh(big.NewInt(1), 70), `1180591620717411303424`, ""},
		{time.Date(2024, 1, 2, 3, 4, 5, 600000000, time.UTC),
			`"2024-01-02T03:04:05.600000Z"`,
			`{"__type__": "datetime", "__value__": "2024-01-02T03:04:05.600000+00:00"}`},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, ist),
			`"2024-01-02T03:04:05+05:30"`,
			`{"__type__": "datetime", "__value__": "2024-01-02T03:04:05+05:30"}`},
		{time.Date(2024, 1, 2, 3, 4, 5, 999, Naive), `"2024-01-02T03:04:05"`,
			`{"__type__": "datetime", "__value__": "2024-01-02T03:04:05"}`},
		{Date{2024, 1, 2}, `"2024-01-02T00:00:00"`, `{"__type__": "date", "__value__": "2024-01-02"}`},
		{TimeOfDay{Hour: 3, Minute: 4, Second: 5, Nanosecond: 600000000, Aware: true},
			`"03:04:05.600000+00:00"`, `{"__type__": "time", "__value__": "03:04:05.600000+00:00"}`},
		{Decimal("1.10"), `"1.10"`, `{"__type__": "decimal", "__value__": "1.10"}`},
		{u, `"12345678-1234-5678-1234-567812345678"`,
			`{"__type__": "uuid", "__value__": {"hex": "12345678123456781234567812345678"}}`},
		{[]byte("abc"), `"abc"`, `{"__type__": "bytes", "__value__": "abc"}`},
	}
	for _, c := range cases {
		got, err := AppendJSON(nil, c.v, JSONPlain)
		if err != nil || string(got) != c.plain {
			t.Errorf("plain %#v: got %s, %v; want %s", c.v, got, err, c.plain)
		}
		typed := c.typed
		if typed == "" {
			typed = c.plain
		}
		got, err = AppendJSON([]byte("x"), c.v, JSONTyped)
		if err != nil || string(got) != "x"+typed {
			t.Errorf("typed %#v: got %s, %v; want x%s", c.v, got, err, typed)
		}
	}
}

func TestAppendJSONErrors(t *testing.T) {
	cyc := []any{nil}
	cyc[0] = cyc
	for _, v := range []any{
		make(chan int),
		[]any{func() {}},
		map[[2]int]int{{1, 2}: 3},
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		cyc,
	} {
		_, err := AppendJSON(nil, v, JSONTyped)
		var ee *EncodeError
		if !errors.As(err, &ee) {
			t.Errorf("%T: err = %v, want *EncodeError", v, err)
		}
	}
	// Non-UTF-8 bytes: typed mode uses the base64 marker, plain mode refuses.
	got, err := AppendJSON(nil, []byte{0xff, 0}, JSONTyped)
	if err != nil || string(got) != `{"__type__": "base64", "__value__": "/wA="}` {
		t.Errorf("typed bytes: %s %v", got, err)
	}
	if _, err := AppendJSON(nil, []byte{0xff}, JSONPlain); err == nil {
		t.Error("plain mode accepted non-UTF-8 bytes")
	}
}

func TestJSONRoundTripTyped(t *testing.T) {
	v := []any{
		time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.FixedZone("", -3600)),
		time.Date(1, 1, 1, 0, 0, 0, 0, Naive),
		Date{9999, 12, 31}, TimeOfDay{Hour: 23, Minute: 59, Second: 59, Nanosecond: 999999000},
		Decimal("-1E+3"), mustUUID("00000000-0000-0000-0000-000000000001"),
		[]byte{}, []byte{0x80}, map[string]any{"k": []any{1.5, int64(-3), "s", nil, false}},
	}
	b, err := AppendJSON(nil, v, JSONTyped)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !valuesEqual(got, v) {
		t.Errorf("round trip\n got %#v\nwant %#v\njson %s", got, v, b)
	}
}

func TestValueTypesStrings(t *testing.T) {
	u := mustUUID("{urn:uuid:12345678-1234-5678-1234-567812345678}")
	if u.String() != "12345678-1234-5678-1234-567812345678" || u.Hex() != "12345678123456781234567812345678" {
		t.Errorf("uuid %s %s", u, u.Hex())
	}
	if _, err := ParseUUID("1234"); err == nil {
		t.Error("short uuid accepted")
	}
	if s := (Date{2024, 3, 4}).String(); s != "2024-03-04" {
		t.Errorf("date %s", s)
	}
	if s := (TimeOfDay{Hour: 1, Minute: 2, Second: 3, Aware: true, Offset: -(5*3600 + 30*60 + 15)}).String(); s != "01:02:03-05:30:15" {
		t.Errorf("time %s", s)
	}
}

var (
	posInf = math.Inf(1)
	negInf = math.Inf(-1)
)

// TestPlainWord checks the eight-bytes-at-a-time string scan against a
// byte-by-byte reference: every byte value in every position, and random
// words.
func TestPlainWord(t *testing.T) {
	ref := func(w uint64) bool {
		for i := 0; i < 8; i++ {
			c := byte(w >> (8 * i))
			if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
				return false
			}
		}
		return true
	}
	const plain = 0x6161616161616161 // "aaaaaaaa"
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			w := plain&^(0xff<<(8*pos)) | uint64(c)<<(8*pos)
			if got, want := plainWord(w), ref(w); got != want {
				t.Fatalf("plainWord(%#x) = %v, want %v", w, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		// Mostly printable ASCII, like real payloads, with a one in 40
		// chance per byte of any value at all.
		var w uint64
		for i := 0; i < 8; i++ {
			c := uint64(0x20 + r.IntN(0x5f))
			if r.IntN(40) == 0 {
				c = uint64(r.IntN(256))
			}
			w |= c << (8 * i)
		}
		if got, want := plainWord(w), ref(w); got != want {
			t.Fatalf("plainWord(%#x) = %v, want %v", w, got, want)
		}
	}
}

// TestJSONStringScanPositions puts each kind of special byte at every
// position of strings of every length around the eight-byte scan's word
// size, and checks the decoded value or error.
func TestJSONStringScanPositions(t *testing.T) {
	for n := 0; n <= 26; n++ {
		for pos := 0; pos < n; pos++ {
			for _, tc := range []struct {
				name    string
				ins     string // replaces the byte at pos
				want    string // replaces it in the decoded value
				wantErr bool
			}{
				{"plain", "b", "b", false},
				{"escape", `\n`, "\n", false},
				{"escaped quote", `\"`, `"`, false},
				{"unicode escape", `\u00e9`, "é", false},
				{"utf-8", "é", "é", false},
				{"control", "\x01", "", true},
				{"bad utf-8", "\xff", "", true},
			} {
				body := strings.Repeat("a", pos) + tc.ins + strings.Repeat("a", n-pos-1)
				v, err := UnmarshalJSON([]byte(`"` + body + `"`))
				if tc.wantErr {
					if err == nil {
						t.Fatalf("%s at %d of %d: decoded %q, want an error", tc.name, pos, n, v)
					}
					continue
				}
				want := strings.Repeat("a", pos) + tc.want + strings.Repeat("a", n-pos-1)
				if err != nil || v != want {
					t.Fatalf("%s at %d of %d: got %q, %v; want %q", tc.name, pos, n, v, err, want)
				}
			}
		}
	}
}
