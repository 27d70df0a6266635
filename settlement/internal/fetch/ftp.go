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
// transfer never leaves a file that looks whole.
//
// Errors: ErrNotThere when the server says the file is unavailable (550,
// and the 450/551 some servers use) or its size changed during the
// download (still being written); ErrUnavailable on network trouble,
// timeouts and 4xx replies; ErrAuth when the login is refused; another
// error for a missing Dir or a local write failure.
func (f *FTP) Fetch(ctx context.Context, date calendar.Date) (string, error) {
	name := f.Pattern.Expand(date)
	c, err := f.dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Quit() //nolint:errcheck // the file is already in hand or the error reported

	if err := c.Login(f.User, f.Password); err != nil {
		if transient(err) {
			return "", fmt.Errorf("ftp %s login: %w: %w", f.Addr, ErrUnavailable, err)
		}
		return "", fmt.Errorf("ftp %s login as %q: %w: %w", f.Addr, f.User, ErrAuth, err)
	}
	if f.Dir != "" {
		if err := c.ChangeDir(f.Dir); err != nil {
			if transient(err) {
				return "", fmt.Errorf("ftp %s cd %s: %w: %w", f.Addr, f.Dir, ErrUnavailable, err)
			}
			return "", fmt.Errorf("ftp %s: directory %q (check MAPFRONT_FTP_DIR): %w", f.Addr, f.Dir, err)
		}
	}

	// SIZE before and after the transfer, compared with the bytes received,
	// catches a file that the POSP is still writing. A server without SIZE
	// (500/502) only loses that check.
	sizeBefore, err := f.size(c, name)
	if err != nil {
		return "", err
	}
	resp, err := c.Retr(name)
	if err != nil {
		return "", f.fileErr("retr", name, err)
	}
	local, n, err := f.save(date, name, resp)
	if err != nil {
		return "", err
	}
	sizeAfter, err := f.size(c, name)
	if err == nil && (sizeBefore >= 0 && sizeBefore != n || sizeAfter >= 0 && sizeAfter != n) {
		err = fmt.Errorf("ftp %s: %s changed during the download (size %d, then %d, received %d): still being written: %w",
			f.Addr, name, sizeBefore, sizeAfter, n, ErrNotThere)
	}
	if err != nil {
		os.Remove(local)
		return "", err
	}
	return local, nil
}

// dial connects with a read/write timeout on every connection, control and
// data alike, and closes them when ctx ends.
func (f *FTP) dial(ctx context.Context) (*ftp.ServerConn, error) {
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

// size returns the file's size, or -1 when the server has no SIZE.
func (f *FTP) size(c *ftp.ServerConn, name string) (int64, error) {
	n, err := c.FileSize(name)
	if err == nil {
		return n, nil
	}
	var tp *textproto.Error
	if errors.As(err, &tp) {
		switch tp.Code {
		case ftp.StatusBadCommand, ftp.StatusBadArguments, ftp.StatusNotImplemented, ftp.StatusNotImplementedParameter:
			return -1, nil
		}
	}
	return 0, f.fileErr("size", name, err)
}

// fileErr classifies a failed command on the file itself.
func (f *FTP) fileErr(op, name string, err error) error {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		switch tp.Code {
		case ftp.StatusFileUnavailable, ftp.StatusFileActionIgnored, ftp.StatusPageTypeUnknown:
			// 550 is the standard "no such file"; some servers answer 450
			// (action not taken) or 551 (goftp) for the same.
			return fmt.Errorf("ftp %s: %s: %w: %w", f.Addr, name, ErrNotThere, err)
		}
	}
	if transient(err) {
		return fmt.Errorf("ftp %s: %s %s: %w: %w", f.Addr, op, name, ErrUnavailable, err)
	}
	return fmt.Errorf("ftp %s: %s %s: %w", f.Addr, op, name, err)
}

// save copies the transfer into WorkDir through a .part file.
func (f *FTP) save(date calendar.Date, name string, resp *ftp.Response) (string, int64, error) {
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
