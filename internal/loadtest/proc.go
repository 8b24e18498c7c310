package loadtest

import (
	"bytes"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on every
// Linux architecture Go supports).
const clockTicks = 100

// TreeUsage is the resource use of a process group at one moment.
type TreeUsage struct {
	// Processes counts the live processes in the group.
	Processes int
	// CPUSeconds is user+system time of the live processes plus the time
	// of reaped children (the leader's cutime+cstime).
	CPUSeconds float64
	// HWMBytes sums VmHWM (peak resident set) over the live processes.
	HWMBytes int64
	// RSSBytes sums VmRSS over the live processes.
	RSSBytes int64
}

// GroupUsage reads /proc for every process whose process group is pgid
// (the worker started with Setpgid, so its pid).
func GroupUsage(pgid int) TreeUsage {
	var u TreeUsage
	for _, pid := range pids() {
		st, ok := readStat(pid)
		if !ok || st.pgrp != pgid {
			continue
		}
		u.Processes++
		u.CPUSeconds += float64(st.utime+st.stime) / clockTicks
		if pid == pgid {
			u.CPUSeconds += float64(st.cutime+st.cstime) / clockTicks
		}
		hwm, rss := readMem(pid)
		u.HWMBytes += hwm
		u.RSSBytes += rss
	}
	return u
}

// pids lists the processes in /proc.
func pids() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

type procStat struct {
	pgrp                         int
	utime, stime, cutime, cstime int64
}

// readStat parses /proc/<pid>/stat; the command name may contain spaces
// and parentheses, so fields are counted from the last ')'.
func readStat(pid int) (procStat, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, false
	}
	// After ")": state(3) ppid(4) pgrp(5) ... utime(14) stime(15)
	// cutime(16) cstime(17).
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return procStat{}, false
	}
	num := func(k int) int64 {
		n, _ := strconv.ParseInt(f[k-3], 10, 64)
		return n
	}
	return procStat{pgrp: int(num(5)), utime: num(14), stime: num(15), cutime: num(16), cstime: num(17)}, true
}

// readMem returns VmHWM and VmRSS of pid in bytes.
func readMem(pid int) (hwm, rss int64) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		if k == "VmHWM" {
			hwm = n * 1024
		} else {
			rss = n * 1024
		}
	}
	return hwm, rss
}

// HostCPU is the machine's CPU time from the first line of /proc/stat, in
// clock ticks summed over all CPUs.
type HostCPU struct {
	// Total is user+nice+system+idle+iowait+irq+softirq+steal (guest time
	// is already counted in user and nice).
	Total int64
	// Steal is time the hypervisor ran something else while this
	// machine's virtual CPUs had work.
	Steal int64
}

// readHostCPU reads the aggregate "cpu" line of /proc/stat.
func readHostCPU() (HostCPU, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return HostCPU{}, false
	}
	return parseHostCPU(data)
}

// parseHostCPU parses the contents of /proc/stat.
func parseHostCPU(data []byte) (HostCPU, bool) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return HostCPU{}, false
	}
	var h HostCPU
	for i := 1; i <= 8; i++ {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return HostCPU{}, false
		}
		h.Total += n
		if i == 8 {
			h.Steal = n
		}
	}
	return h, true
}

// stealPercent is the share of the machine's CPU time stolen between two
// readings, in percent; false when no time passed.
func stealPercent(a, b HostCPU) (float64, bool) {
	total := b.Total - a.Total
	if total <= 0 {
		return 0, false
	}
	return 100 * float64(b.Steal-a.Steal) / float64(total), true
}

// parseInfoCPU returns used_cpu_user + used_cpu_sys (seconds) from the
// text of Redis's INFO cpu.
func parseInfoCPU(info string) (float64, bool) {
	var sum float64
	found := 0
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (k != "used_cpu_user" && k != "used_cpu_sys") {
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, false
		}
		sum += x
		found++
	}
	return sum, found == 2
}

// localRabbitMQ returns the pid of the RabbitMQ server serving amqpURL
// when it runs on this machine (a beam.smp process booting rabbit, and a
// loopback host in the URL), so that its CPU time can be read from /proc.
func localRabbitMQ(amqpURL string) (int, bool) {
	if !loopbackURL(amqpURL) {
		return 0, false
	}
	for _, pid := range pids() {
		dir := "/proc/" + strconv.Itoa(pid)
		comm, err := os.ReadFile(dir + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "beam.smp" {
			continue
		}
		cmdline, err := os.ReadFile(dir + "/cmdline")
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte("\x00rabbit\x00")) {
			return pid, true
		}
	}
	return 0, false
}

// loopbackURL reports whether the URL's host is this machine.
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Hostname() {
	case "", "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

// processCPU returns user+system seconds of one process.
func processCPU(pid int) (float64, bool) {
	st, ok := readStat(pid)
	if !ok {
		return 0, false
	}
	return float64(st.utime+st.stime) / clockTicks, true
}
