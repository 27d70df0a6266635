// Package proccpu reads processes' CPU time (user + system) from Linux's
// /proc, so that a benchmark can say what one request costs each process
// (PostgreSQL's backends, the server, the gateway) rather than only how many
// requests a loaded machine managed per second: CPU per request moves little
// when other work shares the machine, throughput moves a lot.
package proccpu

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// TicksPerSecond is USER_HZ, the unit of the times in /proc/PID/stat: 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK) without cgo).
const TicksPerSecond = 100

// procRoot is /proc (a variable for tests).
var procRoot = "/proc"

// Stat is what this package needs of /proc/PID/stat.
type Stat struct {
	Ticks     int64 // utime + stime, in ticks
	StartTime int64 // since boot, in ticks: tells a reused PID from the process first seen
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	raw, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(raw)
}

// ParseStat parses the text of /proc/PID/stat. The command name (field 2)
// is in parentheses and may itself contain spaces and parentheses, so the
// fields are counted from the last ')'.
func ParseStat(raw []byte) (Stat, error) {
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return Stat{}, errors.New("proccpu: stat without command name")
	}
	f := strings.Fields(string(raw[i+1:])) // f[0] is field 3 (state)
	if len(f) < 20 {
		return Stat{}, errors.New("proccpu: stat too short")
	}
	var n [3]int64
	for k, field := range []int{14, 15, 22} { // utime, stime, starttime
		v, err := strconv.ParseInt(f[field-3], 10, 64)
		if err != nil {
			return Stat{}, fmt.Errorf("proccpu: stat field %d: %w", field, err)
		}
		n[k] = v
	}
	return Stat{Ticks: n[0] + n[1], StartTime: n[2]}, nil
}

// IsBackendOf reports whether a process's command line (as in
// /proc/PID/cmdline) is a PostgreSQL backend connected to database db: with
// update_process_title on (the default) a backend names itself
// "postgres: [cluster: ]user database host(port) state".
func IsBackendOf(cmdline []byte, db string) bool {
	s := string(bytes.TrimRight(cmdline, "\x00 "))
	if !strings.HasPrefix(s, "postgres: ") {
		return false
	}
	return strings.Contains(s+" ", " "+db+" ")
}

// Backends lists the PIDs of the PostgreSQL backends connected to db.
func Backends(db string) ([]int, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
		if err == nil && IsBackendOf(cmd, db) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// tracked is one process under watch: its ticks when first seen and last read.
type tracked struct {
	start       int64 // StartTime: the same process, not a reused PID
	first, last int64
}

// Watch adds up the CPU time that processes use from Start on: the named
// PIDs it is given, and every backend of the given databases, including those
// that connect later (counted from their start: their whole life is inside
// the window). A process's time is read on every Sample; one that exits
// keeps its last reading, so Sample often (every 100 ms loses at most that
// much of an exiting backend's time).
type Watch struct {
	dbs      []string
	rescan   time.Duration
	lastScan time.Time
	backends map[int]*tracked
	named    map[string]int
	byName   map[string]*tracked
}

// NewWatch watches the backends of dbs (looked for again every rescan) and
// the processes named in pids (name -> PID).
func NewWatch(dbs []string, pids map[string]int, rescan time.Duration) *Watch {
	return &Watch{dbs: dbs, rescan: rescan, backends: map[int]*tracked{}, named: pids, byName: map[string]*tracked{}}
}

// Start takes the baseline: what the processes have used so far is not
// counted.
func (w *Watch) Start(now time.Time) error {
	for name, pid := range w.named {
		st, err := ReadStat(pid)
		if err != nil {
			return fmt.Errorf("proccpu: %s (pid %d): %w", name, pid, err)
		}
		w.byName[name] = &tracked{start: st.StartTime, first: st.Ticks, last: st.Ticks}
	}
	if err := w.scan(now, true); err != nil {
		return err
	}
	return nil
}

func (w *Watch) scan(now time.Time, baseline bool) error {
	w.lastScan = now
	for _, db := range w.dbs {
		pids, err := Backends(db)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			if _, ok := w.backends[pid]; ok {
				continue
			}
			st, err := ReadStat(pid)
			if err != nil {
				continue // gone already
			}
			t := &tracked{start: st.StartTime, last: st.Ticks}
			if baseline {
				t.first = st.Ticks
			}
			w.backends[pid] = t
		}
	}
	return nil
}

// Sample reads every watched process's time, and looks for new backends if
// the last look is older than the rescan interval.
func (w *Watch) Sample(now time.Time) {
	if now.Sub(w.lastScan) >= w.rescan {
		w.scan(now, false) // a failed scan leaves the known backends
	}
	for pid, t := range w.backends {
		read(pid, t)
	}
	for name, t := range w.byName {
		read(w.named[name], t)
	}
}

func read(pid int, t *tracked) {
	if st, err := ReadStat(pid); err == nil && st.StartTime == t.start {
		t.last = st.Ticks
	}
}

// Backend is the CPU time the databases' backends used since Start, and how
// many backends were seen.
func (w *Watch) Backend() (time.Duration, int) {
	var ticks int64
	for _, t := range w.backends {
		ticks += t.last - t.first
	}
	return ticksDuration(ticks), len(w.backends)
}

// Named is the CPU time the process called name used since Start.
func (w *Watch) Named(name string) time.Duration {
	t, ok := w.byName[name]
	if !ok {
		return 0
	}
	return ticksDuration(t.last - t.first)
}

func ticksDuration(ticks int64) time.Duration {
	return time.Duration(ticks) * time.Second / TicksPerSecond
}
