package main

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/businessday"
	"mapfront/settlement/internal/cli"
	"mapfront/settlement/internal/parse"
)

// FuzzIntake drives whole files through the intake (issue 15): bytes →
// parser → SubmitBatch → database, on the real server binary and
// PostgreSQL, one business date per input. Whatever the bytes, the run
// ends in one of three ways and never in a server error: the trailer
// refused (nothing sent), the batch rejected as mostly unreadable (nothing
// applied, nothing filed), or the batch settled with every line in its
// place: each bad line an exception with its line number, each record
// applied or an exception. The seed corpus (testdata/fuzz/FuzzIntake and
// the f.Add lines) runs in CI as a normal test; explore with
// go test -run XXX -fuzz FuzzIntake ./settlement (slow: a settlement per input).
func FuzzIntake(f *testing.F) {
	if testing.Short() {
		f.Skip("end-to-end: builds and runs the server on PostgreSQL")
	}
	good := fileRec("T01", "1500.00", "000901", "20000101", "120000", gbID("11010519900101091"), "13800000091", "1012")
	f.Add([]byte(good + "\n"))
	f.Add([]byte(good + "\r\n" + strings.Replace(good, "T01", "T\x0002", 1) + "\r\n\x1a"))
	f.Add([]byte("\x00\x00\x00\n\xff\xfe\n"))
	f.Add([]byte(good + "\n合计|1|1500.00\n"))
	f.Add([]byte(good + "\nTOTAL|2|1500.00\n"))
	f.Add([]byte(good + "\n" + good + "\n"))
	f.Add([]byte(""))

	quietFTP(f)
	sys := newE2ESystem(f)
	sys.run(f, "migrate")
	sys.run(f, "demo")
	srv := sys.serve(f, "fuzz")
	dir := f.TempDir()
	var n atomic.Int64
	first := businessday.Date{Year: 2001, Month: time.January, Day: 1}

	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := t.Context()
		date := first.AddDays(int(n.Add(1))).String()
		path := filepath.Join(dir, "intake-"+date+".bin")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var badAt []int64
		sum, err := parse.Parse(bytes.NewReader(data), parse.Options{}, func(c parse.Chunk) error {
			for _, b := range c.BadLines {
				badAt = append(badAt, b.LineNo)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		vars := map[string]string{"MAPFRONT_GRPC_ADDR": srv.grpcAddr, "MAPFRONT_SUBMIT_TIMEOUT": "60s"}
		maps.Copy(vars, srv.settlementTLS)
		r := settleCmd(ctx, vars, time.Now, "run", "--file", path, "--date", date)
		_, gerr := srv.settlement.GetBatch(ctx, &mapfrontv1.GetBatchRequest{BusinessDate: date})

		switch {
		case errors.Is(sum.CheckTrailer(false), parse.ErrTrailer):
			if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "trailer") || status.Code(gerr) != codes.NotFound {
				t.Fatalf("trailer refusal: exit %d, batch %v\nstderr:\n%s", r.code, gerr, r.stderr)
			}
			return
		case sum.Lines > 0 && (sum.BadLines == sum.Lines || sum.BadLines*1000 > 500*sum.Lines):
			b := srv.getBatch(t, ctx, date)
			if r.code != cli.ExitRejected || b.Status != mapfrontv1.BatchState_BATCH_STATE_REJECTED || b.BadLines != sum.BadLines {
				t.Fatalf("mostly bad: exit %d, batch %v\nstderr:\n%s", r.code, b, r.stderr)
			}
			if l, err := srv.admin.ListExceptions(ctx, &mapfrontv1.ListExceptionsRequest{BusinessDate: date, Limit: 1000}); err != nil || len(l.Exceptions) != 0 {
				t.Fatalf("a rejected file filed items: %v %v", err, l)
			}
			return
		}
		if r.code != cli.ExitOK {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		b := srv.getBatch(t, ctx, date)
		if b.Status != mapfrontv1.BatchState_BATCH_STATE_SETTLED || b.Records != sum.Lines || b.BadLines != sum.BadLines || b.TotalFen != sum.TotalFen {
			t.Fatalf("batch %v, parsed %+v", b, sum)
		}
		l, err := srv.admin.ListExceptions(ctx, &mapfrontv1.ListExceptionsRequest{BusinessDate: date, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var gotBad []int64
		recordLines := map[int64]bool{}
		for _, e := range l.Exceptions {
			if e.Type == mapfrontv1.ExceptionType_EXCEPTION_TYPE_BAD_LINE {
				gotBad = append(gotBad, e.LineNo)
			} else if e.LineNo > 0 {
				recordLines[e.LineNo] = true
			}
		}
		if !sameLines(gotBad, badAt) {
			t.Fatalf("bad-line items at %v, the parser's bad lines at %v", gotBad, badAt)
		}
		if got := int64(len(recordLines)) + b.Matched + b.Opened; got != sum.Records {
			t.Fatalf("%d records accounted for (%d items, %d matched, %d opened), want %d",
				got, len(recordLines), b.Matched, b.Opened, sum.Records)
		}
	})
}

// sameLines compares two sets of line numbers.
func sameLines(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[int64]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		if seen[x] == 0 {
			return false
		}
		seen[x]--
	}
	return true
}
