package loadtest

import (
	"bytes"
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
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return u
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
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
