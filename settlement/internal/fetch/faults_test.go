package fetch

import (
	"bytes"
	"context"
	"errors"
	"net/textproto"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mapfront/settlement/internal/ftptest"
)

// faulty is an in-process FTP server with faults, and a source on it.
func faulty(t *testing.T, f ftptest.Faults) (ftptest.Server, *FTP) {
	t.Helper()
	ft := ftptest.StartFaulty(t, f)
	src := ftpTarget{ft}.source(t)
	return ft, src
}

// Issue 15, shows 1: a file the POSP is still appending to is taken only
// once it is complete, never half-written.
func TestFTPSlowWriterTakenComplete(t *testing.T) {
	ft, src := faulty(t, ftptest.Faults{})
	// The two looks are far apart compared with the writer's pauses, so
	// that a slow machine cannot make a pause look like the end.
	src.Complete = Completeness{Stable: time.Second}
	body := fileBody()
	done := ft.WriteSlowly(t, src.Pattern.Expand(testDate), body, 8, 100*time.Millisecond)
	poll := Poll{Interval: 50 * time.Millisecond, Deadline: time.Now().Add(30 * time.Second)}
	path, err := poll.Fetch(t.Context(), src, testDate)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	select {
	case <-done:
	default:
		t.Error("the file was taken while the POSP was still writing it")
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, body) {
		t.Fatalf("took %d bytes of %d", len(got), len(body))
	}
}

// One try during the writing sees the file change between its two looks:
// incomplete, to be tried again, never taken half-written.
func TestFTPSlowWriterOneTryIsIncomplete(t *testing.T) {
	ft, src := faulty(t, ftptest.Faults{})
	src.Complete = Completeness{Stable: time.Second}
	body := fileBody()
	ft.WriteSlowly(t, src.Pattern.Expand(testDate), body, 8, 200*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // the first part is there
	_, err := src.Fetch(t.Context(), testDate)
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Fetch during the writing: %v, want ErrIncomplete", err)
	}
}

// Issue 15, shows 1: a server without SIZE that cuts the transfer and still
// reports success is never settled: the listing's size gives it away. On a
// catch-up run (the deadline long past) it is a transfer problem, not a
// missing file.
func TestFTPCutTransferFalseSuccess(t *testing.T) {
	ft, src := faulty(t, ftptest.Faults{NoSize: true, CutAfter: 1000})
	src.Complete = Completeness{Stable: 50 * time.Millisecond}
	ft.Upload(t, src.Pattern.Expand(testDate), fileBody())
	clock := &fakeClock{now: testStart.Add(24 * time.Hour)}
	_, err := clock.poll(6*time.Hour).Fetch(t.Context(), src, testDate)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrFileMissing) || errors.Is(err, ErrNotThere) {
		t.Fatalf("err = %v, want a transfer problem (ErrUnavailable), not a missing file", err)
	}
	if entries, _ := os.ReadDir(src.WorkDir); len(entries) != 0 {
		t.Errorf("work dir holds %d entries: a cut file was kept", len(entries))
	}
}

// The same server without SIZE delivers a whole file: the listing is
// enough for the checks.
func TestFTPNoSizeWholeFile(t *testing.T) {
	ft, src := faulty(t, ftptest.Faults{NoSize: true})
	src.Complete = Completeness{Stable: 50 * time.Millisecond}
	body := fileBody()
	ft.Upload(t, src.Pattern.Expand(testDate), body)
	path, err := src.Fetch(t.Context(), testDate)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, body) {
		t.Fatalf("took %d bytes of %d", len(got), len(body))
	}
}

// Issue 15, shows 1: a file the FTP user may not read fails at once as a
// configuration error naming the user, without waiting for the deadline.
func TestFTPPermissionRefusalFailsFast(t *testing.T) {
	src := ftpTarget{}.source(t)
	name := src.Pattern.Expand(testDate)
	ft := ftptest.StartFaulty(t, ftptest.Faults{Deny: name})
	src.Addr, src.User, src.Password, src.Dir = ft.Addr, ft.User, ft.Password, ft.Dir
	ft.Upload(t, name, fileBody())
	clock := &fakeClock{now: testStart}
	_, err := clock.poll(6*time.Hour).Fetch(t.Context(), src, testDate)
	if !errors.Is(err, ErrConfig) || errors.Is(err, ErrFileMissing) || len(clock.sleeps) != 0 {
		t.Fatalf("err = %v after %d waits, want ErrConfig at once", err, len(clock.sleeps))
	}
}

// A 550 whose text speaks of permission is a configuration error, whatever
// the command; a plain 550 is a file not there.
func TestFileErrClasses(t *testing.T) {
	f := &FTP{Addr: "x", User: "posp"}
	for _, c := range []struct {
		err  error
		want error
	}{
		{&textproto.Error{Code: 550, Msg: "Not enough privileges"}, ErrConfig},
		{&textproto.Error{Code: 550, Msg: "x.txt: Permission denied"}, ErrConfig},
		{&textproto.Error{Code: 550, Msg: "x.txt: No such file or directory"}, ErrNotThere},
		{&textproto.Error{Code: 551, Msg: "File not available"}, ErrNotThere},
		{&textproto.Error{Code: 421, Msg: "Timeout"}, ErrUnavailable},
	} {
		if got := f.fileErr("retr", "x.txt", c.err); !errors.Is(got, c.want) {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
		}
	}
}

// Issue 15: a stalled data connection fails the try after one timeout, not
// two (the control connection's reply is not waited for).
func TestFTPStalledTransferOneTimeout(t *testing.T) {
	ft, src := faulty(t, ftptest.Faults{StallAfter: 100})
	src.ReadTimeout = 2 * time.Second
	ft.Upload(t, src.Pattern.Expand(testDate), fileBody())
	start := time.Now()
	_, err := src.Fetch(context.Background(), testDate)
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if took < 2*time.Second || took > 3800*time.Millisecond {
		t.Errorf("the try took %v, want one timeout of 2s, not two", took)
	}
}

// The done-marker: a file without it is incomplete (not missing); with it,
// taken.
func TestFTPDoneMarker(t *testing.T) {
	ft, src := faulty(t, ftptest.Faults{})
	src.Complete = Completeness{MarkerSuffix: ".ok"}
	name := src.Pattern.Expand(testDate)
	if _, err := src.Fetch(t.Context(), testDate); !errors.Is(err, ErrNotThere) {
		t.Fatalf("nothing there: %v, want ErrNotThere", err)
	}
	ft.Upload(t, name, fileBody())
	if _, err := src.Fetch(t.Context(), testDate); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("no marker: %v, want ErrIncomplete", err)
	}
	ft.Upload(t, name+".ok", nil)
	if _, err := src.Fetch(t.Context(), testDate); err != nil {
		t.Fatalf("with the marker: %v", err)
	}
}

// The local directory source keeps the same checks.
func TestLocalMarkerAndStability(t *testing.T) {
	dir := t.TempDir()
	l := Local{Dir: dir, Pattern: DefaultPattern, Complete: Completeness{MarkerSuffix: ".ok", Stable: 20 * time.Millisecond}}
	name := filepath.Join(dir, "20250307.txt")
	if err := os.WriteFile(name, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Fetch(t.Context(), testDate); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("no marker: %v", err)
	}
	if err := os.WriteFile(name+".ok", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := l.Fetch(t.Context(), testDate); err != nil || p != name {
		t.Fatalf("with the marker: %s %v", p, err)
	}
}
