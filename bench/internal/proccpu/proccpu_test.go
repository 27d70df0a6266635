package proccpu

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with a space and a parenthesis: fields count from the last ')'.
	raw := []byte("4242 (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 123 45 0 0 20 0 1 0 98765 1000 10 18446744073709551615\n")
	st, err := ParseStat(raw)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ticks != 168 || st.StartTime != 98765 {
		t.Errorf("got %+v, want ticks 168, start 98765", st)
	}
	for _, bad := range []string{"", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 x 45 0 0 20 0 1 0 98765 1000"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) accepted", bad)
		}
	}
}

func TestIsBackendOf(t *testing.T) {
	for _, c := range []struct {
		cmdline string
		want    bool
	}{
		{"postgres: 15/main: postgres bench_x 127.0.0.1(53884) idle", true},
		{"postgres: postgres bench_x [local] SELECT\x00\x00", true},
		{"postgres: postgres bench_x_2 127.0.0.1(1) idle", false},
		{"postgres: checkpointer ", false},
		{"psql bench_x", false},
	} {
		if got := IsBackendOf([]byte(c.cmdline), "bench_x"); got != c.want {
			t.Errorf("IsBackendOf(%q) = %v", c.cmdline, got)
		}
	}
}

// A watched process that burns CPU shows it; one that exits keeps its last reading.
func TestWatchNamed(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := NewWatch(nil, map[string]int{"sh": cmd.Process.Pid}, time.Second)
	if err := w.Start(time.Now()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var last time.Duration
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(20 * time.Millisecond):
			w.Sample(time.Now())
			last = w.Named("sh")
		}
	}
	w.Sample(time.Now()) // reaped: the reading stays
	if got := w.Named("sh"); got != last || got <= 0 {
		t.Errorf("Named = %v after exit, %v before; want the same, above 0", got, last)
	}
	if d, n := w.Backend(); d != 0 || n != 0 {
		t.Errorf("Backend = %v, %d without databases", d, n)
	}
}
