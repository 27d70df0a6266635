// Command killtest is the Go half of scripts/kill-during-pay.sh (issue 10,
// "What it must show" 1): it drives pays through the gateway while the
// script kills the server, and then checks in the database that every
// answer told the truth.
//
//	killtest load  -gateway URL -customers N -c C -d D -out answers.tsv
//	killtest check -gateway URL -answers answers.tsv -database-url URL
//
// load sends pays with unique terminal keys and never resends: each key is
// sent once and its answer (errcode, or -1 for no answer) is written as one
// line "terminal batch key errcode". check sends, for every pay answered
// anything but 0 or a business decline (10000, no answer), the POS-style
// reversal (pay_undo of that key, repeated until errcode 0), then reads
// pay_orders: a pay answered 10018 must have moved no money (no pay order of
// its key at all), a pay answered 10000 must be absent or reversed, a pay
// answered 0 must stand. It exits 1 on any violation.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/bench/internal/identity"
	"mapfront/bench/internal/load"
	"mapfront/bench/internal/pinblock"
)

const (
	demoTPK       = "0123456789ABCDEFFEDCBA9876543210" // loadgen's default bench TPK
	benchPassword = "258036"                           // loadgen's default password
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: killtest load|check [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "load":
		err = runLoad(os.Args[2:])
	case "check":
		err = runCheck(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "killtest:", err)
		os.Exit(1)
	}
}

// answer is one pay and what it was answered.
type answer struct {
	terminal load.Terminal
	batch    string
	key      string
	errcode  int
}

func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	gateway := fs.String("gateway", "http://127.0.0.1:18080", "gateway base URL")
	customers := fs.Int("customers", 200, "bench customers provisioned by loadgen")
	terminals := fs.Int("terminals", 64, "bench terminals provisioned by loadgen")
	conc := fs.Int("c", 8, "concurrent workers")
	dur := fs.Duration("d", 30*time.Second, "how long to send")
	out := fs.String("out", "answers.tsv", "answers file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pins, err := pinblock.NewBuilderHex(demoTPK)
	if err != nil {
		return err
	}
	client, err := load.NewHTTPClient(*gateway, *conc)
	if err != nil {
		return err
	}
	defer client.Close()
	batch := time.Now().Format("150405")
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	var mu sync.Mutex
	var sent atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			term := load.BenchTerminal(i % *terminals)
			for n := 0; ctx.Err() == nil; n++ {
				mobile := identity.Mobile(rng.IntN(*customers))
				block, err := pins.Build(benchPassword, mobile)
				if err != nil {
					panic(err)
				}
				t := &load.Txn{Op: load.OpPay, Terminal: term, BatchNo: batch, TerminalOrderID: fmt.Sprintf("k%d-%d", i, n),
					ConsumerID: mobile, PINBlock: block, Sum: 1 + rng.Int64N(9)}
				// Once, never resent; its own deadline, not the run's, so
				// that the last pays are answered too.
				rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
				o := client.Do(rctx, t)
				rcancel()
				sent.Add(1)
				mu.Lock()
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", t.TerminalID, t.BatchNo, t.TerminalOrderID, o.Errcode)
				mu.Unlock()
				if o.Errcode == 10018 || o.Errcode < 0 {
					// A POS waits a moment before its next transaction.
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("killtest load: %d pays sent\n", sent.Load())
	return w.Flush()
}

func readAnswers(path string) ([]answer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var as []answer
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), "\t")
		if len(p) != 4 {
			return nil, fmt.Errorf("bad line %q", sc.Text())
		}
		code, err := strconv.Atoi(p[3])
		if err != nil {
			return nil, err
		}
		term := load.BenchTerminal(0)
		term.TerminalID = p[0]
		as = append(as, answer{terminal: term, batch: p[1], key: p[2], errcode: code})
	}
	return as, sc.Err()
}

// unknown reports whether an answer leaves the outcome unknown to the POS,
// which then reverses: 10000 or no answer at all.
func unknown(code int) bool { return code == 10000 || code < 0 }

func runCheck(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	gateway := fs.String("gateway", "http://127.0.0.1:18080", "gateway base URL")
	path := fs.String("answers", "answers.tsv", "answers file of killtest load")
	dbURL := fs.String("database-url", os.Getenv("MAPFRONT_DATABASE_URL"), "the server's database")
	kills := fs.Int("kills", 0, "kills made during the load (for the report)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	as, err := readAnswers(*path)
	if err != nil {
		return err
	}
	client, err := load.NewHTTPClient(*gateway, 4)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := context.Background()
	// The POS's reversal of every pay whose outcome it does not know.
	reversed := 0
	for _, a := range as {
		if !unknown(a.errcode) {
			continue
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			o := client.Do(ctx, &load.Txn{Op: load.OpUndo, Terminal: a.terminal, BatchNo: a.batch, TerminalOrderID: a.key})
			if o.Errcode == 0 {
				reversed++
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("reversal of %s/%s/%s never answered 0: last %d %s", a.terminal.TerminalID, a.batch, a.key, o.Errcode, o.Errmsg)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	conn, err := pgx.Connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	counts := map[int]int{}
	var violations []string
	for _, a := range as {
		counts[a.errcode]++
		var status string
		err := conn.QueryRow(ctx, `SELECT status FROM pay_orders WHERE kind = 'pay' AND terminal_id = $1 AND batch_no = $2
AND terminal_order_id = $3`, a.terminal.TerminalID, a.batch, a.key).Scan(&status)
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		if v := judge(a, err == nil, status); v != "" {
			violations = append(violations, v)
		}
	}
	fmt.Printf("killtest check: %d pays, %d kills; by errcode:", len(as), *kills)
	for code, n := range counts {
		fmt.Printf(" %d=%d", code, n)
	}
	fmt.Printf("; %d reversals sent; %d violations\n", reversed, len(violations))
	for i, v := range violations {
		if i == 20 {
			break
		}
		fmt.Println("  VIOLATION:", v)
	}
	if len(violations) > 0 {
		return fmt.Errorf("%d answers did not tell the truth", len(violations))
	}
	if counts[0] == 0 {
		return fmt.Errorf("no pay was approved: the load did not run")
	}
	return nil
}

// judge returns the violation of one pay's answer by what the database holds
// after the reversals (found: a pay order of its key exists, with status), or
// "". 10018 promised no effect; an unknown outcome was reversed; 0 stands.
// Other errcodes (business declines) moved nothing by the pay rules and are
// not this test's subject.
func judge(a answer, found bool, status string) string {
	switch {
	case a.errcode == 10018 && found:
		return fmt.Sprintf("%s/%s answered 10018 but its pay is %s", a.terminal.TerminalID, a.key, status)
	case unknown(a.errcode) && found && status != "reversed":
		return fmt.Sprintf("%s/%s answered %d, reversed, but its pay is %s", a.terminal.TerminalID, a.key, a.errcode, status)
	case a.errcode == 0 && (!found || status != "success"):
		return fmt.Sprintf("%s/%s answered 0 but its pay is %q (found %v)", a.terminal.TerminalID, a.key, status, found)
	}
	return ""
}
