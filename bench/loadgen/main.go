// Command loadgen measures mapfront's throughput the way the POSP loads it.
// It only wires flags to bench/internal/load; the work is done there.
//
//	loadgen provision -customers N   create the bench customers and terminals (AdminService)
//	loadgen run -customers N -c 16 -d 30s   send terminal transactions and report
//	loadgen bodies -customers N -n 600000 -files 2 -out DIR   ready pay bodies for wrk (bench/wrk/pay.lua)
//	loadgen measure -db NAME -pid server=PID -out FILE -- CMD ARGS   CMD's CPU and that of the others while it runs
//
// Both only ever target loopback addresses: this is a measuring tool for a
// local deployment, not a client for a shared one. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mapfront/bench/internal/load"
	"mapfront/bench/internal/pinblock"
	"mapfront/bench/internal/proccpu"
	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/mtls"
)

// The demo TPK of SPEC section 8 (public test data, not a secret) and the
// payment password provision gives every bench customer: both are what a
// bench terminal and its customers are expected to use unless told otherwise.
const (
	demoTPK       = "0123456789ABCDEFFEDCBA9876543210"
	benchPassword = "258036"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	// SIGINT/SIGTERM end a run early but cleanly: no new requests, the report
	// still printed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "provision":
		err = provision(ctx, os.Args[2:])
	case "run":
		err = run(ctx, os.Args[2:])
	case "bodies":
		err = bodies(os.Args[2:])
	case "measure":
		err = measure(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen provision|run|bodies|measure [flags]   (loadgen SUBCOMMAND -h)")
	os.Exit(2)
}

// common are the flags both subcommands share: they must agree for run to
// find what provision made.
type common struct {
	customers int
	grpcAddr  string
	password  string
	tpk       string
	terminals int
	// tls: the loadgen's certificate; provision needs an identity with the
	// admin and operator roles, a grpc-mode run one with posp.
	tls mtls.Files
}

func (c *common) register(fs *flag.FlagSet) {
	fs.IntVar(&c.customers, "customers", 1000, "number of bench customers (mobile 150xxxxxxxx by index)")
	fs.StringVar(&c.grpcAddr, "grpc-addr", "127.0.0.1:9090", "mapfront gRPC server (loopback only)")
	fs.StringVar(&c.password, "password", benchPassword, "the bench customers' payment password")
	fs.StringVar(&c.tpk, "tpk", demoTPK, "the bench terminals' PIN key (32 hex digits)")
	fs.IntVar(&c.terminals, "terminals", 64, "bench terminals BENCH0001.. (workers share them round-robin)")
	c.tls = mtls.FilesFromEnv(os.Getenv)
	c.tls.Register(fs)
}

func provision(ctx context.Context, args []string) error {
	var c common
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	c.register(fs)
	concurrency := fs.Int("concurrency", 16, "customers provisioned at once")
	topUp := fs.Int64("topup", 5_000_000, "cash credited once per customer, in fen (up to the server's four-eyes threshold, -topup-approval-above, default 5000000: a larger top-up waits for a supervisor)")
	timeout := fs.Duration("timeout", 30*time.Second, "per admin call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Check the key before creating anything with it.
	if _, err := pinblock.NewBuilderHex(c.tpk); err != nil {
		return err
	}
	conn, err := load.Dial(c.grpcAddr, c.tls, mtls.DevPlaintext(os.Getenv))
	if err != nil {
		return err
	}
	defer conn.Close()
	rep, err := load.Provision(ctx, mapfrontv1.NewAdminServiceClient(conn), load.ProvisionConfig{
		Customers: c.customers, Concurrency: *concurrency, Password: c.password, TopUp: *topUp,
		TPKHex: c.tpk, Terminals: c.terminals, Timeout: *timeout,
	}, os.Stderr)
	if rep != nil {
		rep.Write(os.Stdout)
	}
	return err
}

func run(ctx context.Context, args []string) error {
	var c common
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	c.register(fs)
	concurrency := fs.Int("c", 16, "concurrent workers (terminals sending one request at a time)")
	duration := fs.Duration("d", 30*time.Second, "how long to send")
	maxReq := fs.Int64("n", 0, "stop after this many requests (0: -d alone)")
	mixFlag := fs.String("mix", load.DefaultMix.String(), "operation weights, e.g. pay=80,query=10,cancel=5,undo=5")
	mode := fs.String("mode", "http", "http (legacy JSON through the gateway) or grpc (OfflineService directly)")
	gateway := fs.String("gateway", "http://127.0.0.1:8080", "gateway base URL (loopback only)")
	batch := fs.String("batch", time.Now().Format("20060102150405"), "batchNo of this run (new keys for every run)")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed (customers, sums, mix)")
	maxSum := fs.Int64("max-sum", 9, "pays are 1..max-sum fen")
	timeout := fs.Duration("timeout", 30*time.Second, "per request")
	out := fs.String("out", "", "also write the numbers as key=value lines to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mix, err := load.ParseMix(*mixFlag)
	if err != nil {
		return err
	}
	pins, err := pinblock.NewBuilderHex(c.tpk)
	if err != nil {
		return err
	}
	var client load.Client
	target := *gateway
	switch *mode {
	case "http":
		client, err = load.NewHTTPClient(*gateway, *concurrency)
	case "grpc":
		client, err = load.NewGRPCClient(c.grpcAddr, c.tls, mtls.DevPlaintext(os.Getenv))
		target = c.grpcAddr
	default:
		err = fmt.Errorf("mode %q: want http or grpc", *mode)
	}
	if err != nil {
		return err
	}
	defer client.Close()

	fmt.Printf("loadgen run: %s %s, %d workers, %v, %d customers, mix %s\n", *mode, target, *concurrency, *duration, c.customers, mix)
	rep, err := load.Run(ctx, load.RunConfig{
		Customers: c.customers, Concurrency: *concurrency, Duration: *duration, MaxRequests: *maxReq,
		Mix: mix, Password: c.password, PINs: pins, Terminals: c.terminals, BatchNo: *batch,
		Seed: *seed, MaxSum: *maxSum, Timeout: *timeout,
	}, client)
	if err != nil {
		return err
	}
	rep.Write(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		rep.WriteKV(f)
		if err := f.Close(); err != nil {
			return err
		}
	}
	if n := rep.Unexpected(); n > 0 {
		return fmt.Errorf("FAILED: %d unexpected answers (see by errcode)", n)
	}
	return nil
}

// bodies writes ready pay requests for an external HTTP load tool: it
// cannot build PIN blocks, so loadgen does it here, before the run, and the
// tool's threads each send one file's bodies in order (bench/wrk/pay.lua).
func bodies(args []string) error {
	fs := flag.NewFlagSet("bodies", flag.ContinueOnError)
	customers := fs.Int("customers", 1000, "number of bench customers (mobile 150xxxxxxxx by index), as provisioned")
	password := fs.String("password", benchPassword, "the bench customers' payment password")
	tpk := fs.String("tpk", demoTPK, "the bench terminals' PIN key (32 hex digits)")
	terminals := fs.Int("terminals", 64, "bench terminals BENCH0001.. (each file gets terminals of its own)")
	files := fs.Int("files", 2, "files bodies.0.. in -out: one per load tool thread")
	total := fs.Int("n", 100_000, "pay bodies in all, divided among the files (rounded up)")
	out := fs.String("out", "", "directory to write the files into (must exist)")
	batch := fs.String("batch", time.Now().Format("20060102150405"), "batchNo of the bodies (new keys for every set)")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed (customers, sums)")
	maxSum := fs.Int64("max-sum", 9, "pays are 1..max-sum fen")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("bodies: -out is required")
	}
	if *files < 1 || *total < 1 {
		return errors.New("bodies: -files and -n must be positive")
	}
	pins, err := pinblock.NewBuilderHex(*tpk)
	if err != nil {
		return err
	}
	start := time.Now()
	perFile := (*total + *files - 1) / *files
	err = load.WriteBodies(load.BodiesConfig{
		Customers: *customers, Files: *files, PerFile: perFile, Password: *password, PINs: pins,
		Terminals: *terminals, BatchNo: *batch, Seed: *seed, MaxSum: *maxSum,
	}, *out)
	if err != nil {
		return err
	}
	fmt.Printf("loadgen bodies: %d files of %d pay bodies (batch %s) in %s, %.1f s\n",
		*files, perFile, *batch, *out, time.Since(start).Seconds())
	return nil
}

// measure runs a load tool (any command) and reports what it and the
// processes serving it cost in CPU time while it ran: the tool's own user +
// system time (the kernel's accounting of the waited-for child), the
// backends of the -db databases and each -pid process, read from /proc every
// -interval. Key=value lines go to -out; the exit status is the command's.
func measure(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("measure", flag.ContinueOnError)
	var dbs []string
	pids := map[string]int{}
	fs.Func("db", "a PostgreSQL database whose backends to watch (repeatable)", func(v string) error {
		dbs = append(dbs, v)
		return nil
	})
	fs.Func("pid", "NAME=PID: a process to watch (repeatable)", func(v string) error {
		name, p, ok := strings.Cut(v, "=")
		pid, err := strconv.Atoi(p)
		if !ok || name == "" || err != nil || pid < 1 {
			return fmt.Errorf("want NAME=PID, got %q", v)
		}
		pids[name] = pid
		return nil
	})
	interval := fs.Duration("interval", 100*time.Millisecond, "how often to read /proc (an exiting backend loses at most this much)")
	out := fs.String("out", "", "file for the key=value lines (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 || *interval <= 0 {
		return errors.New("measure: want -out FILE, a positive -interval and a command after --")
	}
	w := proccpu.NewWatch(dbs, pids, time.Second)
	if err := w.Start(time.Now()); err != nil {
		return err
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	var runErr error
	interrupted := ctx.Done()
wait:
	for {
		select {
		case now := <-tick.C:
			w.Sample(now)
		case <-interrupted:
			// Stopped (compare.sh's clean-up): the command ends its run early
			// the same way. Ctrl-C reaches it directly, being in our group.
			cmd.Process.Signal(syscall.SIGTERM)
			interrupted = nil
		case runErr = <-done:
			break wait
		}
	}
	wall := time.Since(start)
	w.Sample(time.Now())
	st := cmd.ProcessState
	backend, n := w.Backend()
	var b strings.Builder
	fmt.Fprintf(&b, "wall_s=%.3f\ntool_cpu_s=%.3f\n", wall.Seconds(), (st.UserTime() + st.SystemTime()).Seconds())
	fmt.Fprintf(&b, "pg_cpu_s=%.3f\npg_backends=%d\n", backend.Seconds(), n)
	for name := range pids {
		fmt.Fprintf(&b, "cpu_%s_s=%.3f\n", name, w.Named(name).Seconds())
	}
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if runErr != nil {
		// The command's own output says why; its exit status is ours.
		os.Exit(max(st.ExitCode(), 1))
	}
	return nil
}
