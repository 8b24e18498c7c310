package timerslack

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	const def = 700 * time.Microsecond
	for _, c := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"", def, false},
		{"0", 0, false},
		{"1ms", time.Millisecond, false},
		{"250us", 250 * time.Microsecond, false},
		{"250µs", 250 * time.Microsecond, false},
		{"-1ms", 0, true},
		{"0s", 0, true},
		{"500", 0, true},
		{"fast", 0, true},
	} {
		got, err := Parse(c.in, def)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("Parse(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.err)
		}
		if se, ok := err.(*SettingError); c.err && (!ok || se.Setting != c.in) {
			t.Errorf("Parse(%q) error %T %v, want a *SettingError naming the setting", c.in, err, err)
		}
	}
}

func TestDecide(t *testing.T) {
	const us = time.Microsecond
	for _, c := range []struct {
		cur, want time.Duration
		explicit  bool
		change    bool
	}{
		{KernelDefault, 500 * us, false, true}, // the default over the kernel's
		{KernelDefault, 500 * us, true, true},  // asked for
		{80 * us, 500 * us, false, false},      // someone chose 80µs: a default does not override it
		{80 * us, 500 * us, true, true},        // but an explicit setting does
		{500 * us, 500 * us, false, false},     // already there (the re-executed image)
		{500 * us, 500 * us, true, false},      // likewise
		{KernelDefault, 0, true, false},        // "0": leave it
		{KernelDefault, KernelDefault, true, false},
	} {
		if got := decide(c.cur, c.want, c.explicit); got != c.change {
			t.Errorf("decide(%v, %v, explicit %v) = %v, want %v", c.cur, c.want, c.explicit, got, c.change)
		}
	}
}
