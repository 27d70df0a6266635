package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"mapfront/internal/legacy"
	"mapfront/internal/mtls"
)

// config is everything the gateway reads at start-up (STYLE 9). Each field
// has a flag and an environment variable; a flag beats the environment, which
// beats the default. A bad value stops start-up with a message naming it.
type config struct {
	Addr              string        // -addr, MAPFRONT_GATEWAY_ADDR: where the POSP connects
	GRPCAddr          string        // -grpc-addr, MAPFRONT_GRPC_ADDR: the mapfront gRPC server
	MaxBodyBytes      int64         // -max-body-bytes: request body bound (SPEC section 7)
	CallTimeout       time.Duration // -call-timeout: deadline of one gRPC call
	ReadHeaderTimeout time.Duration // -read-header-timeout
	ReadTimeout       time.Duration // -read-timeout: headers and body
	WriteTimeout      time.Duration // -write-timeout: must outlast CallTimeout
	IdleTimeout       time.Duration // -idle-timeout: keep-alive connections
	ShutdownTimeout   time.Duration // -shutdown-timeout: grace for in-flight requests
	MaxHeaderBytes    int           // -max-header-bytes
	GRPCMaxMsgBytes   int           // -grpc-max-msg-bytes: both directions
	LogLevel          slog.Level    // -log-level: debug, info, warn or error
	// PprofAddr, when set, serves net/http/pprof there for profiling: off
	// by default, and only on a loopback address (it shows the program's
	// internals to anyone who reaches it).
	PprofAddr string // -pprof-addr, MAPFRONT_GATEWAY_PPROF_ADDR
	// TLS is the gateway's side of the mutual TLS to the server: its
	// certificate names the identity the server gives the posp role.
	TLS mtls.Files // -grpc-ca-file, -grpc-cert-file, -grpc-key-file (MAPFRONT_GRPC_*_FILE)
	// DevPlaintext: MAPFRONT_INSECURE_DEV_PLAINTEXT=1, plaintext gRPC to a
	// loopback server, for development only.
	DevPlaintext bool
	// Edge is the POSP-facing side: TLS, client certificates, source
	// allowlist, rate limits (-tls-*, -allow, -*-limit; SPEC section 7).
	Edge legacy.EdgeConfig
}

func defaultConfig() config {
	return config{
		Addr:              "127.0.0.1:8080",
		GRPCAddr:          "127.0.0.1:9090",
		MaxBodyBytes:      legacy.DefaultMaxBodyBytes,
		CallTimeout:       legacy.DefaultCallTimeout,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       60 * time.Second,
		ShutdownTimeout:   20 * time.Second,
		MaxHeaderBytes:    16 << 10,
		GRPCMaxMsgBytes:   4 << 20,
		LogLevel:          slog.LevelInfo,
		Edge:              legacy.DefaultEdgeConfig(),
	}
}

// loadConfig reads the configuration from args (without the program name)
// and the environment, as lookupEnv (os.LookupEnv) sees it. An empty
// variable counts as unset. It returns flag.ErrHelp for -h.
func loadConfig(args []string, lookupEnv func(string) (string, bool)) (config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", c.Addr, "HTTP listen address for the POSP")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "address of the mapfront gRPC server")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest request body accepted")
	fs.DurationVar(&c.CallTimeout, "call-timeout", c.CallTimeout, "deadline of one gRPC call")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", c.ReadHeaderTimeout, "time to read request headers")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "time to read a whole request")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "time to answer a request; must exceed -call-timeout")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "how long an idle keep-alive connection stays open")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "grace for in-flight requests at shutdown")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", c.MaxHeaderBytes, "largest request header block")
	fs.IntVar(&c.GRPCMaxMsgBytes, "grpc-max-msg-bytes", c.GRPCMaxMsgBytes, "largest gRPC message, either direction")
	fs.TextVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.PprofAddr, "pprof-addr", c.PprofAddr, "serve net/http/pprof on this loopback address (profiling); empty: off")
	c.TLS.Register(fs)
	v, _ := lookupEnv(mtls.EnvInsecureDevPlaintext)
	c.DevPlaintext = v == "1"

	edgeFlags := c.Edge.RegisterFlags(fs, "", "MAPFRONT_GATEWAY_")

	env := []struct{ flag, name string }{
		{"addr", "MAPFRONT_GATEWAY_ADDR"},
		{"grpc-addr", "MAPFRONT_GRPC_ADDR"},
		{"max-body-bytes", "MAPFRONT_GATEWAY_MAX_BODY_BYTES"},
		{"call-timeout", "MAPFRONT_GATEWAY_CALL_TIMEOUT"},
		{"read-header-timeout", "MAPFRONT_GATEWAY_READ_HEADER_TIMEOUT"},
		{"read-timeout", "MAPFRONT_GATEWAY_READ_TIMEOUT"},
		{"write-timeout", "MAPFRONT_GATEWAY_WRITE_TIMEOUT"},
		{"idle-timeout", "MAPFRONT_GATEWAY_IDLE_TIMEOUT"},
		{"shutdown-timeout", "MAPFRONT_GATEWAY_SHUTDOWN_TIMEOUT"},
		{"max-header-bytes", "MAPFRONT_GATEWAY_MAX_HEADER_BYTES"},
		{"grpc-max-msg-bytes", "MAPFRONT_GATEWAY_GRPC_MAX_MSG_BYTES"},
		{"log-level", "MAPFRONT_LOG_LEVEL"},
		{"pprof-addr", "MAPFRONT_GATEWAY_PPROF_ADDR"},
		{"grpc-ca-file", mtls.EnvCAFile},
		{"grpc-cert-file", mtls.EnvCertFile},
		{"grpc-key-file", mtls.EnvKeyFile},
	}
	for _, f := range edgeFlags {
		env = append(env, struct{ flag, name string }{f.Flag, f.Env})
	}
	for _, e := range env {
		f := fs.Lookup(e.flag)
		if !strings.Contains(f.Usage, "$"+e.name) { // mtls.Files.Register names its variables itself
			f.Usage += " [$" + e.name + "]"
		}
		v, ok := lookupEnv(e.name)
		if !ok || v == "" {
			continue
		}
		if err := fs.Set(e.flag, v); err != nil {
			return c, fmt.Errorf("%s=%q: invalid value for -%s (%v)", e.name, v, e.flag, err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return c, c.validate()
}

// validate refuses values that would start a gateway that cannot work, or
// one that could cut off the answer to a transaction that went through.
func (c config) validate() error {
	var errs []error
	for _, a := range []struct{ name, addr string }{{"addr", c.Addr}, {"grpc-addr", c.GRPCAddr}} {
		if _, port, err := net.SplitHostPort(a.addr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("-%s %q: want host:port", a.name, a.addr))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"call-timeout", c.CallTimeout},
		{"read-header-timeout", c.ReadHeaderTimeout},
		{"read-timeout", c.ReadTimeout},
		{"write-timeout", c.WriteTimeout},
		{"idle-timeout", c.IdleTimeout},
		{"shutdown-timeout", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("-%s %v: must be positive", d.name, d.v))
		}
	}
	if c.MaxHeaderBytes <= 0 {
		errs = append(errs, fmt.Errorf("-max-header-bytes %d: must be positive", c.MaxHeaderBytes))
	}
	if c.GRPCMaxMsgBytes <= 0 {
		errs = append(errs, fmt.Errorf("-grpc-max-msg-bytes %d: must be positive", c.GRPCMaxMsgBytes))
	}
	if c.MaxBodyBytes <= 0 || c.MaxBodyBytes > int64(c.GRPCMaxMsgBytes) {
		errs = append(errs, fmt.Errorf("-max-body-bytes %d: must be positive and at most -grpc-max-msg-bytes", c.MaxBodyBytes))
	}
	// The HTTP server drops a response that takes longer than WriteTimeout;
	// the POS would then reverse a pay whose answer was merely late.
	if c.WriteTimeout <= c.CallTimeout {
		errs = append(errs, fmt.Errorf("-write-timeout %v: must exceed -call-timeout %v", c.WriteTimeout, c.CallTimeout))
	}
	if err := c.Edge.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Edge.CheckAddr("", c.Addr); err != nil {
		errs = append(errs, err)
	}
	if c.PprofAddr != "" && !mtls.IsLoopback(c.PprofAddr) {
		errs = append(errs, fmt.Errorf("-pprof-addr %q: only a loopback address (the profiles show the program's internals)", c.PprofAddr))
	}
	return errors.Join(errs...)
}
