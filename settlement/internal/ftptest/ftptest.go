// Package ftptest gives the settlement tests the POSP's FTP server, a real
// one over TCP on the loopback: goftp.io's server in the test process, or,
// when MAPFRONT_TEST_FTP_ADDR is set, an external daemon such as the vsftpd
// that CI starts (with MAPFRONT_TEST_FTP_USER, _PASSWORD and _DIR).
package ftptest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"
	ftpserver "goftp.io/server/v2"
	ftpfile "goftp.io/server/v2/driver/file"
)

// Server is where the tests find the FTP server and the directory to use.
type Server struct {
	Addr, User, Password, Dir string
	// Root is the server's directory on the local disk for an in-process
	// server ("" for an external one): a test writes there as the POSP's
	// own programs do, slowly if it likes.
	Root string
}

// Faults make the in-process server misbehave as real ones do (issue 15).
// The zero value is a well-behaved server.
type Faults struct {
	// CutAfter, when positive, makes a download send only that many bytes
	// and still report success (226): a cut transfer with a false success.
	CutAfter int64
	// StallAfter, when positive, makes a download send that many bytes and
	// then go silent until the test ends: a stalled data connection.
	StallAfter int64
	// Deny refuses to send files with this base name, while listing them
	// and telling their size: a file the FTP user may not read.
	Deny string
	// NoSize removes the SIZE and MDTM commands: a minimal server, whose
	// only word on a file's size is its directory listing.
	NoSize bool
}

// Start returns the external server of MAPFRONT_TEST_FTP_ADDR, or starts one
// in-process for the test's lifetime.
func Start(t testing.TB) Server {
	t.Helper()
	if addr := os.Getenv("MAPFRONT_TEST_FTP_ADDR"); addr != "" {
		return Server{Addr: addr, User: os.Getenv("MAPFRONT_TEST_FTP_USER"),
			Password: os.Getenv("MAPFRONT_TEST_FTP_PASSWORD"), Dir: os.Getenv("MAPFRONT_TEST_FTP_DIR")}
	}
	return StartFaulty(t, Faults{})
}

// StartFaulty starts an in-process server with the given faults, whatever
// MAPFRONT_TEST_FTP_ADDR says: an external daemon cannot be made to
// misbehave on cue.
func StartFaulty(t testing.TB, faults Faults) Server {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "outbox"), 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := ftpfile.NewDriver(root)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var commands map[string]ftpserver.Command
	if faults.NoSize {
		commands = map[string]ftpserver.Command{}
		for k, v := range ftpserver.DefaultCommands() {
			if k != "SIZE" && k != "MDTM" {
				commands[k] = v
			}
		}
	}
	srv, err := ftpserver.NewServer(&ftpserver.Options{
		Driver:   faultyDriver{Driver: files, faults: faults, stop: stop},
		Commands: commands,
		Auth:     &ftpserver.SimpleAuth{Name: "posp", Password: "s3cret"},
		Perm:     ftpserver.NewSimplePerm("posp", "posp"),
		Hostname: "127.0.0.1",
		Logger:   quiet{},
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l) //nolint:errcheck // ends when the listener is closed
	}()
	t.Cleanup(func() {
		// Closing the listener ends Serve; Shutdown would race with Serve's
		// own start-up writes.
		close(stop)
		l.Close()
		<-done
	})
	return Server{Addr: l.Addr().String(), User: "posp", Password: "s3cret", Dir: "/outbox", Root: filepath.Join(root, "outbox")}
}

// faultyDriver is the file driver with the Faults on downloads.
type faultyDriver struct {
	ftpserver.Driver
	faults Faults
	stop   chan struct{}
}

func (d faultyDriver) GetFile(ctx *ftpserver.Context, name string, offset int64) (int64, io.ReadCloser, error) {
	if d.faults.Deny != "" && path.Base(name) == d.faults.Deny {
		return 0, nil, errors.New("permission denied")
	}
	size, rc, err := d.Driver.GetFile(ctx, name, offset)
	if err != nil {
		return size, rc, err
	}
	switch {
	case d.faults.CutAfter > 0:
		return size, readCloser{io.LimitReader(rc, d.faults.CutAfter), rc}, nil
	case d.faults.StallAfter > 0:
		return size, readCloser{io.MultiReader(io.LimitReader(rc, d.faults.StallAfter), stall(d.stop)), rc}, nil
	}
	return size, rc, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// stall is a reader that blocks until stop is closed.
type stall chan struct{}

func (s stall) Read([]byte) (int, error) {
	<-s
	return 0, io.EOF
}

// WriteSlowly writes data to name in Root in parts, every interval, as a
// POSP program appending records does, and returns a channel closed when
// it is done; the test's end waits for it. Only for an in-process server.
func (s Server) WriteSlowly(t testing.TB, name string, data []byte, parts int, every time.Duration) <-chan struct{} {
	t.Helper()
	if s.Root == "" {
		t.Fatal("WriteSlowly needs an in-process server")
	}
	done := make(chan struct{})
	f, err := os.Create(filepath.Join(s.Root, name))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		defer f.Close()
		step := (len(data) + parts - 1) / parts
		for i := 0; i < len(data); i += step {
			if _, err := f.Write(data[i:min(i+step, len(data))]); err != nil {
				return
			}
			time.Sleep(every)
		}
	}()
	// The writer finishes before the server's directory is removed.
	t.Cleanup(func() { <-done })
	return done
}

// Subdir makes a directory of the test's own under Dir, removed when the
// test ends, so that runs sharing a server do not meet while files keep
// their real names.
func (s Server) Subdir(t testing.TB) Server {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	sub := "t-" + hex.EncodeToString(b[:])
	c := s.Client(t)
	defer c.Quit() //nolint:errcheck // best effort
	if err := c.MakeDir(sub); err != nil {
		t.Fatalf("ftp mkdir %s: %v", sub, err)
	}
	parent := s
	t.Cleanup(func() {
		c := parent.Client(t)
		defer c.Quit()   //nolint:errcheck // best effort
		c.RemoveDir(sub) //nolint:errcheck // best effort on a shared server
	})
	if s.Dir == "" {
		s.Dir = sub
	} else {
		s.Dir = path.Join(s.Dir, sub)
	}
	return s
}

// Client logs in and changes to Dir.
func (s Server) Client(t testing.TB) *ftp.ServerConn {
	t.Helper()
	c, err := ftp.Dial(s.Addr, ftp.DialWithTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("ftp dial %s: %v", s.Addr, err)
	}
	if err := c.Login(s.User, s.Password); err != nil {
		t.Fatalf("ftp login: %v", err)
	}
	if s.Dir != "" {
		if err := c.ChangeDir(s.Dir); err != nil {
			t.Fatalf("ftp cd %s: %v", s.Dir, err)
		}
	}
	return c
}

// Upload puts a file in Dir as the POSP does, and removes it at the end.
func (s Server) Upload(t testing.TB, name string, data []byte) {
	t.Helper()
	c := s.Client(t)
	defer c.Quit() //nolint:errcheck // best effort
	if err := c.Stor(name, bytes.NewReader(data)); err != nil {
		t.Fatalf("ftp upload %s: %v", name, err)
	}
	t.Cleanup(func() {
		c := s.Client(t)
		defer c.Quit() //nolint:errcheck // best effort
		c.Delete(name) //nolint:errcheck // best effort on a shared server
	})
}

type quiet struct{}

func (quiet) Print(string, interface{})             {}
func (quiet) Printf(string, string, ...interface{}) {}
func (quiet) PrintCommand(string, string, string)   {}
func (quiet) PrintResponse(string, int, string)     {}
