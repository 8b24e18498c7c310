// Package timerslack sets the Linux timer slack of a whole process.
//
// Linux lets a timed sleep of a normal thread end up to its timer slack
// later than asked (50 µs by default), so that wake-ups can be grouped.
// The Go runtime's monitor thread (sysmon) sleeps 20 µs at a time while
// the program is busy, and idle runtime threads nap for microseconds
// while they look for work. On a virtual machine each of those wake-ups
// is a costly context switch: in a profile of a busy worker on two vCPUs
// the monitor thread alone took 15% of the process's CPU time, nearly
// all of it in going to sleep and waking up. A slack of a few hundred microseconds
// lets the kernel stretch those naps, at the price of timers (time.Timer,
// time.Sleep, context deadlines) firing up to the slack later. A thread
// woken by I/O (a broker reply, a channel send) is not delayed.
//
// A thread inherits its slack from the thread that creates it, and the
// runtime starts sysmon before any package of the program runs, so
// setting the slack from Go code reaches only the calling thread. Setup
// therefore sets it on the calling thread and re-executes the program,
// whose every thread then starts with it.
package timerslack

import (
	"fmt"
	"time"
)

// KernelDefault is Linux's timer slack for threads of normal priority.
const KernelDefault = 50 * time.Microsecond

// Default is the slack celerity's programs (the worker, and the bench
// tool that measures it) run with when EnvVar is not set: long enough
// that the runtime's naps stop costing a context switch every few tens
// of microseconds, short next to the worker's own timers (its result
// batching lingers 500µs at most; time limits and ETAs are in seconds).
const Default = 500 * time.Microsecond

// EnvVar names the environment variable the programs of this module read
// their timer slack setting from (see Parse).
const EnvVar = "CELERITY_TIMER_SLACK"

// reexecVar marks a process image that Setup has already re-executed: it
// holds that process's id (exec keeps the id), so the image never
// re-executes again, while a child the program starts (another id) still
// can.
const reexecVar = "CELERITY_TIMER_SLACK_REEXEC"

// SettingError reports a malformed timer slack setting: a usage error,
// as opposed to a slack that could not be applied.
type SettingError struct {
	// Setting is the value of EnvVar.
	Setting string
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("%s=%q: want a duration such as 500us, or 0 to leave the timer slack alone", EnvVar, e.Setting)
}

// Parse reads a timer slack setting: "" means def, "0" means "leave the
// process's slack as it is" (returned as 0), anything else is a Go
// duration of at least 1ns. A malformed setting is a *SettingError.
func Parse(setting string, def time.Duration) (time.Duration, error) {
	if setting == "" {
		return def, nil
	}
	if setting == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(setting)
	if err != nil || d <= 0 {
		return 0, &SettingError{Setting: setting}
	}
	return d, nil
}

// decide reports whether a process whose calling thread runs with slack
// cur must change to want. explicit is true when want was asked for
// rather than defaulted: a default does not override a slack someone
// else chose (systemd's TimerSlackNSec=, a parent process), which shows
// as a slack other than the kernel's default.
func decide(cur, want time.Duration, explicit bool) bool {
	if want <= 0 || cur == want {
		return false
	}
	return explicit || cur == KernelDefault
}

// Setup gives every thread of the process the timer slack named by
// setting (see Parse; def applies when setting is ""). It returns nil at
// once when there is nothing to do: on systems other than Linux, when the
// setting is "0", when the process already runs with that slack, when
// the setting is the default and the process runs with a slack someone
// else chose, and in the image Setup has re-executed. A malformed
// setting is a *SettingError, returned before anything is done. Otherwise it sets
// the calling thread's slack and re-executes the program with the same
// arguments and environment; it returns only if that fails, and the
// process then goes on with its threads' slack unchanged. Call it first
// thing in main, before the program starts goroutines or opens files
// that would not survive the exec.
func Setup(setting string, def time.Duration) error {
	want, err := Parse(setting, def)
	if err != nil {
		return err
	}
	return setup(want, setting != "")
}
