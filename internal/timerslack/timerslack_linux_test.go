//go:build linux

package timerslack

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as the program under test: with helperVar set,
// TestMain runs Setup with the setting in settingVar and a default of
// helperDefault, then reports the slack of the process's threads.
const (
	helperVar     = "TIMERSLACK_TEST_HELPER"
	settingVar    = "TIMERSLACK_TEST_SETTING"
	helperDefault = 700 * time.Microsecond
)

func TestMain(m *testing.M) {
	if os.Getenv(helperVar) == "1" {
		helper()
		return
	}
	os.Exit(m.Run())
}

// helper prints "error <msg>" if Setup failed, then "pid <pid>",
// "mark <value of reexecVar>", one "own <ns>" per thread it runs code
// on (four threads locked at once, so at least four distinct threads),
// and one "tid <tid> <ns>" per thread of the process it may read
// (reading another thread's slack needs CAP_SYS_NICE).
func helper() {
	if err := Setup(os.Getenv(settingVar), helperDefault); err != nil {
		fmt.Println("error", err)
		os.Exit(0)
	}
	fmt.Println("pid", os.Getpid())
	fmt.Println("mark", os.Getenv(reexecVar))
	var wg sync.WaitGroup
	var mu sync.Mutex
	hold := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // exits locked: the thread ends with it
			d, _ := Get()
			mu.Lock()
			fmt.Println("own", int64(d))
			mu.Unlock()
			<-hold
		}()
	}
	time.Sleep(50 * time.Millisecond)
	tids, _ := os.ReadDir("/proc/self/task")
	for _, e := range tids {
		b, err := os.ReadFile("/proc/" + e.Name() + "/timerslack_ns")
		if err == nil {
			fmt.Println("tid", e.Name(), strings.TrimSpace(string(b)))
		}
	}
	close(hold)
	wg.Wait()
}

type report struct {
	err  string
	pid  int
	mark string
	own  []int64
	tids map[string]int64
}

// runHelper runs the helper with setting, started with the parent's
// timer slack set to start (0: the test's own).
func runHelper(t *testing.T, setting string, start time.Duration) report {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperVar+"=1", settingVar+"="+setting)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var err error
	if start > 0 {
		err = StartWith(cmd, start)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out.String())
	}
	r := report{tids: map[string]int64{}}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) > 1 && f[0] == "error":
			r.err = strings.Join(f[1:], " ")
		case len(f) == 2 && f[0] == "pid":
			r.pid, _ = strconv.Atoi(f[1])
		case len(f) >= 1 && f[0] == "mark":
			if len(f) == 2 {
				r.mark = f[1]
			}
		case len(f) == 2 && f[0] == "own":
			n, _ := strconv.ParseInt(f[1], 10, 64)
			r.own = append(r.own, n)
		case len(f) == 3 && f[0] == "tid":
			n, _ := strconv.ParseInt(f[2], 10, 64)
			r.tids[f[1]] = n
		}
	}
	if r.err == "" && r.pid != pid {
		t.Fatalf("helper reported pid %d, started as %d:\n%s", r.pid, pid, out.String())
	}
	return r
}

// everyThread checks that every thread the helper could see runs with
// want; the runtime's own threads (sysmon among them, started before
// any package's code runs) are only visible with CAP_SYS_NICE.
func everyThread(t *testing.T, r report, want time.Duration) {
	t.Helper()
	if r.err != "" {
		t.Fatalf("Setup failed: %s", r.err)
	}
	if len(r.own) != 4 {
		t.Fatalf("got %d thread reports, want 4", len(r.own))
	}
	for _, n := range r.own {
		if n != int64(want) {
			t.Errorf("a helper thread runs with slack %dns, want %d", n, int64(want))
		}
	}
	if len(r.tids) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("could not read the helper's threads under CI (runs as root)")
		}
		t.Log("the helper's thread list is unreadable without CAP_SYS_NICE; checked the threads it runs code on only")
		return
	}
	if len(r.tids) < 5 {
		t.Errorf("read %d threads, want the runtime's and the helper's four", len(r.tids))
	}
	for tid, n := range r.tids {
		if n != int64(want) {
			t.Errorf("thread %s runs with slack %dns, want %d", tid, n, int64(want))
		}
	}
}

func TestGetAndStartWith(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, ok := Get()
	if !ok || before <= 0 {
		t.Fatalf("Get() = %v, %v", before, ok)
	}
	cmd := exec.Command("cat", "/proc/self/timerslack_ns")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := StartWith(cmd, 123*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "123000" {
		t.Errorf("the child runs with slack %s ns, want 123000", got)
	}
	if after, _ := Get(); after != before {
		t.Errorf("the starting thread's slack is %v after StartWith, want %v back", after, before)
	}
}

// TestSetupReexecs: the process image re-executed by Setup has the slack
// on every thread, the runtime's included, keeps its pid, and does not
// pass the re-exec mark on.
func TestSetupReexecs(t *testing.T) {
	r := runHelper(t, "", KernelDefault)
	everyThread(t, r, helperDefault)
	if r.mark != "" {
		t.Errorf("the re-exec mark %q is still in the environment", r.mark)
	}
	r = runHelper(t, "1200us", KernelDefault)
	everyThread(t, r, 1200*time.Microsecond)
}

// TestSetupIgnoresAStaleMark: a re-exec mark inherited from another
// process (another pid) neither stops the re-exec nor shadows the new
// mark.
func TestSetupIgnoresAStaleMark(t *testing.T) {
	t.Setenv(reexecVar, "1")
	r := runHelper(t, "", KernelDefault)
	everyThread(t, r, helperDefault)
	if r.mark != "" {
		t.Errorf("the re-exec mark %q is still in the environment", r.mark)
	}
}

// TestSetupRespectsChosenSlack: a default does not override a slack the
// process was started with (an operator's choice), an explicit setting
// does, and "0" changes nothing.
func TestSetupRespectsChosenSlack(t *testing.T) {
	everyThread(t, runHelper(t, "", 80*time.Microsecond), 80*time.Microsecond)
	everyThread(t, runHelper(t, "300us", 80*time.Microsecond), 300*time.Microsecond)
	everyThread(t, runHelper(t, "0", KernelDefault), KernelDefault)
}

func TestSetupRejectsBadSetting(t *testing.T) {
	r := runHelper(t, "soon", KernelDefault)
	if !strings.Contains(r.err, EnvVar) {
		t.Errorf("error %q does not name %s", r.err, EnvVar)
	}
}
