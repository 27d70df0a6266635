package config

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mapfront/settlement/internal/fetch"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != "127.0.0.1:9090" || c.CallTimeout != 30*time.Second || c.SubmitTimeout != 30*time.Minute ||
		c.Calendar.Zone.String() != "Asia/Shanghai" || c.Calendar.Cutover != 0 || c.Calendar.Offset != 30*time.Minute ||
		c.Calendar.Deadline != 6*time.Hour || c.RetryInterval != 5*time.Minute || c.ChunkSize != 1000 || c.CatchUpDays != 7 ||
		c.FTP.Pattern != fetch.DefaultPattern || c.FTP.Addr != "" || c.LogLevel != slog.LevelInfo {
		t.Errorf("defaults %+v", c)
	}
	if c.Source() != nil {
		t.Error("a source without configuration")
	}
}

func TestFTPFromEnv(t *testing.T) {
	c, err := Load(env(map[string]string{
		"MAPFRONT_FTP_ADDR":     "posp.example",
		"MAPFRONT_FTP_USER":     "map",
		"MAPFRONT_FTP_PASSWORD": "hunter2",
		"MAPFRONT_FTP_DIR":      "/out",
		"MAPFRONT_FTP_PATTERN":  "JS{yyyy}{MM}{dd}.txt",
		"MAPFRONT_CUTOVER":      "23:30",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	src, ok := c.Source().(*fetch.FTP)
	if !ok || src.Addr != "posp.example:21" || src.Password != "hunter2" || src.Dir != "/out" || src.Pattern != "JS{yyyy}{MM}{dd}.txt" {
		t.Errorf("source %+v", c.Source())
	}
	if c.Calendar.Cutover != 23*time.Hour+30*time.Minute {
		t.Errorf("cutover %v", c.Calendar.Cutover)
	}
	// The password shows nowhere.
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password printed: %s", s)
		}
	}
}

func TestPasswordFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{"MAPFRONT_FTP_ADDR": "h:2121", "MAPFRONT_FTP_USER": "u", "MAPFRONT_FTP_PASSWORD_FILE": path}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil || c.FTP.Password.Reveal() != "s3cret" {
		t.Errorf("password %q, %v", c.FTP.Password.Reveal(), err)
	}
	c.FTP.PasswordFile = filepath.Join(t.TempDir(), "none")
	if err := c.Finish(); err == nil {
		t.Error("missing password file accepted")
	}
}

func TestBadValues(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string // in the error
	}{
		{map[string]string{"MAPFRONT_ZONE": "Mars/Olympus"}, "MAPFRONT_ZONE"},
		{map[string]string{"MAPFRONT_CUTOVER": "24:00"}, "MAPFRONT_CUTOVER"},
		{map[string]string{"MAPFRONT_CUTOVER": "0:30"}, "MAPFRONT_CUTOVER"},
		{map[string]string{"MAPFRONT_SETTLE_OFFSET": "half an hour"}, "MAPFRONT_SETTLE_OFFSET"},
		{map[string]string{"MAPFRONT_SETTLE_DEADLINE": "-1h"}, "MAPFRONT_SETTLE_DEADLINE"},
		{map[string]string{"MAPFRONT_SETTLE_CHUNK": "0"}, "MAPFRONT_SETTLE_CHUNK"},
		{map[string]string{"MAPFRONT_SETTLE_CATCHUP_DAYS": "0"}, "MAPFRONT_SETTLE_CATCHUP_DAYS"},
		{map[string]string{"MAPFRONT_GRPC_ADDR": "localhost"}, "MAPFRONT_GRPC_ADDR"},
		{map[string]string{"MAPFRONT_FTP_ADDR": "h:99999"}, "MAPFRONT_FTP_ADDR"},
		{map[string]string{"MAPFRONT_FTP_PATTERN": "{date}.txt"}, "MAPFRONT_FTP_PATTERN"},
		{map[string]string{"MAPFRONT_LOG_LEVEL": "loud"}, "MAPFRONT_LOG_LEVEL"},
		{map[string]string{"MAPFRONT_FTP_PASSWORD": "a", "MAPFRONT_FTP_PASSWORD_FILE": "/x"}, "both set"},
	}
	for _, c := range cases {
		_, err := Load(env(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want one naming %s", c.env, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter") {
			t.Errorf("secret in %v", err)
		}
	}

	finishCases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"MAPFRONT_SETTLE_OFFSET": "7h"}, "deadline"},
		{map[string]string{"MAPFRONT_FTP_ADDR": "h", "MAPFRONT_FTP_PASSWORD": "p"}, "MAPFRONT_FTP_USER"},
		{map[string]string{"MAPFRONT_FTP_ADDR": "h", "MAPFRONT_FTP_USER": "u"}, "no FTP password"},
		{map[string]string{"MAPFRONT_FTP_ADDR": "h", "MAPFRONT_FTP_USER": "u", "MAPFRONT_FTP_PASSWORD": "p", "MAPFRONT_SETTLE_DIR": "/d"}, "choose one"},
		{map[string]string{"MAPFRONT_SETTLE_RETRY_INTERVAL": "0s"}, "RETRY_INTERVAL"},
	}
	for _, c := range finishCases {
		cfg, err := Load(env(c.env))
		if err != nil {
			t.Errorf("%v: Load: %v", c.env, err)
			continue
		}
		if err := cfg.Finish(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: Finish = %v, want %s", c.env, err, c.want)
		}
	}
}

func TestHostPort(t *testing.T) {
	good := map[string]string{"h": "h:21", "h:2121": "h:2121", "127.0.0.1": "127.0.0.1:21", "[::1]:21": "[::1]:21", "::1": "[::1]:21"}
	for in, want := range good {
		if got, err := HostPort(in, "21"); err != nil || got != want {
			t.Errorf("HostPort(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{":21", "h:0", "h:x"} {
		if _, err := HostPort(in, "21"); err == nil {
			t.Errorf("HostPort(%q) accepted", in)
		}
	}
}
