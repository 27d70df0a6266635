// Package cli is the settlement command: its subcommands, flags and exit
// codes. It wires the configuration, the gRPC connection and the pipeline
// together; the work itself is in the settle, daemon and report packages.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"

	"mapfront/internal/mtls"
	"mapfront/settlement/internal/config"
	"mapfront/settlement/internal/fetch"
	"mapfront/settlement/internal/settle"
)

// Exit codes. Cron and systemd see them; the messages say the rest.
const (
	ExitOK          = 0
	ExitFailed      = 1 // the run failed or the batch is not settled
	ExitUsage       = 2 // bad arguments or configuration
	ExitFileMissing = 3 // the file never came; the batch is recorded as file-missing
	ExitRejected    = 4 // the file was mostly unreadable: batch rejected, nothing applied (an alert)
)

// Env is what the command takes from its process, injected so that tests
// can run it whole.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Now and Sleep are the clock of the business day.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// StderrIsTerminal turns the progress line on.
	StderrIsTerminal bool
}

// OSEnv returns the process's environment.
func OSEnv() Env {
	fi, err := os.Stderr.Stat()
	return Env{
		Stdout:           os.Stdout,
		Stderr:           os.Stderr,
		Getenv:           os.Getenv,
		Now:              time.Now,
		Sleep:            fetch.Sleep,
		StderrIsTerminal: err == nil && fi.Mode()&os.ModeCharDevice != 0,
	}
}

const usage = `usage: settlement <command> [flags]

Commands:
  run [--date yyyyMMdd] [--force]       fetch the day's file (FTP or MAPFRONT_SETTLE_DIR),
                                        settle it and print the report; the date defaults
                                        to the business date that last ended
  run --file PATH [--date yyyyMMdd]     settle a local file (date from the name if not given)
  daemon                                settle every business day at cutover + offset
  exceptions list [--state open|resolved|all] [--date yyyyMMdd] [--limit N]
  exceptions show ID
  exceptions resolve ID --action activate|refund_owed|ignore|link_order
                     [--operator DISPLAY_NAME] [--note TEXT] [--order ORDER_ID]
                                        (activate and refund_owed file a proposal for a supervisor)
  proposals list [--state pending|approved|rejected|all]
  proposals approve|reject ID [--note TEXT]
                                        four-eyes approval of money moved by hand
                                        (approve/reject: a certificate with the supervisor role)
  report --date yyyyMMdd [--csv FILE]   print a batch report, or write it as CSV ("-" for stdout)
  audit [--identity ID] [--target T] [--since T] [--until T] [--limit N]
                                        the audit trail of AdminService and queue changes
                                        (a certificate with the auditor, admin or supervisor role)

Run "settlement <command> -h" for a command's flags. Configuration comes from
MAPFRONT_* variables (see the settlement README); flags override them.

Exit codes: 0 settled/done, 1 failed or not settled, 2 bad usage or configuration
(FTP login, directory, permission), 3 settlement file missing (batch recorded as
file-missing), 4 file rejected as mostly unreadable (nothing applied).
`

// errUsage marks an error as the caller's: exit code 2.
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// Main runs the command with args (without the program name) and returns
// the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(env.Stderr, usage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	cfg, err := config.Load(env.Getenv)
	if err != nil {
		fmt.Fprintf(env.Stderr, "settlement: configuration:\n%v\n", indent(err))
		return ExitUsage
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	a := &app{env: env, cfg: cfg, log: log}
	var cmd func(context.Context, []string) error
	switch args[0] {
	case "run":
		cmd = a.run
	case "daemon":
		cmd = a.daemon
	case "exceptions":
		cmd = a.exceptions
	case "report":
		cmd = a.report
	case "audit":
		cmd = a.audit
	case "proposals":
		cmd = a.proposals
	default:
		fmt.Fprintf(env.Stderr, "settlement: unknown command %q\n\n%s", args[0], usage)
		return ExitUsage
	}
	err = cmd(ctx, args[1:])
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(env.Stderr, "settlement %s: %v\n", args[0], strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return ExitUsage
	case errors.Is(err, fetch.ErrFileMissing):
		fmt.Fprintf(env.Stderr, "settlement %s: FILE MISSING: %v\n", args[0], err)
		return ExitFileMissing
	case errors.Is(err, settle.ErrRejected):
		fmt.Fprintf(env.Stderr, "settlement %s: ALERT: FILE REJECTED: %v\n", args[0], err)
		return ExitRejected
	case errors.Is(err, fetch.ErrConfig) || errors.Is(err, fetch.ErrAuth):
		fmt.Fprintf(env.Stderr, "settlement %s: configuration: %v\n", args[0], err)
		return ExitUsage
	default:
		fmt.Fprintf(env.Stderr, "settlement %s: %v\n", args[0], err)
		return ExitFailed
	}
}

func indent(err error) string {
	return "  " + strings.ReplaceAll(err.Error(), "\n", "\n  ")
}

// app is one invocation: its configuration, logger and connection.
type app struct {
	env  Env
	cfg  config.Config
	log  *slog.Logger
	conn *grpc.ClientConn
}

// dial connects to the server. grpc.NewClient connects lazily, so a server
// that is down shows up as Unavailable on the first call.
func (a *app) dial() (*grpc.ClientConn, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	// Mutual TLS: the server knows the command by its certificate
	// (MAPFRONT_GRPC_*_FILE) and allows what its identity's roles allow.
	creds, err := mtls.DialCredentials(a.cfg.GRPCAddr, a.cfg.TLS, a.cfg.DevPlaintext)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	conn, err := grpc.NewClient(a.cfg.GRPCAddr, creds,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
	)
	if err != nil {
		return nil, fmt.Errorf("gRPC %s: %w", a.cfg.GRPCAddr, err)
	}
	a.conn = conn
	return conn, nil
}

func (a *app) close() {
	if a.conn != nil {
		a.conn.Close()
	}
}

// newFlags returns a flag set that reports to stderr and returns errors
// instead of exiting.
func (a *app) newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("settlement "+name, flag.ContinueOnError)
	fs.SetOutput(a.env.Stderr)
	return fs
}

// sourceFlags registers the flags that override the file source and server
// settings; their defaults are the environment's values.
func (a *app) sourceFlags(fs *flag.FlagSet) {
	c := &a.cfg
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "mapfront gRPC address (MAPFRONT_GRPC_ADDR)")
	fs.StringVar(&c.FTP.Addr, "ftp-addr", c.FTP.Addr, "POSP FTP server host:port (MAPFRONT_FTP_ADDR)")
	fs.StringVar(&c.FTP.User, "ftp-user", c.FTP.User, "FTP user (MAPFRONT_FTP_USER)")
	// No --ftp-password: a password on the command line is visible to every
	// user through ps.
	fs.StringVar(&c.FTP.PasswordFile, "ftp-password-file", c.FTP.PasswordFile, "file holding the FTP password (MAPFRONT_FTP_PASSWORD_FILE)")
	fs.StringVar(&c.FTP.Dir, "ftp-dir", c.FTP.Dir, "FTP directory (MAPFRONT_FTP_DIR)")
	fs.Func("ftp-pattern", "file-name pattern with {yyyyMMdd}, {yyyy}, {MM}, {dd} (MAPFRONT_FTP_PATTERN, default "+string(c.FTP.Pattern)+")", func(s string) error {
		p, err := fetch.ParsePattern(s)
		if err != nil {
			return err
		}
		c.FTP.Pattern = p
		return nil
	})
	fs.StringVar(&c.LocalDir, "dir", c.LocalDir, "take the file from this local directory instead of FTP (MAPFRONT_SETTLE_DIR)")
	fs.StringVar(&c.WorkDir, "workdir", c.WorkDir, "where downloaded files are kept (MAPFRONT_SETTLE_WORKDIR)")
}

// finishConfig checks the configuration once flags have overridden it.
func (a *app) finishConfig() error {
	if err := a.cfg.Finish(); err != nil {
		return usageErr("configuration:\n%s", indent(err))
	}
	if a.cfg.FTP.Addr != "" {
		addr, err := config.HostPort(a.cfg.FTP.Addr, "21")
		if err != nil {
			return usageErr("--ftp-addr %q: %v", a.cfg.FTP.Addr, err)
		}
		a.cfg.FTP.Addr = addr
	}
	if _, err := config.HostPort(a.cfg.GRPCAddr, ""); err != nil {
		return usageErr("--grpc-addr %q: %v", a.cfg.GRPCAddr, err)
	}
	return nil
}

// parseArgs parses flags that may come before or after the positional
// arguments ("resolve 42 --action ignore"), which the flag package alone
// does not allow.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
