package config

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Load(fs, args)
}

func TestDefaults(t *testing.T) {
	for _, v := range []string{"MAPFRONT_ZONE", "MAPFRONT_CUTOVER", "MAPFRONT_ACTIVATION", "MAPFRONT_PAY_LIMIT"} {
		t.Setenv(v, "")
	}
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != "127.0.0.1:9090" || c.Zone.String() != "Asia/Shanghai" || c.Cutover != 0 ||
		c.Policy.PayLimit != 5_000_000 || c.Policy.Activation != "on_settlement" || c.CompletionWindow != 7*24*time.Hour {
		t.Fatalf("defaults: %+v", c)
	}
}

// A bad value stops start-up with a message naming it; nothing falls back
// silently to a default.
func TestBadValuesStop(t *testing.T) {
	cases := []struct {
		env, val, want string
	}{
		{"MAPFRONT_ZONE", "Mars/Olympus", "zone"},
		{"MAPFRONT_CUTOVER", "25:00", "cutover"},
		{"MAPFRONT_ACTIVATION", "sometimes", "activation"},
		{"MAPFRONT_PASSWORD_POLICY", "birthday", "password policy"},
		{"MAPFRONT_ACCOUNT_RULE", "random", "account rule"},
		{"MAPFRONT_PAY_LIMIT", "lots", "MAPFRONT_PAY_LIMIT"},
		{"MAPFRONT_PAY_LIMIT", "0", "pay limit"},
		{"MAPFRONT_DB_MAX_CONNS", "0", "db-max-conns"},
		{"MAPFRONT_STATEMENT_TIMEOUT", "soon", "MAPFRONT_STATEMENT_TIMEOUT"},
		{"MAPFRONT_COMPLETION_WINDOW", "-1h", "completion-window"},
		{"MAPFRONT_LOG_LEVEL", "loud", "log-level"},
		{"MAPFRONT_LEGACY_ALLOW", "10.0.0.0/40", "MAPFRONT_LEGACY_ALLOW"},
		{"MAPFRONT_LEGACY_TERMINAL_LIMIT", "fast", "MAPFRONT_LEGACY_TERMINAL_LIMIT"},
		{"MAPFRONT_LEGACY_TLS_CERT_FILE", "/etc/cert.pem", "tls-key-file"},
		{"MAPFRONT_LEGACY_ADDR", "0.0.0.0:8080", "plain HTTP"},
		{"MAPFRONT_CONSOLE_ADDR", "0.0.0.0:8090", "console-addr"},
	}
	for _, c := range cases {
		t.Run(c.env+"="+c.val, func(t *testing.T) {
			t.Setenv(c.env, c.val)
			_, err := load(t)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %q", err, c.want)
			}
		})
	}
	if _, err := load(t, "-cutover", "02:30"); err != nil {
		t.Fatalf("flag cutover: %v", err)
	}
}

// The single binary's legacy listener reads the same edge settings as the
// gateway, under -legacy-* and MAPFRONT_LEGACY_*; a flag beats the variable.
func TestLegacyEdge(t *testing.T) {
	t.Setenv("MAPFRONT_LEGACY_ALLOW", "10.8.0.0/16")
	t.Setenv("MAPFRONT_LEGACY_TERMINAL_LIMIT", "5/1s")
	c, err := load(t, "-legacy-terminal-limit", "off", "-legacy-tls-min-version", "1.3")
	if err != nil {
		t.Fatal(err)
	}
	e := c.LegacyEdge
	if e.Allow.String() != "10.8.0.0/16" || e.Limits.Terminal.String() != "off" || e.MinTLS.String() != "1.3" ||
		e.Limits.OpenCard.String() != "10/1m" {
		t.Errorf("legacy edge %+v", e)
	}
}

// A value that does not parse is reported alone, naming its variable: not
// again as an out-of-range number, nor as the fault of a setting checked
// against it. (Found by a newcomer: MAPFRONT_PAY_LIMIT=abc also said "pay
// limit -4611686018427387904 fen out of range", MAPFRONT_CONSOLE_IDLE=x
// blamed topup-approval-above and proposal-ttl too.)
func TestParseErrorAlone(t *testing.T) {
	ints := []string{"MAPFRONT_PAY_LIMIT", "MAPFRONT_TERMINAL_PIN_LIMIT", "MAPFRONT_DB_MAX_CONNS", "MAPFRONT_GRPC_MAX_MESSAGE",
		"MAPFRONT_PAY_BATCH_MAX", "MAPFRONT_PAY_BATCH_LANES", "MAPFRONT_TOPUP_APPROVAL_ABOVE"}
	durations := []string{"MAPFRONT_TERMINAL_PIN_WINDOW", "MAPFRONT_TERMINAL_PIN_SUSPENSION", "MAPFRONT_STATEMENT_TIMEOUT",
		"MAPFRONT_SHUTDOWN_TIMEOUT", "MAPFRONT_COMPLETION_WINDOW", "MAPFRONT_PAY_BATCH_WAIT", "MAPFRONT_PROPOSAL_TTL",
		"MAPFRONT_CONSOLE_IDLE"}
	for _, name := range ints {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, "abc")
			if _, err := load(t); err == nil || err.Error() != name+`="abc" is not an integer` {
				t.Errorf("err = %v, want only %s named", err, name)
			}
		})
	}
	for _, name := range durations {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, "x")
			if _, err := load(t); err == nil || err.Error() != name+`="x" is not a duration like 5s` {
				t.Errorf("err = %v, want only %s named", err, name)
			}
		})
	}
	t.Run("flag", func(t *testing.T) {
		_, err := load(t, "-pay-limit", "abc")
		if err == nil || !strings.Contains(err.Error(), "-pay-limit") || strings.Contains(err.Error(), "\n") {
			t.Errorf("err = %v, want one line naming -pay-limit", err)
		}
	})
}

// A value that parses but is refused names only its own setting.
func TestRefusedValueNamesItsSetting(t *testing.T) {
	cases := []struct {
		env, val, want string
	}{
		{"MAPFRONT_DB_MAX_CONNS", "0", "db-max-conns 0 out of range 1..1000"},
		{"MAPFRONT_DB_MAX_CONNS", "2000", "db-max-conns 2000 out of range 1..1000"},
		{"MAPFRONT_PAY_BATCH_LANES", "20", "pay-batch-lanes 20 out of range 1..db-max-conns (16)"},
		{"MAPFRONT_CONSOLE_IDLE", "0s", "console-idle must be positive"},
		{"MAPFRONT_PROPOSAL_TTL", "-1h", "proposal-ttl must be positive"},
		{"MAPFRONT_TOPUP_APPROVAL_ABOVE", "0", "topup-approval-above must be positive"},
		{"MAPFRONT_TERMINAL_PIN_WINDOW", "0s", "terminal-pin-window must be positive"},
		{"MAPFRONT_TERMINAL_PIN_SUSPENSION", "0s", "terminal-pin-suspension must be positive"},
		{"MAPFRONT_TERMINAL_PIN_LIMIT", "-1", "terminal-pin-limit -1 out of range 0..1000000"},
	}
	for _, c := range cases {
		t.Run(c.env+"="+c.val, func(t *testing.T) {
			t.Setenv(c.env, c.val)
			if _, err := load(t); err == nil || err.Error() != c.want {
				t.Errorf("err = %v, want exactly %q", err, c.want)
			}
		})
	}
	// With the PIN budget off, its window is not checked.
	t.Setenv("MAPFRONT_TERMINAL_PIN_LIMIT", "0")
	t.Setenv("MAPFRONT_TERMINAL_PIN_WINDOW", "0s")
	if _, err := load(t); err != nil {
		t.Errorf("PIN budget off, window 0: %v", err)
	}
}
