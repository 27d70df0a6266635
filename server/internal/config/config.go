// Package config is the server's one typed configuration: every setting with
// its default beside it, read from flags with environment fallbacks, secrets
// from the environment or a file. A bad value stops start-up with a message;
// nothing falls back silently.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"mapfront/internal/legacy"
	"mapfront/internal/mtls"
	"mapfront/server/internal/mapfront"
)

// Config is the server's configuration.
type Config struct {
	DatabaseURL string         // MAPFRONT_DATABASE_URL or DATABASE_URL
	GRPCAddr    string         // MAPFRONT_GRPC_ADDR, default 127.0.0.1:9090
	HTTPAddr    string         // MAPFRONT_HTTP_ADDR (health, readiness, metrics; pprof only on loopback), default 127.0.0.1:9091
	LegacyAddr  string         // MAPFRONT_LEGACY_ADDR: also serve the legacy JSON paths in-process (single binary); empty: off
	Zone        *time.Location // MAPFRONT_ZONE, default Asia/Shanghai
	Cutover     time.Duration  // MAPFRONT_CUTOVER (HH:MM), default 00:00
	Policy      mapfront.Policy
	// PINBudget is the wrong-PIN budget per terminal (SPEC section 7):
	// MAPFRONT_TERMINAL_PIN_LIMIT (default 20, 0 off),
	// MAPFRONT_TERMINAL_PIN_WINDOW (10m), MAPFRONT_TERMINAL_PIN_SUSPENSION (10m).
	PINBudget        mapfront.PINBudget
	MaxConns         int32         // MAPFRONT_DB_MAX_CONNS, default 16
	StatementTimeout time.Duration // MAPFRONT_STATEMENT_TIMEOUT, default 5s
	MaxMessageBytes  int           // MAPFRONT_GRPC_MAX_MESSAGE, default 4 MiB
	ShutdownTimeout  time.Duration // MAPFRONT_SHUTDOWN_TIMEOUT, default 15s
	LogLevel         string        // MAPFRONT_LOG_LEVEL: debug, info, warn, error
	// Group commit of pays (mapfront.GroupConfig): the most pays in one
	// transaction (MAPFRONT_PAY_BATCH_MAX, default 64; 1 turns it off), how
	// long a batch waits for more pays before it starts
	// (MAPFRONT_PAY_BATCH_WAIT, default 0: never) and how many batches may be
	// in the database at once (MAPFRONT_PAY_BATCH_LANES, default 1; more
	// load the next batch while one commits, BENCHMARKS.md 2026-11-29).
	PayBatchMax   int
	PayBatchWait  time.Duration
	PayBatchLanes int
	// CompletionWindow: how long a card order may stay short of its price
	// before settlement files it for manual handling (MAPFRONT_COMPLETION_WINDOW, default 7 days).
	CompletionWindow time.Duration

	// Internal trust (SPEC section 7): the gRPC listener's mutual TLS and
	// the roles of the identities its client certificates name.
	TLS          mtls.Files // -grpc-ca-file, -grpc-cert-file, -grpc-key-file (MAPFRONT_GRPC_*_FILE)
	RolesFile    string     // MAPFRONT_ROLES_FILE: identity=role[,role] lines (server/internal/authz)
	DevPlaintext bool       // MAPFRONT_INSECURE_DEV_PLAINTEXT=1: plaintext gRPC, loopback only, development only
	// LegacyCert and LegacyKey: the client certificate that single-binary
	// mode's legacy listener presents to the server's own gRPC API over the
	// in-memory connection (its identity needs the posp role), so that
	// authorization holds in both deployments
	// (-legacy-client-cert-file/-legacy-client-key-file,
	// MAPFRONT_LEGACY_CLIENT_CERT_FILE/MAPFRONT_LEGACY_CLIENT_KEY_FILE).
	LegacyCert, LegacyKey string
	// LegacyEdge is the legacy listener's TLS, client certificates, source
	// allowlist and rate limits (-legacy-tls-*, -legacy-allow,
	// -legacy-*-limit; MAPFRONT_LEGACY_*), as the gateway's.
	LegacyEdge legacy.EdgeConfig

	// Now is the clock the services decide by (payTime, business day,
	// cancel window; STYLE 7): nil is time.Now. Only tests set it; no flag
	// or variable does.
	Now func() time.Time

	// Approval: four eyes on money moved by hand (SPEC section 7):
	// MAPFRONT_TOPUP_APPROVAL_ABOVE (fen, default 5000000 = 50,000.00 yuan)
	// and MAPFRONT_PROPOSAL_TTL (default 24h).
	Approval mapfront.ApprovalPolicy
	// ConsoleAddr: the operations console's own listener (MAPFRONT_CONSOLE_ADDR);
	// empty: no console. Never the POSP's port.
	ConsoleAddr string
	// ConsoleIdle: a console session ends after this long without a request
	// (MAPFRONT_CONSOLE_IDLE, default 15m).
	ConsoleIdle time.Duration
}

// LegacyClientTLS is the mutual-TLS files of single-binary mode's in-process
// client: the server's CA with the legacy listener's certificate and key.
func (c *Config) LegacyClientTLS() mtls.Files {
	return mtls.Files{CA: c.TLS.CA, Cert: c.LegacyCert, Key: c.LegacyKey}
}

// Load reads flags (from args) with environment fallbacks. The master key is
// not part of Config: secret.FromEnv reads it, so that it is never printed
// with the configuration.
//
// A value that does not parse (a variable or a flag) is reported alone, the
// first one found: the range checks and the settings that depend on it would
// only repeat it under other names. Values that parse but are refused are
// each reported, naming only their own setting.
func Load(fs *flag.FlagSet, args []string) (*Config, error) {
	c := &Config{}
	e := &envReader{}
	envInt, envDuration := e.int, e.duration
	def := mapfront.DefaultPolicy()
	var zone, cutover, activation, password, rule string
	var payLimit int64
	fs.StringVar(&c.DatabaseURL, "database-url", envOr("MAPFRONT_DATABASE_URL", os.Getenv("DATABASE_URL")), "PostgreSQL URL")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", envOr("MAPFRONT_GRPC_ADDR", "127.0.0.1:9090"), "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", envOr("MAPFRONT_HTTP_ADDR", "127.0.0.1:9091"), "health, readiness and metrics listen address; /debug/pprof/ too when loopback")
	fs.StringVar(&c.LegacyAddr, "legacy-addr", os.Getenv("MAPFRONT_LEGACY_ADDR"), "also serve the legacy JSON paths on this address, in-process (single binary); empty: off")
	fs.StringVar(&zone, "zone", envOr("MAPFRONT_ZONE", "Asia/Shanghai"), "business time zone")
	fs.StringVar(&cutover, "cutover", envOr("MAPFRONT_CUTOVER", "00:00"), "business-day cutover HH:MM (日切时间)")
	fs.StringVar(&activation, "activation", envOr("MAPFRONT_ACTIVATION", string(def.Activation)), "card activation: on_settlement or immediate")
	fs.StringVar(&password, "password-policy", envOr("MAPFRONT_PASSWORD_POLICY", string(def.Password)), "initial payment password: id-last6 or none")
	fs.StringVar(&rule, "account-rule", envOr("MAPFRONT_ACCOUNT_RULE", string(def.Accounts)), "account choice for a mobile number: card-first or cash-first")
	fs.Int64Var(&payLimit, "pay-limit", envInt("MAPFRONT_PAY_LIMIT", def.PayLimit), "per-transaction limit in fen")
	defBudget := mapfront.DefaultPINBudget()
	pinLimit := fs.Int64("terminal-pin-limit", envInt("MAPFRONT_TERMINAL_PIN_LIMIT", int64(defBudget.Limit)), "wrong PINs per terminal (all customers) within -terminal-pin-window that suspend it; 0: off")
	fs.DurationVar(&c.PINBudget.Window, "terminal-pin-window", envDuration("MAPFRONT_TERMINAL_PIN_WINDOW", defBudget.Window), "window of -terminal-pin-limit")
	fs.DurationVar(&c.PINBudget.Suspension, "terminal-pin-suspension", envDuration("MAPFRONT_TERMINAL_PIN_SUSPENSION", defBudget.Suspension), "how long a terminal past its wrong-PIN budget stays suspended")
	maxConns := fs.Int64("db-max-conns", envInt("MAPFRONT_DB_MAX_CONNS", 16), "database pool size")
	fs.DurationVar(&c.StatementTimeout, "statement-timeout", envDuration("MAPFRONT_STATEMENT_TIMEOUT", 5*time.Second), "statement timeout")
	maxMsg := fs.Int64("grpc-max-message", envInt("MAPFRONT_GRPC_MAX_MESSAGE", 4<<20), "gRPC message size limit in bytes")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", envDuration("MAPFRONT_SHUTDOWN_TIMEOUT", 15*time.Second), "graceful shutdown limit")
	fs.DurationVar(&c.CompletionWindow, "completion-window", envDuration("MAPFRONT_COMPLETION_WINDOW", 7*24*time.Hour), "how long a split-paid card may stay incomplete before it becomes an exception")
	c.TLS = mtls.FilesFromEnv(os.Getenv)
	c.TLS.Register(fs)
	fs.StringVar(&c.RolesFile, "roles-file", os.Getenv("MAPFRONT_ROLES_FILE"), "file of identity=role[,role] lines: who may call what on gRPC")
	c.DevPlaintext = mtls.DevPlaintext(os.Getenv)
	fs.StringVar(&c.LegacyCert, "legacy-client-cert-file", os.Getenv("MAPFRONT_LEGACY_CLIENT_CERT_FILE"), "single binary: PEM certificate (role posp) the legacy listener calls the gRPC API with")
	fs.StringVar(&c.LegacyKey, "legacy-client-key-file", os.Getenv("MAPFRONT_LEGACY_CLIENT_KEY_FILE"), "single binary: PEM private key of -legacy-client-cert-file")
	batchMax := fs.Int64("pay-batch-max", envInt("MAPFRONT_PAY_BATCH_MAX", 64), "group commit: most pays in one transaction (1: off, every pay its own transaction)")
	fs.DurationVar(&c.PayBatchWait, "pay-batch-wait", envDuration("MAPFRONT_PAY_BATCH_WAIT", 0), "group commit: how long a batch waits for more pays (0: never)")
	batchLanes := fs.Int64("pay-batch-lanes", envInt("MAPFRONT_PAY_BATCH_LANES", 1), "group commit: batches in the database at once (more than 1: the next loads while one commits)")
	fs.StringVar(&c.LogLevel, "log-level", envOr("MAPFRONT_LOG_LEVEL", "info"), "log level")
	fs.Int64Var(&c.Approval.TopUpAbove, "topup-approval-above", envInt("MAPFRONT_TOPUP_APPROVAL_ABOVE", mapfront.DefaultTopUpApprovalAbove), "cash top-ups of more fen than this, alone or with the account's direct top-ups of the last 24 hours, need a supervisor's approval")
	fs.DurationVar(&c.Approval.TTL, "proposal-ttl", envDuration("MAPFRONT_PROPOSAL_TTL", mapfront.DefaultProposalTTL), "how long a four-eyes proposal waits before it expires")
	fs.StringVar(&c.ConsoleAddr, "console-addr", os.Getenv("MAPFRONT_CONSOLE_ADDR"), "operations console listen address (HTTP); empty: off")
	fs.DurationVar(&c.ConsoleIdle, "console-idle", envDuration("MAPFRONT_CONSOLE_IDLE", 15*time.Minute), "console session idle timeout")
	c.LegacyEdge = legacy.DefaultEdgeConfig()
	for _, f := range c.LegacyEdge.RegisterFlags(fs, "legacy-", "MAPFRONT_LEGACY_") {
		if v := os.Getenv(f.Env); v != "" {
			if err := fs.Set(f.Flag, v); err != nil {
				e.fail(fmt.Errorf("%s=%q: %w", f.Env, v, err))
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if e.err != nil {
		return nil, e.err
	}
	var errs []error
	if err := c.LegacyEdge.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.LegacyAddr != "" {
		if err := c.LegacyEdge.CheckAddr("legacy-", c.LegacyAddr); err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	if c.Zone, err = time.LoadLocation(zone); err != nil {
		errs = append(errs, fmt.Errorf("zone %q: %w", zone, err))
	}
	if c.Cutover, err = mapfront.ParseCutover(cutover); err != nil {
		errs = append(errs, err)
	}
	c.Policy = mapfront.Policy{
		Activation: mapfront.ActivationPolicy(activation), Password: mapfront.PasswordPolicy(password),
		Accounts: mapfront.AccountRule(rule), PayLimit: payLimit, MaxPasswordFailures: def.MaxPasswordFailures,
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if *pinLimit < 0 || *pinLimit > 1_000_000 {
		errs = append(errs, fmt.Errorf("terminal-pin-limit %d out of range 0..1000000", *pinLimit))
	}
	c.PINBudget.Limit = int(*pinLimit)
	switch {
	case c.PINBudget.Limit > 0 && c.PINBudget.Window <= 0:
		errs = append(errs, errors.New("terminal-pin-window must be positive"))
	case c.PINBudget.Limit > 0 && c.PINBudget.Suspension <= 0:
		errs = append(errs, errors.New("terminal-pin-suspension must be positive"))
	case *pinLimit >= 0:
		if err := c.PINBudget.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if *maxConns < 1 || *maxConns > 1000 {
		errs = append(errs, fmt.Errorf("db-max-conns %d out of range 1..1000", *maxConns))
	} else if *batchLanes < 1 || *batchLanes > *maxConns {
		// Checked against a valid pool size only: a bad db-max-conns is
		// its own error, not pay-batch-lanes'.
		errs = append(errs, fmt.Errorf("pay-batch-lanes %d out of range 1..db-max-conns (%d)", *batchLanes, *maxConns))
	}
	c.MaxConns = int32(*maxConns)
	if *batchMax < 1 || *batchMax > 1000 {
		errs = append(errs, fmt.Errorf("pay-batch-max %d out of range 1..1000", *batchMax))
	}
	if c.PayBatchWait < 0 || c.PayBatchWait > time.Second {
		errs = append(errs, fmt.Errorf("pay-batch-wait %v out of range 0..1s", c.PayBatchWait))
	}
	c.PayBatchMax, c.PayBatchLanes = int(*batchMax), int(*batchLanes)
	if *maxMsg < 1024 || *maxMsg > 64<<20 {
		errs = append(errs, fmt.Errorf("grpc-max-message %d out of range", *maxMsg))
	}
	c.MaxMessageBytes = int(*maxMsg)
	if c.CompletionWindow <= 0 {
		errs = append(errs, errors.New("completion-window must be positive"))
	}
	if c.Approval.TopUpAbove <= 0 {
		errs = append(errs, errors.New("topup-approval-above must be positive"))
	}
	if c.Approval.TTL <= 0 {
		errs = append(errs, errors.New("proposal-ttl must be positive"))
	}
	if c.ConsoleIdle <= 0 {
		errs = append(errs, errors.New("console-idle must be positive"))
	}
	// The console serves plain HTTP: loopback only (reach it through an SSH
	// tunnel or a TLS proxy), so that no password or session cookie crosses
	// a network in the clear.
	if c.ConsoleAddr != "" && !mtls.IsLoopback(c.ConsoleAddr) {
		errs = append(errs, fmt.Errorf("console-addr %s: the console serves plain HTTP, so only on a loopback address (put a TLS proxy or an SSH tunnel in front)", c.ConsoleAddr))
	}
	if c.ConsoleAddr != "" && (c.ConsoleAddr == c.LegacyAddr || c.ConsoleAddr == c.GRPCAddr || c.ConsoleAddr == c.HTTPAddr) {
		errs = append(errs, fmt.Errorf("console-addr %s must be a listener of its own (not the POSP, gRPC or health port)", c.ConsoleAddr))
	}
	if c.StatementTimeout <= 0 {
		errs = append(errs, errors.New("statement-timeout must be positive"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	return c, errors.Join(errs...)
}

// RequireDatabase reports a missing database URL.
func (c *Config) RequireDatabase() error {
	if c.DatabaseURL == "" {
		return errors.New("no database: set MAPFRONT_DATABASE_URL (or DATABASE_URL) or -database-url")
	}
	return nil
}

// RequireTLS reports what serving gRPC lacks: the three TLS files and the
// roles file, unless the development plaintext flag is set, which is refused
// on an address that is not loopback (SPEC section 7).
func (c *Config) RequireTLS() error {
	var errs []error
	if c.DevPlaintext {
		if !mtls.IsLoopback(c.GRPCAddr) {
			errs = append(errs, fmt.Errorf("%s=1 is refused with -grpc-addr %q: plaintext gRPC only on a loopback address",
				mtls.EnvInsecureDevPlaintext, c.GRPCAddr))
		}
	} else {
		if err := c.TLS.Check(); err != nil {
			errs = append(errs, err)
		}
		if c.LegacyAddr != "" && (c.LegacyCert == "" || c.LegacyKey == "") {
			errs = append(errs, errors.New("single-binary mode (-legacy-addr) needs -legacy-client-cert-file and -legacy-client-key-file ($MAPFRONT_LEGACY_CLIENT_CERT_FILE, $MAPFRONT_LEGACY_CLIENT_KEY_FILE): a certificate whose identity has the posp role"))
		}
	}
	if c.RolesFile == "" {
		errs = append(errs, errors.New("no roles file: set MAPFRONT_ROLES_FILE or -roles-file (identity=role[,role] lines; nobody may call anything without it)"))
	}
	return errors.Join(errs...)
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// envReader reads the settings' numeric environment variables. The first
// value that does not parse is kept in err, which Load reports; until then
// the default stands in for it (never used: Load stops).
type envReader struct{ err error }

func (e *envReader) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *envReader) int(name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.fail(fmt.Errorf("%s=%q is not an integer", name, v))
		return def
	}
	return n
}

func (e *envReader) duration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.fail(fmt.Errorf("%s=%q is not a duration like 5s", name, v))
		return def
	}
	return d
}
