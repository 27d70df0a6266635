package load

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"mapfront/bench/internal/identity"
	"mapfront/bench/internal/pinblock"
)

// BodiesConfig is a set of ready pay requests for an external HTTP load tool
// (bench/wrk/pay.lua), which cannot build PIN blocks itself.
type BodiesConfig struct {
	Customers int               // customers 0..Customers-1 (identity) are drawn at random
	Files     int               // one file per load-tool thread: bodies.0 .. bodies.<Files-1>
	PerFile   int               // pay bodies in each file
	Password  string            // the customers' payment password (provision sets it)
	PINs      *pinblock.Builder // under the bench terminals' TPK
	Terminals int               // bench terminals registered by provision
	BatchNo   string            // this set's batch: makes its terminal keys new
	Seed      uint64            // random customers and sums; same seed, same bodies
	MaxSum    int64             // pays are 1..MaxSum fen
}

// maxPerFile keeps terminalOrderId within its 12 digits: 4 for the file, 8
// for the counter.
const maxPerFile = 100_000_000

// Validate checks that the set is bounded and its inputs usable.
func (c *BodiesConfig) Validate() error {
	var errs []error
	if c.Customers < 1 || c.Customers > identity.MaxCustomers {
		errs = append(errs, fmt.Errorf("customers %d: want 1..%d", c.Customers, identity.MaxCustomers))
	}
	if c.Files < 1 || c.Files > c.Terminals {
		errs = append(errs, fmt.Errorf("files %d: want 1..terminals (%d), each file has terminals of its own", c.Files, c.Terminals))
	}
	if c.PerFile < 1 || c.PerFile >= maxPerFile {
		errs = append(errs, fmt.Errorf("bodies per file %d: want 1..%d", c.PerFile, maxPerFile-1))
	}
	if c.PINs == nil {
		errs = append(errs, errors.New("no PIN key"))
	}
	if c.BatchNo == "" || len(c.BatchNo) > 20 {
		errs = append(errs, fmt.Errorf("batch %q: want 1..20 characters", c.BatchNo))
	}
	if c.MaxSum < 1 {
		errs = append(errs, fmt.Errorf("max sum %d: want at least 1 fen", c.MaxSum))
	}
	if len(c.Password) != 6 {
		errs = append(errs, errors.New("password must be 6 digits"))
	}
	return errors.Join(errs...)
}

// BodyFile is the name of file i of a body set in dir.
func BodyFile(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("bodies.%d", i))
}

// WriteBodies writes cfg.Files files into dir, each cfg.PerFile pay bodies
// for /front/offline/pay, one JSON object per line, exactly as the HTTP
// client sends them (Body). Every body has a terminal key of its own, never
// repeated in the set: file i uses the terminals i, i+Files, i+2*Files, ...
// in turn, and terminalOrderId is the file number (4 digits) and a counter
// (8 digits). A load tool thread that sends one file's bodies in order thus
// has its requests in flight on different terminals, as real terminals send
// one request at a time. Customers (random, uniform) and sums (1..MaxSum
// fen) follow Seed; the PIN block is the customer's real one.
func WriteBodies(cfg BodiesConfig, dir string) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	for i := 0; i < cfg.Files; i++ {
		if err := writeBodyFile(&cfg, i, BodyFile(dir, i)); err != nil {
			return err
		}
	}
	return nil
}

func writeBodyFile(cfg *BodiesConfig, file int, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(file)))
	var own []Terminal // this file's terminals
	for t := file; t < cfg.Terminals; t += cfg.Files {
		own = append(own, BenchTerminal(t))
	}
	for k := 0; k < cfg.PerFile; k++ {
		mobile := identity.Mobile(rng.IntN(cfg.Customers))
		block, err := cfg.PINs.Build(cfg.Password, mobile)
		if err != nil {
			f.Close()
			return err
		}
		body, err := Body(&Txn{Op: OpPay, Terminal: own[k%len(own)], BatchNo: cfg.BatchNo,
			TerminalOrderID: fmt.Sprintf("%04d%08d", file, k), ConsumerID: mobile, PINBlock: block,
			Sum: 1 + rng.Int64N(cfg.MaxSum)})
		if err != nil {
			f.Close()
			return err
		}
		w.Write(body)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
