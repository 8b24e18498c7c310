//go:build !linux

package timerslack

import (
	"os/exec"
	"time"
)

// Get returns the calling thread's timer slack; ok is false where the
// system has none (here).
func Get() (d time.Duration, ok bool) { return 0, false }

func setup(time.Duration, bool) error { return nil }

// SetThread sets the calling thread's timer slack; this system has none.
func SetThread(time.Duration) error { return nil }

// StartWith starts cmd; this system has no timer slack to set.
func StartWith(cmd *exec.Cmd, _ time.Duration) error { return cmd.Start() }
