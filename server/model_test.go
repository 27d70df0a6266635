package main

// Random histories against the real server, checked with the reference model
// (server/internal/refmodel). Each history runs in a universe of its own
// (sellers, terminals and customers named after the history), so histories
// share a database without seeing each other's state. See README.md, "Model
// histories", for the budgets and the soak command.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"pgregory.net/rapid"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pinblock"
	"mapfront/server/internal/refmodel"
)

// modelPayLimit is the per-transaction limit of the model histories, fen.
const modelPayLimit = 100_000

var modelSoak = flag.Duration("model.soak", 0,
	"run the model histories (sequential, concurrent, crash) in rounds for this long in all; 0: the fixed CI budget")

// The universe of one history: cash balances of the customers, and the PIN
// no customer has (their IDs end in 310nnX, so their PINs start with 310).
const (
	richCash       = 120_000
	lowCash        = 500
	wrongPIN       = "111111"
	badBlock       = "ZZZZZZZZZZZZZZZZ"
	unknownAccount = "2001999999999999"
	bogusOrder     = "ud20000101000000999999"
)

var batches = []string{"000001", "000002"}
var orderNos = []string{"000001", "000002", "000003"}

// world is one history's universe: terminals TA1 and TA2 of seller SA, TB1
// of seller SB (same store id under both), customers C0 (rich), C1 (low
// balance) and C2 (unregistered until an open_card makes them), and an ID
// number that belongs to nobody.
type world struct {
	terms   [3][3]string // seller, store, terminal
	sellers [2]string
	mobiles [3]string
	ids     [4]string
	cfg     *refmodel.Config
	init    *refmodel.State
	// locking: the history mostly sends C0's requests with a wrong PIN,
	// so that five in a row lock the password (10008) now and then.
	locking bool
}

// pinOf is a new customer's password under the id-last6 policy.
func pinOf(id string) string { return strings.ReplaceAll(id[len(id)-6:], "X", "0") }

// spec is a drawn request: the request without what only the run knows (an
// order id, a card's account id), and how to find that.
type spec struct {
	r       refmodel.Request
	advance bool   // not a request: the clock moves on one day (sequential only)
	settle  bool   // the settlement file of the day before confirms its payments (sequential only)
	payOf   string // pay_cancel: the terminal key of the pay whose orderId to send; "" a bogus id
	acctOf  string // consumer by account: a symbol (sequential), or "learned" (concurrent)
	learned int    // concurrent: which learned account
	crash   bool   // crash mode: kill the server while this request runs
	delay   time.Duration
	pinFor  string // the customer whose PIN the block carries ("" the request's own)
}

type mode int

const (
	sequential mode = iota
	concurrent
	crashing
)

// drawSpec draws one request of the history. st is the model's state so
// far (sequential), or the initial state (concurrent).
func drawSpec(rt *rapid.T, w *world, st *refmodel.State, m mode, sent []spec, label string) spec {
	k := rapid.SampledFrom(kindsOf(m)).Draw(rt, label+"kind")
	if k == "resend" && len(sent) == 0 {
		k = "pay"
	}
	return drawKind(rt, w, st, m, sent, k, label)
}

// kindsOf lists what a step of a history may be, each as often as it
// should come.
func kindsOf(m mode) []string {
	kinds := []string{"pay", "pay", "pay", "pay", "cancel", "cancel", "undo", "undo", "open", "open", "open", "repeal", "info", "resend", "resend"}
	if m == sequential {
		kinds = append(kinds, "advance", "settle")
	}
	return kinds
}

// drawKind draws a step of kind k; resend needs something sent.
func drawKind(rt *rapid.T, w *world, st *refmodel.State, m mode, sent []spec, k, label string) spec {
	var s spec
	switch k {
	case "advance":
		return spec{advance: true}
	case "settle":
		return spec{settle: true}
	case "resend":
		s = sent[rapid.IntRange(0, len(sent)-1).Draw(rt, label+"which")]
		s.crash = false
		if s.advance || s.settle || rapid.IntRange(0, 9).Draw(rt, label+"changed") < 7 {
			break // the same packet again
		}
		switch s.r.Kind {
		case refmodel.Pay:
			s.r.Sum++
		case refmodel.OpenCard:
			s.r.HasPaySum, s.r.PaySum = true, s.r.PaySum+1
		case refmodel.CancelPay:
			s.payOf = ""
		}
	default:
		s = drawFresh(rt, w, st, m, sent, k, label)
	}
	if m == crashing {
		s.crash = rapid.IntRange(0, 9).Draw(rt, label+"crash") == 9
		if s.crash {
			s.delay = time.Duration(rapid.IntRange(0, 4000).Draw(rt, label+"delayµs")) * time.Microsecond
		}
	}
	return s
}

func drawFresh(rt *rapid.T, w *world, st *refmodel.State, m mode, sent []spec, k, label string) spec {
	var s spec
	r := &s.r
	t := w.terms[rapid.IntRange(0, 2).Draw(rt, label+"terminal")]
	r.SellerID, r.StoreID, r.TerminalID = t[0], t[1], t[2]
	// rapid leans to small draws: the common case is 0, the rare one the top.
	if rapid.IntRange(0, 15).Draw(rt, label+"wrongSeller") == 15 {
		r.SellerID = w.sellers[1]
		if t[0] == w.sellers[1] {
			r.SellerID = w.sellers[0]
		}
	}
	r.BatchNo = rapid.SampledFrom(batches).Draw(rt, label+"batch")
	r.TerminalOrderID = rapid.SampledFrom(orderNos).Draw(rt, label+"terminalOrderId")
	cust := rapid.IntRange(0, 2).Draw(rt, label+"customer")
	if w.locking && (k == "pay" || k == "info") {
		cust = 0
	}
	switch k {
	case "pay", "info":
		r.Kind = refmodel.Pay
		if k == "info" {
			r.Kind = refmodel.AccountInfo
		}
		s.drawConsumer(rt, w, st, m, cust, label)
		pins := []string{"right", "right", "right", "right", "right", "right", "wrong", "wrong", "bad"}
		if w.locking {
			pins = []string{"wrong", "wrong", "wrong", "wrong", "wrong", "right", "bad"}
		}
		if m == crashing && k == "info" {
			pins = []string{"right"} // a query has no key: a resend of a wrong PIN would count twice
		}
		switch rapid.SampledFrom(pins).Draw(rt, label+"pin") {
		case "right":
			r.PIN = "right"
		case "wrong":
			r.PIN = wrongPIN
		default:
			r.BadBlock = true
		}
		if k == "pay" {
			r.Sum = drawSum(rt, w, st, cust, label)
			r.ProductName = rapid.SampledFrom([]string{"", "", "0号柴油"}).Draw(rt, label+"productName")
		}
	case "cancel":
		r.Kind = refmodel.CancelPay
		// Mostly a pay of this history: an approved one where the model
		// knows (sequential), else any pay sent so far.
		var pays []refmodel.Request
		for _, k := range slices.Sorted(maps.Keys(st.PayKeys)) {
			if p := st.PayKeys[k]; p.State == "approved" {
				key := strings.Split(k, "|")
				pays = append(pays, refmodel.Request{SellerID: p.Seller, StoreID: p.Store, TerminalID: key[0],
					BatchNo: key[1], TerminalOrderID: key[2]})
			}
		}
		for _, x := range sent {
			if x.r.Kind == refmodel.Pay && (m == concurrent || len(pays) == 0) {
				pays = append(pays, x.r)
			}
		}
		if len(pays) > 0 && rapid.IntRange(0, 5).Draw(rt, label+"bogusOrder") < 5 {
			p := pays[rapid.IntRange(0, len(pays)-1).Draw(rt, label+"pay")]
			s.payOf = p.Key()
			if rapid.IntRange(0, 5).Draw(rt, label+"otherTerminal") < 5 {
				r.SellerID, r.StoreID, r.TerminalID = p.SellerID, p.StoreID, p.TerminalID
			}
		}
	case "undo":
		r.Kind = refmodel.UndoPay
	case "repeal":
		r.Kind = refmodel.RepealCard
		for _, x := range sent { // mostly a payment of this history
			if x.r.Kind == refmodel.OpenCard && rapid.IntRange(0, 2).Draw(rt, label+"thisOne") == 0 {
				r.SellerID, r.StoreID, r.TerminalID = x.r.SellerID, x.r.StoreID, x.r.TerminalID
				r.BatchNo, r.TerminalOrderID = x.r.BatchNo, x.r.TerminalOrderID
				break
			}
		}
	case "open":
		r.Kind = refmodel.OpenCard
		r.Mobile, r.IDNumber = w.mobiles[cust], w.ids[cust]
		if cust < 2 && rapid.IntRange(0, 9).Draw(rt, label+"wrongID") == 9 {
			r.IDNumber = w.ids[3]
		}
		r.ProductID = rapid.SampledFrom([]string{"2001", "2001", "2002", "2002", "3999"}).Draw(rt, label+"product")
		price := int64(1000)
		if r.ProductID == "2002" {
			price = 300
		}
		switch rapid.IntRange(0, 6).Draw(rt, label+"paySum") {
		case 0, 1: // absent: the full price, or what the order still needs
		case 2:
			r.HasPaySum, r.PaySum = true, price/2
		case 3:
			r.HasPaySum, r.PaySum = true, price
		case 4:
			r.HasPaySum, r.PaySum = true, 1
		case 5:
			r.HasPaySum, r.PaySum = true, rapid.Int64Range(1, price).Draw(rt, label+"paySumValue")
		default:
			r.HasPaySum, r.PaySum = true, price+1
		}
	}
	return s
}

// drawConsumer names the consumer of a pay or query: a mobile number, an
// account, or something that is neither.
func (s *spec) drawConsumer(rt *rapid.T, w *world, st *refmodel.State, m mode, cust int, label string) {
	switch f := rapid.IntRange(0, 19).Draw(rt, label+"consumerForm"); {
	case f == 19:
		s.r.ConsumerID = "1380000" // neither a mobile nor an account: 10001
	case f >= 12:
		var syms []string
		for sym, a := range st.Accounts {
			if a.Customer == w.mobiles[cust] {
				syms = append(syms, sym)
			}
		}
		sort.Strings(syms)
		syms = append(syms, "unknown")
		if m != sequential {
			syms = append(syms, "learned")
		}
		s.acctOf = rapid.SampledFrom(syms).Draw(rt, label+"account")
		s.learned = rapid.IntRange(0, 3).Draw(rt, label+"learned")
		s.pinFor = w.mobiles[cust]
	default:
		s.r.ConsumerID = w.mobiles[cust]
	}
}

// drawSum draws a pay amount at the limits: 1 fen, the limit and one over,
// a balance exactly and one over, or something small.
func drawSum(rt *rapid.T, w *world, st *refmodel.State, cust int, label string) int64 {
	var balances []int64
	for _, a := range st.Accounts {
		if a.Customer == w.mobiles[cust] {
			balances = append(balances, a.Balance)
		}
	}
	slices.Sort(balances)
	switch rapid.IntRange(0, 11).Draw(rt, label+"sumKind") {
	case 5:
		return 1
	case 6:
		return modelPayLimit
	case 7:
		return modelPayLimit + 1
	case 8, 9:
		if len(balances) > 0 {
			return balances[rapid.IntRange(0, len(balances)-1).Draw(rt, label+"balance")]
		}
	case 10:
		if len(balances) > 0 {
			return balances[rapid.IntRange(0, len(balances)-1).Draw(rt, label+"balance")] + 1
		}
	case 11:
		return 0
	}
	return rapid.Int64Range(1, 2000).Draw(rt, label+"sum")
}

// resolver finds, at run time, the ids a spec names: a pay's orderId by its
// terminal key, an account's id by its symbol, an account learned from an
// answer.
type resolver interface {
	order(payKey string) (string, bool)
	account(sym string, learned int) (string, bool)
}

// stateResolver resolves from the model's bindings (sequential).
type stateResolver struct{ st *refmodel.State }

func (s stateResolver) order(k string) (string, bool)            { return s.st.ServerID("pay|" + k) }
func (s stateResolver) account(sym string, _ int) (string, bool) { return s.st.ServerID(sym) }

// request completes a spec into the request to send.
func (s spec) request(w *world, res resolver) refmodel.Request {
	r := s.r
	if r.Kind == refmodel.CancelPay {
		r.OrderID = bogusOrder
		if id, ok := res.order(s.payOf); ok && s.payOf != "" {
			r.OrderID = id
		}
	}
	if s.acctOf != "" {
		r.ConsumerID = unknownAccount
		if id, ok := res.account(s.acctOf, s.learned); ok {
			r.ConsumerID = id
		}
	}
	if r.PIN == "right" {
		owner := r.ConsumerID
		if s.pinFor != "" {
			owner = s.pinFor
		}
		r.PIN = wrongPIN
		for i, m := range w.mobiles {
			if m == owner {
				r.PIN = pinOf(w.ids[i])
			}
		}
	}
	return r
}

// body writes a request as the POSP sends it.
func body(r refmodel.Request) (string, string) {
	origin := map[string]any{"sellerId": r.SellerID, "storeId": r.StoreID, "terminalId": r.TerminalID,
		"operatorId": "op01", "batchNo": r.BatchNo, "terminalOrderId": r.TerminalOrderID}
	block := func() string {
		if r.BadBlock {
			return badBlock
		}
		b, err := pinblock.Build(r.PIN, r.ConsumerID, modelTPK, pinblock.DoubleLength)
		if err != nil {
			return badBlock // a consumerId that is no PAN: refused before the block matters
		}
		return b
	}
	var v any
	switch r.Kind {
	case refmodel.Pay:
		origin["consumerId"], origin["paymentCodeDES"], origin["sum"] = r.ConsumerID, block(), r.Sum
		if r.ProductName != "" {
			origin["productName"] = r.ProductName
		}
		v = map[string]any{"order": origin}
	case refmodel.AccountInfo:
		origin["consumerId"], origin["paymentCodeDES"] = r.ConsumerID, block()
		v = map[string]any{"query": origin}
	case refmodel.CancelPay:
		origin["orderId"] = r.OrderID
		v = map[string]any{"order": origin}
	case refmodel.UndoPay:
		v = map[string]any{"order": origin}
	case refmodel.OpenCard:
		origin["ID"], origin["mobileNum"], origin["productId"] = r.IDNumber, r.Mobile, r.ProductID
		if r.HasPaySum {
			origin["paySum"] = r.PaySum
		}
		v = origin
	case refmodel.RepealCard:
		v = origin
	}
	b, _ := json.Marshal(v)
	return "/front/offline/" + string(r.Kind), string(b)
}

var modelClient = &http.Client{Timeout: 30 * time.Second}

// send posts a request and reads the envelope into an Answer; an error is
// no answer at all (the connection failed).
func send(base string, r refmodel.Request) (refmodel.Answer, error) {
	path, b := body(r)
	resp, err := modelClient.Post(base+path, "application/json", strings.NewReader(b))
	if err != nil {
		return refmodel.Answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return refmodel.Answer{}, err
	}
	var env struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
		Order   *struct {
			OrderID   string `json:"orderId"`
			AccountID string `json:"accountId"`
			Sum       int64  `json:"sum"`
			Balance   *int64 `json:"balance"`
			Status    string `json:"status"`
			Remark    string `json:"remark"`
		} `json:"order"`
		Card *struct {
			AccountID string `json:"accountId"`
			Balance   *int64 `json:"balance"`
			Status    string `json:"status"`
		} `json:"card"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return refmodel.Answer{}, fmt.Errorf("HTTP %d, not an envelope: %s", resp.StatusCode, raw)
	}
	a := refmodel.Answer{Code: env.Errcode, Msg: env.Errmsg}
	if o := env.Order; o != nil && a.Code == 0 {
		a.OrderID, a.AccountID, a.Sum, a.Status, a.Remark = o.OrderID, o.AccountID, o.Sum, o.Status, o.Remark
		if o.Balance != nil {
			a.Balance, a.HasBalance = *o.Balance, true
		}
	}
	if c := env.Card; c != nil && a.Code == 0 {
		a.AccountID, a.Status = c.AccountID, c.Status
		if c.Balance != nil {
			a.Balance, a.HasBalance = *c.Balance, true
		}
	}
	return a, nil
}

// modelClock is the server's clock in the in-process histories: real time
// from a fixed morning, plus whole days a history adds to cross cutovers.
type modelClock struct {
	start time.Time
	base  time.Time
	days  atomic.Int64
}

func newModelClock() *modelClock {
	zone, _ := time.LoadLocation("Asia/Shanghai")
	return &modelClock{start: time.Now(), base: time.Date(2026, 11, 26, 9, 0, 0, 0, zone)}
}

func (c *modelClock) Now() time.Time {
	return c.base.Add(time.Duration(c.days.Load())*24*time.Hour + time.Since(c.start))
}

// counts are what a run did, for the report.
type counts struct {
	histories, ops, crashes atomic.Int64
	resent                  atomic.Int64 // requests that got no answer and were sent again
	mu                      sync.Mutex
	answers                 map[string]int // "pay 0", "pay 10009": how often each answer came
}

func (c *counts) answer(r refmodel.Request, a refmodel.Answer) {
	c.ops.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answers == nil {
		c.answers = map[string]int{}
	}
	c.answers[fmt.Sprintf("%s %d", r.Kind, a.Code)]++
}

// round runs prop as rapid checks of n histories in a subtest; rapid prints
// the seed and the shrunk history of a failure.
func round(t *testing.T, name string, n int, prop func(*rapid.T)) bool {
	if !flagGiven("rapid.checks") {
		if err := flag.Set("rapid.checks", fmt.Sprint(n)); err != nil {
			t.Fatal(err)
		}
	}
	// Histories of about 15 steps keep CI's budget; -rapid.steps=N for longer.
	if !flagGiven("rapid.steps") {
		if err := flag.Set("rapid.steps", "15"); err != nil {
			t.Fatal(err)
		}
	}
	// Every round's seed is printed (rapid prints a failure's own seed too);
	// -rapid.seed=N runs every round from N.
	if !flagGiven("rapid.seed") {
		if err := flag.Set("rapid.seed", fmt.Sprint(rand.Uint64())); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s: %s histories, -rapid.seed=%s", name, flag.Lookup("rapid.checks").Value, flag.Lookup("rapid.seed").Value)
	return t.Run(name, rapid.MakeCheck(prop))
}

// flagGiven reports whether a flag was on the command line, as it was
// before round set any.
func flagGiven(name string) bool { return cmdline()[name] }

var cmdline = sync.OnceValue(func() map[string]bool {
	given := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return given
})

// soakDeadline is when a test's share of the soak ends (TestModelHistories
// takes 80 %, TestModelCrash 20 %); without a soak, now: one round each.
func soakDeadline(share float64) time.Time {
	return time.Now().Add(time.Duration(float64(*modelSoak) * share))
}

// TestModelHistories runs random histories against the server and
// PostgreSQL through the legacy HTTP path and checks them with the model:
// sequential histories answer by answer, concurrent ones for
// linearizability; the final balances must agree and the ledger prove.
func TestModelHistories(t *testing.T) {
	if testing.Short() {
		t.Skip("model histories run the whole system")
	}
	clock := newModelClock()
	sys := startModelSystem(t, clock.Now, mapfront.ActivateImmediate)
	// The default activation policy: cards take effect when the settlement
	// file confirms them.
	clockS := newModelClock()
	sysS := startModelSystem(t, clockS.Now, mapfront.ActivateOnSettlement)
	var next atomic.Int64
	deadline := soakDeadline(0.8)
	var seq, seqSettle, conc counts
	start := time.Now()
	for i := 0; ; i++ {
		ok := round(t, fmt.Sprintf("sequential/%d", i), 100, func(rt *rapid.T) {
			runSequential(rt, t, sys, clock, next.Add(1), &seq)
		}) && round(t, fmt.Sprintf("concurrent/%d", i), 50, func(rt *rapid.T) {
			runConcurrent(rt, t, sys, next.Add(1), &conc)
		}) && round(t, fmt.Sprintf("sequential-on-settlement/%d", i), 100, func(rt *rapid.T) {
			runSequential(rt, t, sysS, clockS, next.Add(1), &seqSettle)
		})
		if !ok || !time.Now().Before(deadline) {
			break
		}
	}
	report(t, "sequential (immediate activation)", &seq, start)
	report(t, "sequential (activation on settlement)", &seqSettle, start)
	report(t, "concurrent", &conc, start)
}

// TestModelCrash runs sequential histories against a server process that
// is killed (SIGKILL) in the middle of requests and restarted; the POS
// resends what got no answer, and the answers must still be the model's.
func TestModelCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash mode builds and kills the server")
	}
	sys := startModelProcess(t)
	var next atomic.Int64
	var c counts
	start := time.Now()
	deadline := soakDeadline(0.2)
	for i := 0; ; i++ {
		ok := round(t, fmt.Sprintf("round%d", i), 12, func(rt *rapid.T) { runSequential(rt, t, sys, nil, next.Add(1), &c) })
		if !ok || !time.Now().Before(deadline) {
			break
		}
	}
	report(t, "crash", &c, start)
}

func report(t *testing.T, what string, c *counts, start time.Time) {
	msg := fmt.Sprintf("model %s: %d histories, %d operations, %d server kills, %d requests resent after no answer, %v", what,
		c.histories.Load(), c.ops.Load(), c.crashes.Load(), c.resent.Load(), time.Since(start).Round(time.Second))
	c.mu.Lock()
	keys := slices.Sorted(maps.Keys(c.answers))
	busy, approved := 0, 0
	for _, k := range keys {
		msg += fmt.Sprintf("\n  %-22s %d", k, c.answers[k])
		switch {
		case strings.HasSuffix(k, " 10018"):
			busy += c.answers[k]
		case strings.HasSuffix(k, " 0"):
			approved += c.answers[k]
		}
	}
	c.mu.Unlock()
	t.Log(msg)
	// The model lets any request be busy (10018, nothing happened): a server
	// that is always busy, or never approves, would agree with it and prove
	// nothing.
	if n := c.ops.Load(); n > 0 && (int64(busy) > n/20 || int64(approved) < n/10) {
		t.Errorf("model %s: %d busy and %d approved answers of %d: the histories do not exercise the server", what, busy, approved, n)
	}
	if *modelSoak > 0 {
		fmt.Fprintln(os.Stderr, msg)
	}
}

// runSequential is one sequential history: each answer must be one the
// model allows from a state it may be in. clock nil is crash mode.
func runSequential(rt *rapid.T, t *testing.T, sys *modelSystem, clock *modelClock, n int64, c *counts) {
	w, err := newWorld(t, sys, n)
	if err != nil {
		rt.Fatalf("universe: %v", err)
	}
	w.locking = rapid.IntRange(0, 4).Draw(rt, "locking") == 4
	m := sequential
	if clock == nil {
		m = crashing
	}
	states := []*refmodel.State{w.init}
	var sent []spec
	day := 0
	var dates []time.Time // the business date of each day of the history
	settled := map[int]bool{}
	if clock != nil {
		dates = append(dates, businessDate(clock))
	}
	i := 0
	do := func(rt *rapid.T, k string) {
		switch {
		case k == "resend" && len(sent) == 0, k == "settle" && (day == 0 || settled[day-1]):
			rt.Skip("nothing to do yet")
		}
		label := fmt.Sprintf("%d.", i)
		i++
		if w.locking && k != "advance" && k != "settle" && k != "resend" {
			// Mostly password checks, so that five wrong ones come in a row.
			k = rapid.SampledFrom([]string{"pay", "info", k}).Draw(rt, label+"lockingKind")
		}
		s := drawKind(rt, w, states[0], m, sent, k, label)
		switch {
		case s.advance:
			clock.days.Add(1)
			day++
			dates = append(dates, businessDate(clock))
			rt.Logf("%2d  the clock moves on one day (business day %d)", i, day)
			return
		case s.settle:
			settled[day-1] = true
			r, got := settleDay(sys, w, states[0], day-1, dates[day-1], n)
			c.answer(r, got)
			rt.Logf("%2d  %s\n      -> %s", i, refmodel.Describe(r), refmodel.DescribeAnswer(got))
			states = step(rt, w, states, r, got)
			return
		}
		sent = append(sent, s)
		r := s.request(w, stateResolver{states[0]})
		r.Day = day
		got, err := sendMaybeCrash(sys, r, s, c)
		if err != nil {
			rt.Fatalf("%2d  %s: %v", i, refmodel.Describe(r), err)
		}
		c.answer(r, got)
		rt.Logf("%2d  %s\n      -> %s", i, refmodel.Describe(r), refmodel.DescribeAnswer(got))
		states = step(rt, w, states, r, got)
	}
	// rapid's state-machine steps shrink well: a failing history loses
	// every step it does not need.
	actions := map[string]func(*rapid.T){}
	for j, k := range kindsOf(m) {
		actions[fmt.Sprintf("%s%02d", k, j)] = func(rt *rapid.T) { do(rt, k) }
	}
	rt.Repeat(actions)
	got, err := readBalances(sys, w)
	if err != nil {
		rt.Fatalf("balances: %v", err)
	}
	rt.Logf("end %s", refmodel.DescribeAnswer(got))
	step(rt, w, states, refmodel.Request{Kind: refmodel.Balances}, got)
	if n%10 == 0 || m == crashing {
		proveLedger(rt, sys)
	}
	c.histories.Add(1)
}

func businessDate(c *modelClock) time.Time {
	return mapfront.Clock{Zone: c.base.Location(), Now: c.Now}.Today()
}

// step keeps the states the model may be in after the answer.
func step(rt *rapid.T, w *world, states []*refmodel.State, r refmodel.Request, got refmodel.Answer) []*refmodel.State {
	var next []*refmodel.State
	seen := map[string]bool{}
	var want string
	for _, s := range states {
		n, wnt := w.cfg.Step(s, r, got)
		want = wnt
		for _, x := range n {
			if f := x.Fingerprint(); !seen[f] {
				seen[f] = true
				next = append(next, x)
			}
		}
	}
	if len(next) == 0 {
		rt.Fatalf("the server disagrees with the model:\n  request %s\n  answer  %s\n  model   %s",
			refmodel.Describe(r), refmodel.DescribeAnswer(got), want)
	}
	return next
}

// sendMaybeCrash sends a request; in crash mode it may kill the server while
// the request runs. A request that got no answer is sent again, as a POS
// does, until one comes.
func sendMaybeCrash(sys *modelSystem, r refmodel.Request, s spec, c *counts) (refmodel.Answer, error) {
	if sys.kill == nil {
		return send(sys.base, r)
	}
	var got refmodel.Answer
	var err error
	if s.crash {
		done := make(chan struct{})
		go func() { got, err = send(sys.base, r); close(done) }()
		time.Sleep(s.delay)
		sys.kill()
		c.crashes.Add(1)
		<-done
		sys.start()
		if err == nil {
			return got, nil
		}
	} else {
		got, err = send(sys.base, r)
	}
	if err != nil {
		c.resent.Add(1)
	}
	for i := 0; err != nil && i < 50; i++ {
		time.Sleep(50 * time.Millisecond)
		got, err = send(sys.base, r)
	}
	return got, err
}

// shared is what the clients of a concurrent history learn from answers:
// pay orderIds by terminal key, and account ids.
type shared struct {
	mu       sync.Mutex
	orders   map[string]string
	accounts []string
	cash     map[string]string
}

func (s *shared) order(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.orders[k]
	return id, ok
}

func (s *shared) account(sym string, learned int) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sym == "learned" {
		if len(s.accounts) == 0 {
			return "", false
		}
		return s.accounts[learned%len(s.accounts)], true
	}
	id, ok := s.cash[sym]
	return id, ok
}

func (s *shared) learn(r refmodel.Request, a refmodel.Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Code != 0 {
		return
	}
	if r.Kind == refmodel.Pay {
		s.orders[r.Key()] = a.OrderID
	}
	if a.AccountID != "" && !slices.Contains(s.accounts, a.AccountID) {
		s.accounts = append(s.accounts, a.AccountID)
	}
}

// runConcurrent is one concurrent history: several clients at once over the
// same universe (the same keys, sent by more than one), then the final
// balances; the whole must be linearizable against the model.
func runConcurrent(rt *rapid.T, t *testing.T, sys *modelSystem, n int64, c *counts) {
	w, err := newWorld(t, sys, n)
	if err != nil {
		rt.Fatalf("universe: %v", err)
	}
	w.locking = rapid.IntRange(0, 4).Draw(rt, "locking") == 4
	clients := rapid.IntRange(2, 4).Draw(rt, "clients")
	plans := make([][]spec, clients)
	var all []spec
	for i := range plans {
		k := rapid.IntRange(1, 6).Draw(rt, fmt.Sprintf("c%d.ops", i))
		for j := 0; j < k; j++ {
			s := drawSpec(rt, w, w.init, concurrent, all, fmt.Sprintf("c%d.%d.", i, j))
			plans[i] = append(plans[i], s)
			all = append(all, s)
		}
	}
	sh := &shared{orders: map[string]string{}, cash: map[string]string{}}
	for sym := range w.init.Accounts {
		id, _ := w.init.ServerID(sym)
		sh.cash[sym] = id
	}
	t0 := time.Now()
	ops := make([][]refmodel.Op, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range plans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, s := range plans[i] {
				r := s.request(w, sh)
				call := time.Since(t0).Nanoseconds()
				a, err := send(sys.base, r)
				if err != nil {
					errs <- err
					return
				}
				ops[i] = append(ops[i], refmodel.Op{Client: i, Request: r, Answer: a, Call: call, Return: time.Since(t0).Nanoseconds()})
				sh.learn(r, a)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		rt.Fatalf("send: %v", err)
	}
	var history []refmodel.Op
	for _, o := range ops {
		history = append(history, o...)
	}
	end := time.Since(t0).Nanoseconds()
	bal, err := readBalances(sys, w)
	if err != nil {
		rt.Fatalf("balances: %v", err)
	}
	history = append(history, refmodel.Op{Client: clients, Request: refmodel.Request{Kind: refmodel.Balances},
		Answer: bal, Call: end + 1, Return: end + 2})
	for _, o := range history[:len(history)-1] {
		c.answer(o.Request, o.Answer)
	}
	sort.Slice(history, func(i, j int) bool { return history[i].Call < history[j].Call })
	var b bytes.Buffer
	for _, o := range history {
		fmt.Fprintf(&b, "  c%d [%8.3f ms, %8.3f ms] %s\n      -> %s\n", o.Client, float64(o.Call)/1e6, float64(o.Return)/1e6,
			refmodel.Describe(o.Request), refmodel.DescribeAnswer(o.Answer))
	}
	rt.Logf("history:\n%s", b.String())
	switch res := w.cfg.Linearizable(w.init, history, 30*time.Second); res {
	case porcupine.Ok:
	case porcupine.Unknown:
		rt.Fatalf("linearizability check timed out")
	default:
		rt.Fatalf("not linearizable against the model (history above)")
	}
	proveLedger(rt, sys)
	c.histories.Add(1)
}
