package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mapfront/settlement/internal/calendar"
	"mapfront/settlement/internal/ftptest"
)

func TestMain(m *testing.M) {
	// goftp.io's server logs some replies through the standard logger.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// ftpTarget is the test FTP server (package ftptest) seen from fetch.
type ftpTarget struct{ ftptest.Server }

func newFTPTarget(t *testing.T) ftpTarget { return ftpTarget{ftptest.Start(t)} }

// source returns an FTP source for the target with a file-name pattern of
// its own, so that tests sharing an external server do not meet.
func (ft ftpTarget) source(t *testing.T) *FTP {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return &FTP{
		Addr:        ft.Addr,
		User:        ft.User,
		Password:    ft.Password,
		Dir:         ft.Dir,
		Pattern:     Pattern("t" + hex.EncodeToString(b[:]) + "_{yyyyMMdd}.txt"),
		DialTimeout: 5 * time.Second,
		ReadTimeout: 5 * time.Second,
		WorkDir:     t.TempDir(),
	}
}

// fakeClock is an instant clock: Sleep moves Now on and calls onSleep.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	sleeps  []time.Duration
	onSleep func(n int)
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	n := len(c.sleeps)
	c.mu.Unlock()
	if c.onSleep != nil {
		c.onSleep(n)
	}
	return nil
}

var (
	testDate  = calendar.Date{Year: 2025, Month: time.March, Day: 7}
	testStart = time.Date(2025, 3, 8, 0, 30, 0, 0, time.UTC)
)

func (c *fakeClock) poll(deadline time.Duration) Poll {
	return Poll{Interval: 5 * time.Minute, Deadline: testStart.Add(deadline), Now: c.Now, Sleep: c.Sleep}
}

// fileBody has what a byte-exact transfer must keep: a BOM, CRLF, Chinese
// text, every byte value, and enough bytes for several reads.
func fileBody() []byte {
	var b bytes.Buffer
	b.WriteString("\uFEFF交易id|卡号|金额\r\n")
	for i := range 3000 {
		b.WriteString("2020030744015541000101023952001524000539|6225380083477614|0.01|000539|152412390951|307440155410001|01023952|001524|20141211|152412|123456789123456788|15017513750|1234\r\n")
		b.WriteByte(byte(i))
	}
	return b.Bytes()
}

func TestFTPFilePresent(t *testing.T) {
	ft := newFTPTarget(t)
	src := ft.source(t)
	body := fileBody()
	ft.Upload(t, src.Pattern.Expand(testDate), body)

	clock := &fakeClock{now: testStart}
	path, err := clock.poll(6*time.Hour).Fetch(context.Background(), src, testDate)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Errorf("fetched %d bytes, differ from the %d uploaded", len(got), len(body))
	}
	if want := filepath.Join(src.WorkDir, "20250307-"+src.Pattern.Expand(testDate)); path != want {
		t.Errorf("path %s, want %s", path, want)
	}
	if len(clock.sleeps) != 0 {
		t.Errorf("slept %v", clock.sleeps)
	}
	// Nothing but the file is left behind: no .part.
	entries, _ := os.ReadDir(src.WorkDir)
	if len(entries) != 1 {
		t.Errorf("work dir holds %d entries", len(entries))
	}
	// A second fetch replaces the copy.
	if path2, err := src.Fetch(context.Background(), testDate); err != nil || path2 != path {
		t.Errorf("second fetch: %s, %v", path2, err)
	}
}

func TestFTPFileAppearsAfterTwoRetries(t *testing.T) {
	ft := newFTPTarget(t)
	src := ft.source(t)
	body := []byte("late|file\r\n")
	clock := &fakeClock{now: testStart}
	clock.onSleep = func(n int) {
		if n == 2 {
			ft.Upload(t, src.Pattern.Expand(testDate), body)
		}
	}
	path, err := clock.poll(6*time.Hour).Fetch(context.Background(), src, testDate)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, body) {
		t.Errorf("fetched %q", got)
	}
	if len(clock.sleeps) != 2 || clock.sleeps[0] != 5*time.Minute || clock.sleeps[1] != 5*time.Minute {
		t.Errorf("sleeps %v, want two of 5m", clock.sleeps)
	}
}

func TestFTPFileNeverAppears(t *testing.T) {
	ft := newFTPTarget(t)
	src := ft.source(t)
	clock := &fakeClock{now: testStart}
	_, err := clock.poll(12*time.Minute).Fetch(context.Background(), src, testDate)
	if !errors.Is(err, ErrFileMissing) || !errors.Is(err, ErrNotThere) {
		t.Fatalf("err = %v, want ErrFileMissing", err)
	}
	// Tries at 0, 5m, 10m and the deadline 12m.
	if got := clock.sleeps; len(got) != 3 || got[2] != 2*time.Minute {
		t.Errorf("sleeps %v", got)
	}
	if !clock.Now().Equal(testStart.Add(12 * time.Minute)) {
		t.Errorf("stopped at %v", clock.Now())
	}
	if entries, _ := os.ReadDir(src.WorkDir); len(entries) != 0 {
		t.Errorf("work dir holds %d entries", len(entries))
	}
}

func TestFTPWrongPasswordFailsFast(t *testing.T) {
	ft := newFTPTarget(t)
	src := ft.source(t)
	src.Password = "wrong-" + ft.Password
	clock := &fakeClock{now: testStart}
	_, err := clock.poll(6*time.Hour).Fetch(context.Background(), src, testDate)
	if !errors.Is(err, ErrAuth) || errors.Is(err, ErrFileMissing) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if len(clock.sleeps) != 0 {
		t.Errorf("retried: %v", clock.sleeps)
	}
	if strings.Contains(err.Error(), src.Password) {
		t.Errorf("error %q holds the password", err)
	}
}

func TestFTPMissingDirFailsFast(t *testing.T) {
	ft := newFTPTarget(t)
	src := ft.source(t)
	src.Dir = "/no-such-dir-" + string(src.Pattern[1:9])
	clock := &fakeClock{now: testStart}
	_, err := clock.poll(6*time.Hour).Fetch(context.Background(), src, testDate)
	if err == nil || errors.Is(err, ErrNotThere) || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "MAPFRONT_FTP_DIR") {
		t.Fatalf("err = %v, want a configuration error", err)
	}
	if len(clock.sleeps) != 0 {
		t.Errorf("retried: %v", clock.sleeps)
	}
}

func TestFTPUnreachableIsNotMissing(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	src := &FTP{Addr: addr, User: "u", Password: "p", Pattern: DefaultPattern, DialTimeout: time.Second, WorkDir: t.TempDir()}
	clock := &fakeClock{now: testStart}
	_, err = clock.poll(7*time.Minute).Fetch(context.Background(), src, testDate)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrFileMissing) {
		t.Fatalf("err = %v, want ErrUnavailable and not ErrFileMissing", err)
	}
	if len(clock.sleeps) != 2 {
		t.Errorf("sleeps %v, want 2", clock.sleeps)
	}
}

func TestFTPReadTimeout(t *testing.T) {
	// A server that accepts and never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	src := &FTP{Addr: l.Addr().String(), Pattern: DefaultPattern, ReadTimeout: 100 * time.Millisecond, WorkDir: t.TempDir()}
	start := time.Now()
	_, err = src.Fetch(context.Background(), testDate)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestPollStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clock := &fakeClock{now: testStart}
	clock.onSleep = func(int) { cancel() }
	src := Local{Dir: t.TempDir(), Pattern: DefaultPattern}
	_, err := clock.poll(time.Hour).Fetch(ctx, src, testDate)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestPollTriesOnceAfterDeadline(t *testing.T) {
	dir := t.TempDir()
	src := Local{Dir: dir, Pattern: DefaultPattern}
	clock := &fakeClock{now: testStart}
	_, err := clock.poll(-time.Hour).Fetch(context.Background(), src, testDate)
	if !errors.Is(err, ErrFileMissing) || len(clock.sleeps) != 0 {
		t.Errorf("err = %v, sleeps %v", err, clock.sleeps)
	}
	if err := os.WriteFile(filepath.Join(dir, "20250307.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	path, err := clock.poll(-time.Hour).Fetch(context.Background(), src, testDate)
	if err != nil || path != filepath.Join(dir, "20250307.txt") {
		t.Errorf("path %s err %v", path, err)
	}
}

func TestPollWaitsOnEmptyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "20250307.txt")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	src := Local{Dir: dir, Pattern: DefaultPattern}

	// Written after the first wait: fetched then.
	clock := &fakeClock{now: testStart}
	clock.onSleep = func(int) {
		if err := os.WriteFile(path, []byte("x|y\n"), 0o600); err != nil {
			t.Error(err)
		}
	}
	got, err := clock.poll(time.Hour).Fetch(context.Background(), src, testDate)
	if err != nil || got != path || len(clock.sleeps) != 1 {
		t.Errorf("path %s err %v sleeps %v", got, err, clock.sleeps)
	}

	// Still empty at the deadline: a day without sales, not a missing file.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	clock = &fakeClock{now: testStart}
	got, err = clock.poll(12*time.Minute).Fetch(context.Background(), src, testDate)
	if err != nil || got != path || len(clock.sleeps) != 3 {
		t.Errorf("path %s err %v sleeps %v", got, err, clock.sleeps)
	}
}

func TestLocalNotRegular(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "20250307.txt"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Local{Dir: dir, Pattern: DefaultPattern}.Fetch(context.Background(), testDate)
	if err == nil || errors.Is(err, ErrNotThere) {
		t.Errorf("err = %v, want a permanent error", err)
	}
}

func TestPattern(t *testing.T) {
	good := []struct{ in, want string }{
		{"{yyyyMMdd}.txt", "20250307.txt"},
		{"settle_{yyyy}-{MM}-{dd}.txt", "settle_2025-03-07.txt"},
		{"{yyyy}/{MM}/POSP{yyyyMMdd}.dat", "2025/03/POSP20250307.dat"},
	}
	for _, c := range good {
		p, err := ParsePattern(c.in)
		if err != nil {
			t.Errorf("ParsePattern(%q): %v", c.in, err)
			continue
		}
		if got := p.Expand(testDate); got != c.want {
			t.Errorf("Expand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, in := range []string{"", "  ", "fixed.txt", "{yyyymmdd}.txt", "{date}.txt", "{yyyyMMdd.txt", "x}{yyyy}", "{yyyy}\r\n.txt"} {
		if _, err := ParsePattern(in); err == nil {
			t.Errorf("ParsePattern(%q) accepted", in)
		}
	}
}

func TestFTPLogValueHidesPassword(t *testing.T) {
	src := &FTP{Addr: "h:21", User: "u", Password: "hunter2", Pattern: DefaultPattern}
	if s := src.LogValue().String(); strings.Contains(s, "hunter2") || !strings.Contains(s, "h:21") {
		t.Errorf("LogValue = %s", s)
	}
}
