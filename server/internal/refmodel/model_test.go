package refmodel

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

const (
	mobile = "13900000001"
	cashID = "9999000000000001"
)

func world() (*Config, *State) {
	c := &Config{
		Terminals:   map[string]Origin{"T1": {"S1", "ST1"}, "T2": {"S1", "ST1"}},
		Products:    map[string]Product{"2001": {Name: "卡", Price: 1000, Face: 1200}},
		PayLimit:    100_000,
		MaxFailures: 5,
		Immediate:   true,
	}
	s := NewState()
	s.AddCustomer(mobile, "11010519491231002X", "310020", cashID, 1000)
	return c, s
}

func pay(key string, sum int64) Request {
	return Request{Kind: Pay, SellerID: "S1", StoreID: "ST1", TerminalID: "T1", BatchNo: "000001", TerminalOrderID: key,
		ConsumerID: mobile, PIN: "310020", Sum: sum}
}

func cancel(key, orderID string) Request {
	return Request{Kind: CancelPay, SellerID: "S1", StoreID: "ST1", TerminalID: "T1", BatchNo: "000001",
		TerminalOrderID: key, OrderID: orderID}
}

func undo(key string) Request {
	return Request{Kind: UndoPay, SellerID: "S1", StoreID: "ST1", TerminalID: "T1", BatchNo: "000001", TerminalOrderID: key}
}

func paid(order string, balance int64) Answer {
	return Answer{OrderID: order, AccountID: cashID, Sum: 100, Balance: balance, HasBalance: true, Status: StatusPaid}
}

func final(balance int64) Answer {
	return Answer{Accounts: map[string][]string{mobile: {AccountLine("cash", "", "active", balance)}},
		Passwords: map[string]string{mobile: "0 false"}}
}

// check runs a sequential history through Step and reports the first
// answer the model refuses (-1: all agree).
func check(t *testing.T, c *Config, s *State, ops []Op) int {
	t.Helper()
	states := []*State{s}
	for i, o := range ops {
		var next []*State
		for _, st := range states {
			n, _ := c.Step(st, o.Request, o.Answer)
			next = append(next, n...)
		}
		if len(next) == 0 {
			return i
		}
		states = next
	}
	return -1
}

// sequentialOps gives a recorded sequential history real-time intervals
// that do not overlap.
func sequentialOps(reqs []Request, answers []Answer) []Op {
	ops := make([]Op, len(reqs))
	for i := range reqs {
		ops[i] = Op{Request: reqs[i], Answer: answers[i], Call: int64(2 * i), Return: int64(2*i + 1)}
	}
	return ops
}

// TestCheckerBites feeds recorded histories of deliberately wrong server
// behaviour to the model comparison and to the linearizability check: both
// must refuse them, and accept the right history they were made from.
func TestCheckerBites(t *testing.T) {
	c, init := world()
	reqs := []Request{pay("000001", 100), cancel("000002", "ud1"), undo("000001"), pay("000001", 100), {Kind: Balances}}
	right := []Answer{
		paid("ud1", 900),
		{OrderID: "ud2", AccountID: cashID, Balance: 1000, HasBalance: true, Status: StatusCancelled},
		{OrderID: "ud1", AccountID: cashID, Sum: 100, Balance: 1000, HasBalance: true, Status: StatusWasCancelled},
		paid("ud1", 900), // the repeat answers the stored approval
		final(1000),
	}
	cases := map[string]struct {
		answers []Answer
		at      int // the first answer the model must refuse
	}{
		"a reversal that refunds an already cancelled pay": {
			answers: []Answer{right[0], right[1],
				{OrderID: "ud1", AccountID: cashID, Sum: 100, Balance: 1100, HasBalance: true, Status: StatusReversed},
				right[3], final(1100)},
			at: 2,
		},
		"a repeat that moves money again": {
			answers: []Answer{right[0], right[1], right[2], paid("ud1", 800), final(900)},
			at:      3,
		},
		"a repeat answered as a new pay": {
			answers: []Answer{right[0], right[1], right[2], paid("ud3", 800), final(900)},
			at:      3,
		},
		"balances that lost the cancel's refund": {
			answers: []Answer{right[0], right[1], right[2], right[3], final(900)},
			at:      4,
		},
	}
	if at := check(t, c, init, sequentialOps(reqs, right)); at != -1 {
		t.Fatalf("the right history is refused at %d", at)
	}
	if res := c.Linearizable(init, sequentialOps(reqs, right), 0); res != porcupine.Ok {
		t.Fatalf("the right history is not linearizable: %v", res)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if at := check(t, c, init, sequentialOps(reqs, tc.answers)); at != tc.at {
				t.Errorf("model comparison refuses at %d, want %d", at, tc.at)
			}
			if res := c.Linearizable(init, sequentialOps(reqs, tc.answers), 0); res != porcupine.Illegal {
				t.Errorf("linearizability check: %v, want illegal", res)
			}
		})
	}
}

// TestCheckerBitesConcurrent: two clients send the same pay at once; a
// server that approves both (two orders, money moved twice) has no
// linearization, and neither has one that approves it once but charges twice.
func TestCheckerBitesConcurrent(t *testing.T) {
	c, init := world()
	p := pay("000001", 100)
	good := []Op{
		{Client: 0, Request: p, Answer: paid("ud1", 900), Call: 0, Return: 10},
		{Client: 1, Request: p, Answer: paid("ud1", 900), Call: 1, Return: 11},
		{Client: 2, Request: Request{Kind: Balances}, Answer: final(900), Call: 12, Return: 13},
	}
	if res := c.Linearizable(init, good, 0); res != porcupine.Ok {
		t.Fatalf("the right concurrent history: %v", res)
	}
	twice := []Op{
		{Client: 0, Request: p, Answer: paid("ud1", 900), Call: 0, Return: 10},
		{Client: 1, Request: p, Answer: paid("ud2", 800), Call: 1, Return: 11},
		{Client: 2, Request: Request{Kind: Balances}, Answer: final(800), Call: 12, Return: 13},
	}
	if res := c.Linearizable(init, twice, 0); res != porcupine.Illegal {
		t.Errorf("a pay approved twice: %v, want illegal", res)
	}
	charged := append([]Op(nil), good...)
	charged[2].Answer = final(800)
	if res := c.Linearizable(init, charged, 0); res != porcupine.Illegal {
		t.Errorf("a pay charged twice: %v, want illegal", res)
	}
}

// TestRules pins rules of SPEC section 5 in the model itself.
func TestRules(t *testing.T) {
	c, s := world()
	step := func(s *State, r Request, a Answer) *State {
		t.Helper()
		n, want := c.Step(s, r, a)
		if len(n) == 0 {
			t.Fatalf("%s -> %s refused; model allows %s", Describe(r), DescribeAnswer(a), want)
		}
		return n[0]
	}
	refused := func(s *State, r Request, a Answer) {
		t.Helper()
		if n, _ := c.Step(s, r, a); len(n) != 0 {
			t.Fatalf("%s -> %s accepted", Describe(r), DescribeAnswer(a))
		}
	}
	// A reversal before its pay leaves a tombstone; the pay is then declined.
	s1 := step(s, undo("000009"), Answer{OrderID: "ud7", Status: StatusReversed})
	step(s1, pay("000009", 100), Answer{Code: CodeUndone})
	refused(s1, pay("000009", 100), paid("ud8", 900))
	// Five wrong passwords in a row lock: the fifth is 10008 and says so, as is
	// the sixth.
	wrong := pay("000010", 100)
	wrong.PIN = "111111"
	for i, left := range []int{4, 3, 2, 1} {
		w := wrong
		w.TerminalOrderID = string(rune('a' + i))
		refused(s, w, Answer{Code: CodeWrongPIN, Msg: "还可尝试9次"})
		s = step(s, w, Answer{Code: CodeWrongPIN, Msg: "支付密码错误，还可尝试" + string(rune('0'+left)) + "次"})
	}
	wrong.TerminalOrderID = "e"
	s = step(s, wrong, Answer{Code: CodeLocked, Msg: "密码已锁定"})
	step(s, pay("000011", 100), Answer{Code: CodeLocked})
	// The limit: 1 fen to PayLimit; over it is 10015 and stores nothing.
	step(s, pay("000012", c.PayLimit+1), Answer{Code: CodeAmount})
	// Any request may be busy, and then nothing happened.
	if n, _ := c.Step(s, pay("000013", 1), Answer{Code: CodeBusy}); len(n) != 1 || n[0] != s {
		t.Errorf("10018 must leave the state as it was")
	}
}
