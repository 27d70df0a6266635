package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jlaffaye/ftp"

	"mapfront/settlement/internal/calendar"
)

// Defaults for FTP.
const (
	DefaultDialTimeout = 15 * time.Second
	DefaultReadTimeout = 60 * time.Second
)

// FTP takes the file from the POSP's FTP server in passive mode (EPSV,
// falling back to PASV: the jlaffaye/ftp default, which crosses NAT and
// firewalls where active mode does not).
type FTP struct {
	Addr     string // host:port
	User     string
	Password string // never logged: see LogValue
	// Dir is the directory to change to after login; empty stays in the
	// login directory. A Dir that does not exist is a configuration error.
	Dir string
	// Pattern names the file; it may hold a dated sub-directory, which,
	// unlike Dir, may appear later.
	Pattern Pattern
	// DialTimeout bounds connecting; ReadTimeout bounds each read and write
	// on the control and data connections, so a stalled server cannot hang
	// the job.
	DialTimeout time.Duration
	ReadTimeout time.Duration
	// WorkDir receives the downloaded files (created if needed).
	WorkDir string
	// Complete says how a file is known to be complete (zero: taken as soon
	// as it is there, and its size, when the server tells it, matches).
	Complete Completeness
}

// LogValue lets an FTP be logged without its password.
func (f *FTP) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", f.Addr),
		slog.String("user", f.User),
		slog.String("dir", f.Dir),
		slog.String("pattern", string(f.Pattern)),
	)
}

// Name returns the file's path on the server for date.
func (f *FTP) Name(date calendar.Date) string {
	name := f.Pattern.Expand(date)
	if f.Dir != "" {
		return path.Join(f.Dir, name)
	}
	return name
}

// Fetch downloads the file of date into WorkDir as <yyyyMMdd>-<name>,
// through a .part file renamed only once complete, so that a broken
// transfer never leaves a file that looks whole. The file is taken only when
// the Complete checks hold, and the bytes received must be the size the
// server gave.
//
// Errors: ErrNotThere when the file (550, and the 450/551 some servers use)
// is not there; ErrIncomplete when it is there but changed between looks or
// its done-marker is not there yet; ErrUnavailable on network trouble,
// timeouts, 4xx replies and a transfer that delivered fewer or more bytes
// than the file has (a cut with a false success); ErrAuth when the login is
// refused; ErrConfig for a missing Dir, a file the user may not read, or a
// server that gives no size when only the stability check is configured;
// another error for a local write failure.
func (f *FTP) Fetch(ctx context.Context, date calendar.Date) (string, error) {
	name := f.Pattern.Expand(date)
	conns := &connSet{}
	c, err := f.dial(ctx, conns)
	if err != nil {
		return "", err
	}
	defer c.Quit() //nolint:errcheck // the file is already in hand or the error reported

	if err := c.Login(f.User, f.Password); err != nil {
		if transient(err) {
			return "", fmt.Errorf("ftp %s login: %w: %w", f.Addr, ErrUnavailable, err)
		}
		return "", fmt.Errorf("ftp %s login as %q (check MAPFRONT_FTP_USER and the password): %w: %w", f.Addr, f.User, ErrAuth, err)
	}
	if f.Dir != "" {
		if err := c.ChangeDir(f.Dir); err != nil {
			if transient(err) {
				return "", fmt.Errorf("ftp %s cd %s: %w: %w", f.Addr, f.Dir, ErrUnavailable, err)
			}
			return "", fmt.Errorf("ftp %s: directory %q (check MAPFRONT_FTP_DIR): %w: %w", f.Addr, f.Dir, ErrConfig, err)
		}
	}

	if sfx := f.Complete.MarkerSuffix; sfx != "" {
		if _, err := f.look(c, name+sfx); errors.Is(err, ErrNotThere) {
			// The data file may be there: then it is incomplete, not missing.
			if _, derr := f.look(c, name); derr == nil {
				return "", fmt.Errorf("ftp %s: %s is there but its done-marker %s is not yet: %w", f.Addr, name, name+sfx, ErrIncomplete)
			}
			return "", err
		} else if err != nil {
			return "", err
		}
	}
	seen, err := stable(ctx, f.Complete.Stable, name, func() (info, error) { return f.look(c, name) })
	if err != nil {
		return "", err
	}
	if f.Complete.Stable > 0 && f.Complete.MarkerSuffix == "" && seen.Size < 0 {
		return "", fmt.Errorf("ftp %s: the server tells neither SIZE nor a listing of %s, so the stability check cannot work: "+
			"have the POSP write a done-marker or a trailer and set MAPFRONT_SETTLE_COMPLETE: %w", f.Addr, name, ErrConfig)
	}
	resp, err := c.Retr(name)
	if err != nil {
		if errors.Is(f.fileErr("retr", name, err), ErrNotThere) {
			// The file was just seen: a refusal to send it is a permission
			// the POSP's FTP account must be given, not a file to wait for.
			return "", fmt.Errorf("ftp %s: %s is there but the server refuses to send it (check the read permission of MAPFRONT_FTP_USER %q on it): %w: %w",
				f.Addr, name, f.User, ErrConfig, err)
		}
		return "", f.fileErr("retr", name, err)
	}
	local, n, err := f.save(date, name, resp, conns)
	if err != nil {
		return "", err
	}
	if seen.Size >= 0 && n != seen.Size {
		os.Remove(local)
		return "", fmt.Errorf("ftp %s: download of %s cut short: %d bytes received, the file has %d: %w",
			f.Addr, name, n, seen.Size, ErrUnavailable)
	}
	// A last look catches a file that changed during the download.
	after, err := f.look(c, name)
	if err == nil && !after.same(seen) {
		err = fmt.Errorf("ftp %s: %s changed during the download (size %d, then %d): still being written: %w",
			f.Addr, name, seen.Size, after.Size, ErrIncomplete)
	}
	if err != nil {
		os.Remove(local)
		return "", err
	}
	return local, nil
}

// look returns the file's size and modification time: SIZE and MDTM, or,
// on a server without them, its line of the directory listing. Either is
// -1/zero when the server tells neither.
// Errors: ErrNotThere when the file is not there; fileErr's otherwise.
func (f *FTP) look(c *ftp.ServerConn, name string) (info, error) {
	in := info{Size: -1}
	n, err := c.FileSize(name)
	switch {
	case err == nil:
		in.Size = n
	case unsupported(err):
	default:
		return info{}, f.fileErr("size", name, err)
	}
	if t, err := c.GetTime(name); err == nil {
		in.ModTime = t
	}
	if in.Size >= 0 {
		return in, nil
	}
	entries, err := c.List(path.Dir(name))
	if err != nil {
		if unsupported(err) {
			return in, nil
		}
		return info{}, f.fileErr("list", path.Dir(name), err)
	}
	for _, e := range entries {
		if e.Name == path.Base(name) && e.Type == ftp.EntryTypeFile {
			return info{Size: int64(e.Size), ModTime: e.Time}, nil
		}
	}
	return info{}, fmt.Errorf("ftp %s: %s not in the listing: %w", f.Addr, name, ErrNotThere)
}

// unsupported reports a reply meaning the server has no such command.
func unsupported(err error) bool {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		switch tp.Code {
		case ftp.StatusBadCommand, ftp.StatusBadArguments, ftp.StatusNotImplemented, ftp.StatusNotImplementedParameter:
			return true
		}
	}
	return false
}

// connSet holds the connections of one try, so that a failed transfer can
// close them all at once: waiting for the server's reply on the control
// connection after the data connection timed out would take a second
// timeout (one timeout per try).
type connSet struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (s *connSet) add(c net.Conn) {
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// dial connects with a read/write timeout on every connection, control and
// data alike, and closes them when ctx ends.
func (f *FTP) dial(ctx context.Context, conns *connSet) (*ftp.ServerConn, error) {
	dialTimeout := f.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}
	readTimeout := f.ReadTimeout
	if readTimeout <= 0 {
		readTimeout = DefaultReadTimeout
	}
	dialer := net.Dialer{Timeout: dialTimeout}
	dialFunc := func(network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// Closing on ctx's end unblocks any read in progress; the
		// registration goes with the connection.
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		conns.add(conn)
		return &timeoutConn{Conn: conn, timeout: readTimeout, stop: stop}, nil
	}
	c, err := ftp.Dial(f.Addr, ftp.DialWithDialFunc(dialFunc), ftp.DialWithShutTimeout(readTimeout))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("ftp %s: connect: %w: %w", f.Addr, ErrUnavailable, err)
	}
	return c, nil
}

// fileErr classifies a failed command on the file itself.
func (f *FTP) fileErr(op, name string, err error) error {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		switch tp.Code {
		case ftp.StatusFileUnavailable, ftp.StatusFileActionIgnored, ftp.StatusPageTypeUnknown:
			// 550 is the standard "no such file"; some servers answer 450
			// (action not taken) or 551 (goftp) for the same. Some say
			// with the same code that the user may not read the file: that
			// is a setting to fix, not a file to wait for.
			if deniedText(tp.Msg) {
				return fmt.Errorf("ftp %s: %s refused (check the read permission of MAPFRONT_FTP_USER %q): %w: %w",
					f.Addr, name, f.User, ErrConfig, err)
			}
			return fmt.Errorf("ftp %s: %s: %w: %w", f.Addr, name, ErrNotThere, err)
		}
	}
	if transient(err) {
		return fmt.Errorf("ftp %s: %s %s: %w: %w", f.Addr, op, name, ErrUnavailable, err)
	}
	return fmt.Errorf("ftp %s: %s %s: %w", f.Addr, op, name, err)
}

// deniedText reports a reply text that speaks of permission rather than of
// a missing file.
func deniedText(msg string) bool {
	m := strings.ToLower(msg)
	for _, w := range []string{"permission", "privilege", "denied", "not allowed", "access"} {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}

// save copies the transfer into WorkDir through a .part file.
func (f *FTP) save(date calendar.Date, name string, resp *ftp.Response, conns *connSet) (string, int64, error) {
	if err := os.MkdirAll(f.WorkDir, 0o700); err != nil {
		resp.Close()
		return "", 0, fmt.Errorf("settlement work directory: %w", err)
	}
	final := filepath.Join(f.WorkDir, date.String()+"-"+path.Base(name))
	part, err := os.CreateTemp(f.WorkDir, "."+filepath.Base(final)+".*.part")
	if err != nil {
		resp.Close()
		return "", 0, fmt.Errorf("settlement work directory: %w", err)
	}
	defer os.Remove(part.Name()) // a no-op once renamed
	n, copyErr := io.Copy(part, resp)
	if copyErr != nil {
		// The try has failed; the server's reply would only cost another
		// timeout.
		conns.closeAll()
	}
	closeErr := resp.Close() // reads the 226 that says the transfer completed
	if err := errors.Join(copyErr, closeErr); err != nil {
		part.Close()
		return "", 0, fmt.Errorf("ftp %s: download %s: %w: %w", f.Addr, name, ErrUnavailable, err)
	}
	// Synced before the rename, so that after a crash the final name holds
	// either nothing or the whole file.
	if err := errors.Join(part.Sync(), part.Close()); err != nil {
		return "", 0, fmt.Errorf("write %s: %w", part.Name(), err)
	}
	if err := os.Rename(part.Name(), final); err != nil {
		return "", 0, fmt.Errorf("settlement work directory: %w", err)
	}
	return final, n, nil
}

// transient reports whether an FTP error is worth another try: a 4xx reply
// (RFC 959: transient negative completion) or trouble on the connection.
func transient(err error) bool {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code >= 400 && tp.Code < 500
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded)
}

// timeoutConn renews its deadline before every read and write, which turns
// the library's blocking calls into ones that fail after ReadTimeout of
// silence.
type timeoutConn struct {
	net.Conn
	timeout time.Duration
	stop    func() bool
}

func (c *timeoutConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *timeoutConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *timeoutConn) Close() error {
	c.stop()
	return c.Conn.Close()
}
