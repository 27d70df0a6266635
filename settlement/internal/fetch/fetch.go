// Package fetch brings the POSP's settlement file of one business date to a
// local file (SPEC section 6): from the POSP's FTP server, or from a local
// directory for a manual upload, and waits for a file that is not there yet
// until a deadline.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"mapfront/settlement/internal/calendar"
)

// The kinds of failure, in the classes an operator acts on (issue 15). Poll
// retries ErrNotThere, ErrIncomplete and ErrUnavailable and fails fast on
// anything else (ErrAuth, ErrConfig), since waiting would not fix those.
var (
	// ErrNotThere means the file is not there yet (FTP 550): at the
	// deadline, the one failure recorded as file-missing.
	ErrNotThere = errors.New("settlement file not there")
	// ErrIncomplete means the file is there but not yet complete: it changed
	// between two looks, or its done-marker is not there yet. At the
	// deadline it is not recorded as missing: the file exists.
	ErrIncomplete = errors.New("settlement file still being written")
	// ErrConfig means a setting is wrong: a directory that does not exist, a
	// file the user may not read (550 permission), a server that cannot
	// tell a file's size when only the stability check is configured. The
	// message names the setting to check.
	ErrConfig = errors.New("settlement file source misconfigured")
	// ErrUnavailable means the source could not be reached or a transfer
	// broke off: a network or server trouble, not a statement about the file.
	ErrUnavailable = errors.New("settlement file source unavailable")
	// ErrAuth means the source refused the credentials.
	ErrAuth = errors.New("settlement file source refused the login")
	// ErrFileMissing means the file was still not there at the deadline:
	// the batch is to be recorded as file-missing (SPEC section 6).
	ErrFileMissing = errors.New("settlement file missing")
)

// Source brings the file of one business date to a local file.
type Source interface {
	// Fetch returns the path of a local, complete copy of the file of date.
	// Errors: ErrNotThere when the file is not (yet) there, ErrIncomplete
	// when it is there but not yet complete, ErrUnavailable when the source
	// cannot be reached or the transfer failed (all worth another try),
	// ErrAuth when the credentials are refused, ErrConfig (or any other
	// error) for a configuration problem.
	Fetch(ctx context.Context, date calendar.Date) (string, error)
	// Name returns the file's name for date, for messages.
	Name(date calendar.Date) string
}

// Pattern is a file name with the business date in placeholders:
// {yyyyMMdd}, {yyyy}, {MM} and {dd}, e.g. "{yyyyMMdd}.txt" or
// "settle_{yyyy}-{MM}-{dd}.txt".
type Pattern string

// DefaultPattern is the file name the POSP uses unless configured otherwise.
const DefaultPattern Pattern = "{yyyyMMdd}.txt"

// ParsePattern checks a file-name pattern, so that a typo in a placeholder
// stops the start instead of making every day's file "missing".
func ParsePattern(s string) (Pattern, error) {
	if strings.TrimSpace(s) == "" {
		return "", errors.New("file-name pattern is empty")
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", fmt.Errorf("file-name pattern %q has a control character", s)
	}
	rest := s
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			break
		}
		if strings.Contains(rest[:open], "}") {
			return "", fmt.Errorf("file-name pattern %q: } without {", s)
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return "", fmt.Errorf("file-name pattern %q: unclosed {", s)
		}
		switch ph := rest[open : open+end+1]; ph {
		case "{yyyyMMdd}", "{yyyy}", "{MM}", "{dd}":
		default:
			return "", fmt.Errorf("file-name pattern %q: unknown placeholder %s (want {yyyyMMdd}, {yyyy}, {MM} or {dd})", s, ph)
		}
		rest = rest[open+end+1:]
	}
	if strings.Contains(rest, "}") {
		return "", fmt.Errorf("file-name pattern %q: } without {", s)
	}
	if !strings.Contains(s, "{") {
		// A fixed name would fetch yesterday's file again tomorrow.
		return "", fmt.Errorf("file-name pattern %q has no date placeholder", s)
	}
	return Pattern(s), nil
}

// Expand returns the file name for date.
func (p Pattern) Expand(date calendar.Date) string {
	d := date.String()
	return strings.NewReplacer(
		"{yyyyMMdd}", d,
		"{yyyy}", d[0:4],
		"{MM}", d[4:6],
		"{dd}", d[6:8],
	).Replace(string(p))
}

// Poll controls how long Fetch keeps trying for a file that is not there.
type Poll struct {
	// Interval is the wait between two tries (default 5m, SPEC section 6).
	Interval time.Duration
	// Deadline is when to stop trying: for the daily job, the cutover that
	// ends the business date plus 6h. At least one try is made even when it
	// has passed.
	Deadline time.Time
	// Now and Sleep are the clock; tests make them instant.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Log receives a line per failed try; nil logs nothing.
	Log *slog.Logger
}

// DefaultInterval is the wait between two tries for a missing file.
const DefaultInterval = 5 * time.Minute

// Sleep waits for d or until ctx is done, with the real clock.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Fetch gets the file of date from src, trying again every Interval while
// the file is not there, is empty, is incomplete, or the source is
// unavailable, until the Deadline. An empty file at the deadline is
// returned: a day without sales.
//
// Errors: ErrFileMissing (wrapping the last ErrNotThere) when the file was
// not there at the deadline; the last error, wrapping ErrUnavailable or
// ErrIncomplete, when the source could not be reached or the file never
// became complete by the deadline (the file may well be there, so this is
// not recorded as missing); any other error of src at once; ctx's error
// when ctx ends first.
func (p Poll) Fetch(ctx context.Context, src Source, date calendar.Date) (string, error) {
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	now, sleep := p.Now, p.Sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = Sleep
	}
	for attempt := 1; ; attempt++ {
		path, err := src.Fetch(ctx, date)
		if err == nil {
			// An empty file is most likely one the POSP has created and not
			// yet written: settling it would settle the day as having no
			// sales and refuse the real file later. It is waited on like a
			// missing file, and taken as a day without sales only at the
			// deadline.
			fi, statErr := os.Stat(path)
			if statErr != nil || fi.Size() > 0 || !now().Before(p.Deadline) {
				return path, statErr
			}
			err = fmt.Errorf("%s is empty: %w", src.Name(date), ErrNotThere)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return "", fmt.Errorf("fetch %s: %w", src.Name(date), ctxErr)
		}
		if !errors.Is(err, ErrNotThere) && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrIncomplete) {
			return "", err
		}
		// The last try is made at the deadline itself, not an interval
		// before it.
		wait := min(interval, p.Deadline.Sub(now()))
		if wait <= 0 {
			if errors.Is(err, ErrNotThere) {
				return "", fmt.Errorf("%w: %s not there after %d tries, the last at the deadline %s: %w",
					ErrFileMissing, src.Name(date), attempt, p.Deadline.Format(time.DateTime), err)
			}
			return "", fmt.Errorf("fetch %s: gave up at the deadline %s after %d tries: %w",
				src.Name(date), p.Deadline.Format(time.DateTime), attempt, err)
		}
		if p.Log != nil {
			p.Log.Info("settlement file not fetched yet; will try again",
				"file", src.Name(date), "attempt", attempt, "retry_in", wait, "deadline", p.Deadline, "err", err)
		}
		if err := sleep(ctx, wait); err != nil {
			return "", fmt.Errorf("fetch %s: %w", src.Name(date), err)
		}
	}
}

// Completeness says how the command knows the POSP has finished writing a
// file (issue 15), configured per site; a file is taken only when every
// check configured holds. The trailer check is the parser's
// (parse.Summary.CheckTrailer), since it needs the file's content.
type Completeness struct {
	// Stable, when positive, requires the file's size and modification
	// time to be the same on two looks this far apart (default 60s): a file
	// being appended to changes in between.
	Stable time.Duration
	// MarkerSuffix, when set, requires a done-marker file, the file's name
	// with this suffix (".ok": 20250307.txt.ok), which the POSP writes once
	// the file is complete.
	MarkerSuffix string
}

// DefaultStable is the default interval of the stability check.
const DefaultStable = 60 * time.Second

// info is what a look at a file gives; Size < 0 and a zero ModTime are
// unknown.
type info struct {
	Size    int64
	ModTime time.Time
}

// same reports whether two looks saw the same file. Unknown parts compare
// equal (FTP.Fetch refuses a server that tells no size at all when only the
// stability check is configured).
func (a info) same(b info) bool { return a.Size == b.Size && a.ModTime.Equal(b.ModTime) }

// stable makes the two looks of the stability check, interval apart.
// Errors: ErrIncomplete when the file changed; look's errors; ctx's.
func stable(ctx context.Context, interval time.Duration, name string, look func() (info, error)) (info, error) {
	first, err := look()
	if err != nil {
		return info{}, err
	}
	if interval <= 0 {
		return first, nil
	}
	if err := Sleep(ctx, interval); err != nil {
		return info{}, err
	}
	second, err := look()
	if err != nil {
		return info{}, err
	}
	if !first.same(second) {
		return info{}, fmt.Errorf("%s changed within %v (size %d, then %d; modified %s, then %s): %w", name, interval,
			first.Size, second.Size, first.ModTime.Format(time.DateTime), second.ModTime.Format(time.DateTime), ErrIncomplete)
	}
	return second, nil
}
