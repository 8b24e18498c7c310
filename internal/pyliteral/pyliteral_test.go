package pyliteral

import "testing"

func TestBytes(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{`b'x\x9c\'"\\\n'`, "x\x9c'\"\\\n", true},
		{`b"a'b\t\r"`, "a'b\t\r", true},
		{`b''`, "", true},
		{`'abc'`, "", false},
		{`b'\x9'`, "", false},
		{`b'\q'`, "", false},
		{`b'abc\'`, "", false},
	}
	for _, tc := range tests {
		got, err := Bytes(tc.in)
		if (err == nil) != tc.ok || (tc.ok && string(got) != tc.want) {
			t.Errorf("Bytes(%s) = %q, %v", tc.in, got, err)
		}
	}
}
