package refmodel

import (
	"fmt"
	"hash/fnv"
	"time"

	"github.com/anishathalye/porcupine"
)

// Op is one call of a concurrent history: who sent it, the request and
// answer, and when it was sent and answered (any monotonic clock).
type Op struct {
	Client       int
	Request      Request
	Answer       Answer
	Call, Return int64
}

// Porcupine is the model as a porcupine nondeterministic model: a state is
// a *State, an input a Request, an output an Answer.
func (c *Config) Porcupine(init *State) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{init} },
		Step: func(state, input, output any) []any {
			next, _ := c.Step(state.(*State), input.(Request), output.(Answer))
			out := make([]any, len(next))
			for i, n := range next {
				out[i] = n
			}
			return out
		},
		Equal: func(a, b any) bool { return a.(*State).Fingerprint() == b.(*State).Fingerprint() },
		Hash: func(s any) uint64 {
			h := fnv.New64a()
			h.Write([]byte(s.(*State).Fingerprint()))
			return h.Sum64()
		},
		DescribeOperation: func(input, output any) string {
			return fmt.Sprintf("%s -> %s", Describe(input.(Request)), DescribeAnswer(output.(Answer)))
		},
	}
	return nm.ToModel()
}

// Linearizable checks a concurrent history against the model: some order of
// the calls, consistent with real time, gets every answer the history got.
func (c *Config) Linearizable(init *State, ops []Op, timeout time.Duration) porcupine.CheckResult {
	h := make([]porcupine.Operation, len(ops))
	for i, o := range ops {
		h[i] = porcupine.Operation{ClientId: o.Client, Input: o.Request, Output: o.Answer, Call: o.Call, Return: o.Return}
	}
	return porcupine.CheckOperationsTimeout(c.Porcupine(init), h, timeout)
}

// Describe writes a request in one line, for histories in failure messages.
func Describe(r Request) string {
	o := fmt.Sprintf("%s/%s/%s %s/%s", r.SellerID, r.StoreID, r.TerminalID, r.BatchNo, r.TerminalOrderID)
	switch r.Kind {
	case Pay:
		return fmt.Sprintf("pay %s consumer=%s pin=%q bad=%v sum=%d product=%q day=%d", o, r.ConsumerID, r.PIN, r.BadBlock, r.Sum, r.ProductName, r.Day)
	case CancelPay:
		return fmt.Sprintf("pay_cancel %s order=%s day=%d", o, r.OrderID, r.Day)
	case UndoPay:
		return fmt.Sprintf("pay_undo %s", o)
	case OpenCard:
		ps := "absent"
		if r.HasPaySum {
			ps = fmt.Sprint(r.PaySum)
		}
		return fmt.Sprintf("open_card %s mobile=%s ID=%s product=%s paySum=%s", o, r.Mobile, r.IDNumber, r.ProductID, ps)
	case RepealCard:
		return fmt.Sprintf("repeal_card %s", o)
	case Settle:
		return fmt.Sprintf("settle day %d confirming %v", r.Day, r.Settled)
	case AccountInfo:
		return fmt.Sprintf("get_account_info %s consumer=%s pin=%q bad=%v", o, r.ConsumerID, r.PIN, r.BadBlock)
	}
	return string(r.Kind)
}

// DescribeAnswer writes an answer in one line.
func DescribeAnswer(a Answer) string {
	if a.Accounts != nil {
		return fmt.Sprintf("accounts %v passwords %v", a.Accounts, a.Passwords)
	}
	if a.Code != OK {
		return fmt.Sprintf("errcode %d %s", a.Code, a.Msg)
	}
	s := fmt.Sprintf("errcode 0 status %q order %s", a.Status, a.OrderID)
	if a.AccountID != "" {
		s += fmt.Sprintf(" account %s sum %d", a.AccountID, a.Sum)
	}
	if a.HasBalance {
		s += fmt.Sprintf(" balance %d", a.Balance)
	}
	if a.Remark != "" {
		s += fmt.Sprintf(" remark %q", a.Remark)
	}
	return s
}
