//go:build linux

package timerslack

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	prSetTimerslack = 29 // PR_SET_TIMERSLACK
	prGetTimerslack = 30 // PR_GET_TIMERSLACK
)

// Get returns the calling thread's timer slack; ok is false where the
// system has none.
func Get() (d time.Duration, ok bool) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerslack, 0, 0)
	if errno != 0 {
		return 0, false
	}
	return time.Duration(r), true
}

// SetThread sets the calling thread's timer slack; the caller holds
// runtime.LockOSThread so that the thread stays its own. Threads the
// thread creates from then on, and processes it starts, inherit it.
// Setting 0 gives the thread back its default (the slack it started
// with).
func SetThread(d time.Duration) error { return set(d) }

func set(d time.Duration) error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, uintptr(d), 0); errno != 0 {
		return fmt.Errorf("timer slack: prctl(PR_SET_TIMERSLACK, %s): %w", formatNS(d), errno)
	}
	return nil
}

func setup(want time.Duration, explicit bool) error {
	self := strconv.Itoa(os.Getpid())
	if os.Getenv(reexecVar) == self {
		// This image is the re-executed one: never again, and children
		// must not read the mark as theirs (they have other ids anyway).
		os.Unsetenv(reexecVar)
		return nil
	}
	// The slack set here must be the exec'ing thread's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, ok := Get()
	if !ok || !decide(cur, want, explicit) {
		return nil
	}
	if err := set(want); err != nil {
		return err
	}
	// The mark replaces any the environment already holds: with a
	// duplicate, the new image would read the first one and not
	// recognize itself.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, reexecVar+"=")
	})
	env = append(env, reexecVar+"="+self)
	err := syscall.Exec("/proc/self/exe", os.Args, env)
	// Still here: the exec failed. Put the thread back as it was.
	_ = set(cur)
	return fmt.Errorf("timer slack: re-executing %s: %w", os.Args[0], err)
}

// StartWith starts cmd as cmd.Start does, with the child's timer slack
// set to d: a child inherits the slack of the thread that starts it, so
// the calling thread runs with d for the duration of the start. If the
// slack cannot be set, the command is not started.
func StartWith(cmd *exec.Cmd, d time.Duration) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, ok := Get()
	if !ok || cur == d {
		return cmd.Start()
	}
	if err := set(d); err != nil {
		return err // not started: it would run with the wrong slack
	}
	err := cmd.Start()
	// Setting the thread's own slack back cannot fail where setting it
	// did a moment ago.
	_ = set(cur)
	return err
}

// formatNS is the slack as the kernel shows it in
// /proc/<tid>/timerslack_ns.
func formatNS(d time.Duration) string { return strconv.FormatInt(int64(d), 10) }
