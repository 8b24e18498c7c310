package loadtest

import (
	"fmt"
	"os"
	"testing"

	"github.com/celerity-go/celerity/internal/timerslack"
)

// TestMain runs the package's tests and benchmarks with the timer slack
// the worker binary and the bench tool run with (see internal/timerslack;
// the test binary re-executes itself once), so that the in-process drains
// measure the worker under the binary's conditions.
// CELERITY_TIMER_SLACK=0 keeps the system's slack.
func TestMain(m *testing.M) {
	if err := timerslack.Setup(os.Getenv(timerslack.EnvVar), timerslack.Default); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest: running with the system's timer slack:", err)
	}
	os.Exit(m.Run())
}
