// Package ftptest gives the settlement tests the POSP's FTP server, a real
// one over TCP on the loopback: goftp.io's server in the test process, or,
// when MAPFRONT_TEST_FTP_ADDR is set, an external daemon such as the vsftpd
// that CI starts (with MAPFRONT_TEST_FTP_USER, _PASSWORD and _DIR).
package ftptest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
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
}

// Start returns the external server of MAPFRONT_TEST_FTP_ADDR, or starts one
// in-process for the test's lifetime.
func Start(t testing.TB) Server {
	t.Helper()
	if addr := os.Getenv("MAPFRONT_TEST_FTP_ADDR"); addr != "" {
		return Server{Addr: addr, User: os.Getenv("MAPFRONT_TEST_FTP_USER"),
			Password: os.Getenv("MAPFRONT_TEST_FTP_PASSWORD"), Dir: os.Getenv("MAPFRONT_TEST_FTP_DIR")}
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "outbox"), 0o755); err != nil {
		t.Fatal(err)
	}
	driver, err := ftpfile.NewDriver(root)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ftpserver.NewServer(&ftpserver.Options{
		Driver:   driver,
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
		l.Close()
		<-done
	})
	return Server{Addr: l.Addr().String(), User: "posp", Password: "s3cret", Dir: "/outbox"}
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
