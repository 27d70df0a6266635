// Package config is the settlement command's one typed configuration,
// read from the environment (MAPFRONT_*), with each default beside its
// field. Command-line flags override it. A bad value stops the command
// with a message naming the variable; nothing falls back silently, and
// secrets never appear in messages or logs.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"mapfront/internal/businessday"
	"mapfront/internal/mtls"
	"mapfront/settlement/internal/calendar"
	"mapfront/settlement/internal/fetch"
)

// Secret is a string that never prints: fmt, slog and %v all show a mark.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the value from %#v too.
func (s Secret) GoString() string { return s.String() }

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Reveal returns the value, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// Config is the settlement command's configuration.
type Config struct {
	// GRPCAddr is the mapfront server's gRPC address.
	GRPCAddr string // MAPFRONT_GRPC_ADDR, default 127.0.0.1:9090
	// CallTimeout bounds each unary gRPC call.
	CallTimeout time.Duration // MAPFRONT_GRPC_TIMEOUT, default 30s
	// TLS is the command's side of the mutual TLS to the server; its
	// certificate names the identity the server gives the settlement role
	// (or an operator's, for the exceptions subcommands run by hand).
	TLS mtls.Files // MAPFRONT_GRPC_CA_FILE, MAPFRONT_GRPC_CERT_FILE, MAPFRONT_GRPC_KEY_FILE
	// DevPlaintext: MAPFRONT_INSECURE_DEV_PLAINTEXT=1, plaintext to a
	// loopback server, for development only.
	DevPlaintext bool
	// SubmitTimeout bounds one SubmitBatch stream, the server's work included.
	SubmitTimeout time.Duration // MAPFRONT_SUBMIT_TIMEOUT, default 30m

	// Calendar holds the business day, which must match the server's.
	// Zone: MAPFRONT_ZONE, default Asia/Shanghai.
	// Cutover: MAPFRONT_CUTOVER (HH:MM), default 00:00.
	// Offset: MAPFRONT_SETTLE_OFFSET, default 30m.
	// Deadline: MAPFRONT_SETTLE_DEADLINE, default 6h (after the cutover).
	Calendar calendar.Calendar
	// RetryInterval is the wait between tries for a missing file, and for a
	// server that is down.
	RetryInterval time.Duration // MAPFRONT_SETTLE_RETRY_INTERVAL, default 5m
	// CatchUpDays is the daemon's catch-up horizon: the business dates it
	// settles when it finds them missed (down across their job times), the
	// newest one due among them; an unsettled date older than that is logged
	// as an error and left for `settlement run --date`.
	CatchUpDays int // MAPFRONT_SETTLE_CATCHUP_DAYS, default 7 (1 to 366)
	// ChunkSize is the records and bad lines per streamed message. At most
	// 3000: the longest record or bad line the parser lets through is about
	// 1.2 KB, and gRPC's default message limit is 4 MB.
	ChunkSize int // MAPFRONT_SETTLE_CHUNK, default 1000
	// WorkDir receives downloaded files, kept as the record of what was
	// settled.
	WorkDir string // MAPFRONT_SETTLE_WORKDIR, default $TMPDIR/mapfront-settlement
	// LocalDir, when set, is where the file is taken from instead of FTP
	// (a manual upload directory).
	LocalDir string // MAPFRONT_SETTLE_DIR, default none

	FTP FTP

	// Intake says when a file is complete and how much of it must be
	// readable (issue 15), and the date rules sent to the server (issue 13).
	Intake Intake

	LogLevel slog.Level // MAPFRONT_LOG_LEVEL (debug, info, warn, error), default info
}

// Intake is how a file is taken (SPEC section 6, issues 15 and 13).
type Intake struct {
	// Complete: the checks that tell a complete file, from
	// MAPFRONT_SETTLE_COMPLETE, a comma-separated list of stable, marker and
	// trailer (default stable). Stable's interval is
	// MAPFRONT_SETTLE_STABLE_INTERVAL (default 60s), the marker's suffix
	// MAPFRONT_SETTLE_MARKER_SUFFIX (default .ok).
	Complete fetch.Completeness
	// RequireTrailer: a file without a 合计/TOTAL trailer is incomplete. A
	// trailer present is checked whether required or not.
	RequireTrailer bool
	// MaxBadPermille: above this share of bad lines the batch is rejected
	// (MAPFRONT_SETTLE_MAX_BAD_PERCENT, 0-100, default 50).
	MaxBadPermille int
	// DateTolerance widens the business day for record times
	// (MAPFRONT_SETTLE_DATE_TOLERANCE, default 15m).
	DateTolerance time.Duration
	// LookbackDays: how many business days back a record may confirm a
	// payment left missing_from_file (MAPFRONT_SETTLE_LOOKBACK_DAYS, default 7).
	LookbackDays int
}

// FTP is the POSP's FTP server (SPEC section 6).
type FTP struct {
	Addr     string // MAPFRONT_FTP_ADDR (host or host:port, port 21 by default), default none
	User     string // MAPFRONT_FTP_USER
	Password Secret // MAPFRONT_FTP_PASSWORD, or read from MAPFRONT_FTP_PASSWORD_FILE
	// PasswordFile is where Password came from, if it came from a file.
	PasswordFile string
	Dir          string        // MAPFRONT_FTP_DIR, default the login directory
	Pattern      fetch.Pattern // MAPFRONT_FTP_PATTERN, default {yyyyMMdd}.txt (also for MAPFRONT_SETTLE_DIR)
	DialTimeout  time.Duration // MAPFRONT_FTP_DIAL_TIMEOUT, default 15s
	ReadTimeout  time.Duration // MAPFRONT_FTP_TIMEOUT, default 60s
}

// Load reads the configuration from getenv (os.Getenv in the command).
// Errors: every bad value, joined, each naming its variable.
func Load(getenv func(string) string) (Config, error) {
	l := loader{getenv: getenv}
	c := Config{
		GRPCAddr:      l.addr("MAPFRONT_GRPC_ADDR", "127.0.0.1:9090", ""),
		TLS:           mtls.FilesFromEnv(func(k string) string { return l.str(k, "") }),
		DevPlaintext:  mtls.DevPlaintext(getenv),
		CallTimeout:   l.duration("MAPFRONT_GRPC_TIMEOUT", 30*time.Second),
		SubmitTimeout: l.duration("MAPFRONT_SUBMIT_TIMEOUT", 30*time.Minute),
		Calendar: calendar.Calendar{
			Zone:     l.zone("MAPFRONT_ZONE", "Asia/Shanghai"),
			Cutover:  l.clock("MAPFRONT_CUTOVER", "00:00"),
			Offset:   l.duration("MAPFRONT_SETTLE_OFFSET", 30*time.Minute),
			Deadline: l.duration("MAPFRONT_SETTLE_DEADLINE", 6*time.Hour),
		},
		RetryInterval: l.duration("MAPFRONT_SETTLE_RETRY_INTERVAL", fetch.DefaultInterval),
		CatchUpDays:   l.integer("MAPFRONT_SETTLE_CATCHUP_DAYS", 7, 1, 366),
		ChunkSize:     l.integer("MAPFRONT_SETTLE_CHUNK", 1000, 1, 3000),
		WorkDir:       l.str("MAPFRONT_SETTLE_WORKDIR", filepath.Join(os.TempDir(), "mapfront-settlement")),
		LocalDir:      l.str("MAPFRONT_SETTLE_DIR", ""),
		FTP: FTP{
			Addr:         l.addr("MAPFRONT_FTP_ADDR", "", "21"),
			User:         l.str("MAPFRONT_FTP_USER", ""),
			Password:     Secret(getenv("MAPFRONT_FTP_PASSWORD")),
			PasswordFile: l.str("MAPFRONT_FTP_PASSWORD_FILE", ""),
			Dir:          l.str("MAPFRONT_FTP_DIR", ""),
			Pattern:      l.pattern("MAPFRONT_FTP_PATTERN", fetch.DefaultPattern),
			DialTimeout:  l.duration("MAPFRONT_FTP_DIAL_TIMEOUT", fetch.DefaultDialTimeout),
			ReadTimeout:  l.duration("MAPFRONT_FTP_TIMEOUT", fetch.DefaultReadTimeout),
		},
		Intake: Intake{
			MaxBadPermille: 10 * l.integer("MAPFRONT_SETTLE_MAX_BAD_PERCENT", 50, 0, 100),
			DateTolerance:  l.duration("MAPFRONT_SETTLE_DATE_TOLERANCE", 15*time.Minute),
			LookbackDays:   l.integer("MAPFRONT_SETTLE_LOOKBACK_DAYS", 7, 0, 366),
		},
		LogLevel: l.level("MAPFRONT_LOG_LEVEL", slog.LevelInfo),
	}
	l.complete(&c.Intake)
	if c.Intake.DateTolerance > 12*time.Hour {
		l.fail("MAPFRONT_SETTLE_DATE_TOLERANCE=%v: at most 12h", c.Intake.DateTolerance)
	}
	if c.FTP.Password != "" && c.FTP.PasswordFile != "" {
		l.fail("MAPFRONT_FTP_PASSWORD and MAPFRONT_FTP_PASSWORD_FILE are both set; set one")
	}
	if err := l.err(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Finish completes the configuration after the flags have overridden it:
// it reads the password file and checks what only makes sense together.
// Errors: every problem found, joined.
func (c *Config) Finish() error {
	var errs []error
	if c.FTP.PasswordFile != "" {
		b, err := os.ReadFile(c.FTP.PasswordFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("FTP password file: %w", err))
		}
		// One trailing newline is what editors and `echo` leave behind.
		c.FTP.Password = Secret(strings.TrimRight(string(b), "\r\n"))
	}
	if err := c.Calendar.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("MAPFRONT_CUTOVER/MAPFRONT_SETTLE_OFFSET/MAPFRONT_SETTLE_DEADLINE: %w", err))
	}
	if c.FTP.Addr != "" && c.LocalDir != "" {
		errs = append(errs, errors.New("both MAPFRONT_FTP_ADDR and MAPFRONT_SETTLE_DIR are set: choose one source"))
	}
	if c.FTP.Addr != "" {
		if c.FTP.User == "" {
			errs = append(errs, errors.New("MAPFRONT_FTP_USER is not set"))
		}
		if c.FTP.Password == "" {
			errs = append(errs, errors.New("no FTP password: set MAPFRONT_FTP_PASSWORD or MAPFRONT_FTP_PASSWORD_FILE"))
		}
	}
	if c.RetryInterval <= 0 {
		errs = append(errs, errors.New("MAPFRONT_SETTLE_RETRY_INTERVAL must be positive"))
	}
	return errors.Join(errs...)
}

// Source returns the configured file source, or nil when none is set.
func (c *Config) Source() fetch.Source {
	switch {
	case c.FTP.Addr != "":
		return &fetch.FTP{
			Addr:        c.FTP.Addr,
			User:        c.FTP.User,
			Password:    c.FTP.Password.Reveal(),
			Dir:         c.FTP.Dir,
			Pattern:     c.FTP.Pattern,
			DialTimeout: c.FTP.DialTimeout,
			ReadTimeout: c.FTP.ReadTimeout,
			WorkDir:     c.WorkDir,
			Complete:    c.Intake.Complete,
		}
	case c.LocalDir != "":
		return fetch.Local{Dir: c.LocalDir, Pattern: c.FTP.Pattern, Complete: c.Intake.Complete}
	}
	return nil
}

// complete reads MAPFRONT_SETTLE_COMPLETE and the settings of the checks
// it names.
func (l *loader) complete(in *Intake) {
	v := l.str("MAPFRONT_SETTLE_COMPLETE", "stable")
	stableInterval := l.duration("MAPFRONT_SETTLE_STABLE_INTERVAL", fetch.DefaultStable)
	suffix := l.str("MAPFRONT_SETTLE_MARKER_SUFFIX", ".ok")
	for _, w := range strings.Split(v, ",") {
		switch strings.TrimSpace(w) {
		case "stable":
			if stableInterval <= 0 {
				l.fail("MAPFRONT_SETTLE_STABLE_INTERVAL=%v: must be positive", stableInterval)
			}
			in.Complete.Stable = stableInterval
		case "marker":
			if strings.ContainsAny(suffix, "/\\\x00") {
				l.fail("MAPFRONT_SETTLE_MARKER_SUFFIX=%q: a suffix of the file name, without a slash", suffix)
			}
			in.Complete.MarkerSuffix = suffix
		case "trailer":
			in.RequireTrailer = true
		default:
			l.fail("MAPFRONT_SETTLE_COMPLETE=%q: want a comma-separated list of stable, marker, trailer", v)
			return
		}
	}
}

// loader collects every bad value instead of stopping at the first, so one
// run shows all that needs fixing.
type loader struct {
	getenv func(string) string
	errs   []error
}

func (l *loader) fail(format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf(format, args...))
}
func (l *loader) err() error { return errors.Join(l.errs...) }

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

func (l *loader) duration(name string, def time.Duration) time.Duration {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		l.fail("%s=%q: want a duration such as 30m or 6h", name, v)
		return def
	}
	return d
}

func (l *loader) integer(name string, def, lo, hi int) int {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		l.fail("%s=%q: want a whole number from %d to %d", name, v, lo, hi)
		return def
	}
	return n
}

func (l *loader) zone(name, def string) *time.Location {
	v := l.str(name, def)
	loc, err := time.LoadLocation(v)
	if err != nil {
		l.fail("%s=%q: unknown time zone", name, v)
		return time.UTC
	}
	return loc
}

func (l *loader) clock(name, def string) time.Duration {
	v := l.str(name, def)
	d, err := businessday.ParseCutover(v)
	if err != nil {
		l.fail("%s=%q: %v", name, v, err)
	}
	return d
}

func (l *loader) addr(name, def, defaultPort string) string {
	v := l.str(name, def)
	if v == "" {
		return ""
	}
	a, err := HostPort(v, defaultPort)
	if err != nil {
		l.fail("%s=%q: %v", name, v, err)
	}
	return a
}

func (l *loader) pattern(name string, def fetch.Pattern) fetch.Pattern {
	v := l.str(name, string(def))
	p, err := fetch.ParsePattern(v)
	if err != nil {
		l.fail("%s: %v", name, err)
		return def
	}
	return p
}

func (l *loader) level(name string, def slog.Level) slog.Level {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(v)); err != nil {
		l.fail("%s=%q: want debug, info, warn or error", name, v)
		return def
	}
	return lvl
}

// HostPort checks a host:port address; a bare host gets defaultPort when
// there is one.
func HostPort(s, defaultPort string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	bare := s
	if ip := net.ParseIP(strings.Trim(s, "[]")); ip != nil {
		bare = ip.String()
	}
	if err != nil && defaultPort != "" && (!strings.Contains(s, ":") || net.ParseIP(bare) != nil) {
		host, port, err = bare, defaultPort, nil
	}
	if err != nil || host == "" {
		return "", errors.New("want host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", errors.New("port must be 1 to 65535")
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port), nil
}
