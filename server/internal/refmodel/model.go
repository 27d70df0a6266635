// Package refmodel is a reference model of the terminal transactions of SPEC
// sections 4 and 5: customers, cash and card accounts, the payment password
// and its 5-try lock, terminal keys and their stored outcomes, pay,
// pay_cancel, pay_undo (tombstones included), open_card partials,
// repeal_card and get_account_info. It is plain Go on maps, with no SQL and
// no concurrency, imported only by tests: random histories run against the
// real server are compared with it answer by answer (sequential histories)
// or checked for linearizability against it (concurrent histories, with
// porcupine).
//
// The server assigns order and account ids; the model names them by symbols
// ("pay|T|B|O", "card#3") and binds each symbol to the id the server answers
// the first time it is seen, after which the binding must hold both ways (an
// id the server hands out twice is caught).
//
// Where SPEC leaves the order of checks open, the model follows the server's
// order (registry, PIN block, consumer, password, account), which is the
// order a POS expects; where SPEC allows more than one answer the model
// returns every state that answer may lead to, so a caller keeps a set.
package refmodel

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Kind is a request path.
type Kind string

// Request kinds: the terminal transactions of SPEC section 5, plus Balances,
// a read of every account's balance and each customer's password state made
// after a history ends (the final state must agree with the model).
const (
	OpenCard    Kind = "open_card"
	RepealCard  Kind = "repeal_card"
	Pay         Kind = "pay"
	CancelPay   Kind = "pay_cancel"
	UndoPay     Kind = "pay_undo"
	AccountInfo Kind = "get_account_info"
	Balances    Kind = "balances"
	// Settle is a settlement file for business day Day that confirms the
	// open_card payments named by their terminal keys in Settled (SPEC
	// section 6); its answer's Sum is the number of records matched.
	Settle Kind = "settle"
)

// Errcodes of SPEC section 3 the model answers.
const (
	OK               = 0
	CodeMalformed    = 10001
	CodeTerminal     = 10002
	CodeKeyReused    = 10003
	CodeProduct      = 10004
	CodeNotFound     = 10005
	CodeAccountState = 10006
	CodeWrongPIN     = 10007
	CodeLocked       = 10008
	CodeInsufficient = 10009
	CodeNoOriginal   = 10010
	CodeUndone       = 10011
	CodeCancelDenied = 10012
	CodeRepealDenied = 10013
	CodeNoPassword   = 10014
	CodeAmount       = 10015
	CodeIdentity     = 10016
	CodePINBlock     = 10017
	CodeBusy         = 10018
)

// Order statuses a terminal shows (SPEC section 5).
const (
	StatusPaid         = "支付成功"
	StatusCancelled    = "消费撤销成功"
	StatusReversed     = "支付失败，冲正成功"
	StatusWasCancelled = "原交易已撤销，无需冲正"
)

// Request is one call as a terminal sends it. Money is integer fen.
type Request struct {
	Kind Kind
	// Day is the business day the server's clock is in when the request
	// runs (0, 1, ...); a cancel is allowed only on its pay's day.
	Day int

	SellerID, StoreID, TerminalID string
	BatchNo, TerminalOrderID      string

	// pay and get_account_info: consumerId (mobile or accountId) and the PIN
	// its block carries; BadBlock is a paymentCodeDES that cannot be decoded.
	ConsumerID  string
	PIN         string
	BadBlock    bool
	Sum         int64
	ProductName string

	// pay_cancel: the pay's orderId.
	OrderID string

	// open_card.
	IDNumber, Mobile, ProductID string
	PaySum                      int64
	HasPaySum                   bool

	// settle: the open_card payments the file confirms.
	Settled []string
}

// Key is the request's terminal key as a string.
func (r Request) Key() string { return r.TerminalID + "|" + r.BatchNo + "|" + r.TerminalOrderID }

// fingerprint digests the business fields a repeat of a key must carry
// unchanged (SPEC section 5), per kind.
func (r Request) fingerprint() string {
	var parts []string
	switch r.Kind {
	case Pay:
		pin := "pin:" + r.PIN
		if r.BadBlock {
			pin = "bad"
		}
		parts = []string{r.SellerID, r.StoreID, r.ConsumerID, pin, fmt.Sprint(r.Sum), r.ProductName}
	case CancelPay:
		parts = []string{r.SellerID, r.StoreID, r.OrderID}
	case OpenCard:
		parts = []string{r.SellerID, r.StoreID, r.IDNumber, r.Mobile, r.ProductID, fmt.Sprint(r.HasPaySum, r.PaySum)}
	}
	h := sha256.New()
	for _, p := range parts {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:8])
}

// Answer is what the server answered, in the fields the model checks.
// OrderID and AccountID are server ids; Balance is meaningful when
// HasBalance. Balances answers carry Accounts and Customers instead.
type Answer struct {
	Code       int
	Msg        string
	OrderID    string
	AccountID  string
	Sum        int64
	Balance    int64
	HasBalance bool
	Status     string // order status, or the card status of get_account_info
	Remark     string

	// Balances: per mobile, the sorted "kind product status balance" lines
	// of the customer's accounts, and "failures locked" of the password.
	Accounts  map[string][]string
	Passwords map[string]string
}

// Origin is a registered terminal's seller and store.
type Origin struct{ SellerID, StoreID string }

// Product is a product on sale: price and face value in fen.
type Product struct {
	Name        string
	Price, Face int64
}

// Config is the fixed world a history runs in: the registry, the products
// and the policy of SPEC sections 4-5.
type Config struct {
	Terminals   map[string]Origin  // terminalId → seller and store
	Products    map[string]Product // productId → product
	PayLimit    int64              // per-transaction limit, fen
	MaxFailures int                // wrong passwords in a row that lock
	Immediate   bool               // activation policy immediate (else on_settlement)
}

// Customer is a customer of the model; PIN "" means no password set.
type Customer struct {
	IDNumber string
	PIN      string
	Failures int
	Locked   bool
}

// Account is a cash or card account; Symbol names it in IDs.
type Account struct {
	Customer string // mobile
	Kind     string // cash or card
	Product  string
	Status   string // pending, active, frozen, closed
	Balance  int64
	ActSeq   int  // order of activation (card-first picks the earliest)
	Used     bool // a pay was ever approved on it
}

// PayKey is the stored outcome of a pay's terminal key.
type PayKey struct {
	FP       string
	State    string // declined, approved, tombstone
	Code     int    // the stored decline
	Left     int    // tries left a stored 10007 said
	Seller   string
	Store    string
	Terminal string
	Consumer string
	Account  string // symbol
	Sum      int64
	After    int64  // balance after the pay
	Status   string // approved: success, cancelled, reversed
	Day      int
	Undo     *Answer // the stored reversal answer (symbolic ids)
}

// Stored is a stored outcome of a pay_cancel or open_card key.
type Stored struct {
	FP       string
	Code     int
	Answer   Answer // symbolic ids
	Repealed bool   // open_card: its payment was repealed
}

// CardOrder is a card order collecting split payments.
type CardOrder struct {
	Customer string
	Product  string
	Price    int64
	Face     int64
	Paid     int64
	Filling  bool
	Account  string // symbol
	Status   string // pending, active, closed
	Credited bool
}

// CardPayment is one open_card payment, named by its terminal key.
type CardPayment struct {
	Order    string // symbol
	Sum      int64
	Seller   string
	Store    string
	Repealed bool
	Settled  bool
	Day      int
}

// State is the model's whole state. It is a value: Step never changes the
// state it is given.
type State struct {
	Customers  map[string]Customer    // by mobile
	Accounts   map[string]Account     // by symbol
	PayKeys    map[string]PayKey      // by terminal key
	CancelKeys map[string]Stored      // by terminal key
	OpenKeys   map[string]Stored      // by terminal key
	Orders     map[string]CardOrder   // by symbol
	Payments   map[string]CardPayment // by open_card terminal key
	IDs        map[string]string      // symbol → server id
	Syms       map[string]string      // server id → symbol
	Seq        int                    // symbol counter
	ActSeq     int                    // activation counter
}

// NewState is an empty state.
func NewState() *State {
	return &State{Customers: map[string]Customer{}, Accounts: map[string]Account{}, PayKeys: map[string]PayKey{},
		CancelKeys: map[string]Stored{}, OpenKeys: map[string]Stored{}, Orders: map[string]CardOrder{},
		Payments: map[string]CardPayment{}, IDs: map[string]string{}, Syms: map[string]string{}}
}

// AddCustomer registers a customer with a cash account of the given server
// id and balance (what AdminService's top-up leaves).
func (s *State) AddCustomer(mobile, idNumber, pin, cashID string, cash int64) {
	s.Customers[mobile] = Customer{IDNumber: idNumber, PIN: pin}
	sym := CashSymbol(mobile)
	s.Accounts[sym] = Account{Customer: mobile, Kind: "cash", Status: "active", Balance: cash}
	s.IDs[sym], s.Syms[cashID] = cashID, sym
}

// CashSymbol names a customer's cash account.
func CashSymbol(mobile string) string { return "cash|" + mobile }

// Clone copies the state; values in the maps hold no shared references
// except a PayKey's stored Undo answer, which is never changed in place.
func (s *State) Clone() *State {
	return &State{Customers: clone(s.Customers), Accounts: clone(s.Accounts), PayKeys: clone(s.PayKeys),
		CancelKeys: clone(s.CancelKeys), OpenKeys: clone(s.OpenKeys), Orders: clone(s.Orders),
		Payments: clone(s.Payments), IDs: clone(s.IDs), Syms: clone(s.Syms), Seq: s.Seq, ActSeq: s.ActSeq}
}

func clone[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Fingerprint is a canonical encoding of the state (encoding/json sorts map
// keys): equal states have equal fingerprints.
func (s *State) Fingerprint() string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ServerID returns the server id bound to a symbol, if any.
func (s *State) ServerID(sym string) (string, bool) {
	id, ok := s.IDs[sym]
	return id, ok
}

// expect is one answer SPEC allows, with the state it leads to. orderSym
// and accountSym name the answer's ids: bound to the server's ids the first
// time they are seen, and checked against that binding afterwards.
type expect struct {
	code       int
	left       int // 10007: tries left the message must say (-1: not checked)
	status     string
	orderSym   string
	accountSym string
	sum        int64
	hasSum     bool
	balance    int64
	hasBalance bool
	remark     string // may hold {acct}: the card's server id
	next       *State
}

func (e expect) String() string {
	if e.code != OK {
		return fmt.Sprintf("errcode %d", e.code)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "errcode 0")
	if e.status != "" {
		fmt.Fprintf(&b, " status %q", e.status)
	}
	if e.orderSym != "" {
		fmt.Fprintf(&b, " order %s", e.orderSym)
	}
	if e.accountSym != "" {
		fmt.Fprintf(&b, " account %s", e.accountSym)
	}
	if e.hasSum {
		fmt.Fprintf(&b, " sum %d", e.sum)
	}
	if e.hasBalance {
		fmt.Fprintf(&b, " balance %d", e.balance)
	}
	if e.remark != "" {
		fmt.Fprintf(&b, " remark %q", e.remark)
	}
	return b.String()
}

// Step applies a request and the server's answer to a state. It returns the
// states the model allows after that answer (none: the answer disagrees
// with SPEC) and a description of the allowed answers for a failure message.
func (c *Config) Step(s *State, r Request, got Answer) ([]*State, string) {
	if r.Kind == Balances {
		if want := s.balances(); balancesEqual(want, got) {
			return []*State{s}, ""
		}
		w := s.balances()
		return nil, fmt.Sprintf("accounts %v passwords %v", w.Accounts, w.Passwords)
	}
	exps := c.expect(s, r)
	// A transient failure may always answer 10018, and then nothing happened.
	exps = append(exps, expect{code: CodeBusy, left: -1, next: s})
	var out []*State
	var want []string
	for _, e := range exps {
		want = append(want, e.String())
		if next, ok := e.match(got); ok {
			out = append(out, next)
		}
	}
	return out, strings.Join(want, " | ")
}

// match compares an answer with an expectation and binds new symbols.
func (e expect) match(got Answer) (*State, bool) {
	if got.Code != e.code {
		return nil, false
	}
	if e.code == CodeWrongPIN && e.left > 0 && !strings.Contains(got.Msg, fmt.Sprintf("%d次", e.left)) {
		return nil, false
	}
	if e.code != OK {
		return e.next, true
	}
	if got.Status != e.status || (e.hasSum && got.Sum != e.sum) || got.HasBalance != e.hasBalance ||
		(e.hasBalance && got.Balance != e.balance) {
		return nil, false
	}
	next := e.next
	cloned := false
	bind := func(sym, id string) bool {
		if sym == "" {
			return true
		}
		if bound, ok := next.IDs[sym]; ok {
			return bound == id
		}
		if id == "" || next.Syms[id] != "" {
			return false // a new order or account must get an id of its own
		}
		if !cloned {
			next, cloned = next.Clone(), true
		}
		next.IDs[sym], next.Syms[id] = id, sym
		return true
	}
	if !bind(e.orderSym, got.OrderID) {
		return nil, false
	}
	if e.accountSym != "" && !bind(e.accountSym, got.AccountID) {
		return nil, false
	}
	if e.accountSym == "" && got.AccountID != "" {
		return nil, false
	}
	if e.remark != "" {
		want, acct := e.remark, ""
		if i := strings.Index(want, "{acct}"); i >= 0 {
			// The card's id is in the remark; take it from there.
			if len(got.Remark) < i+16 {
				return nil, false
			}
			acct = got.Remark[i : i+16]
			want = strings.Replace(want, "{acct}", acct, 1)
		}
		if got.Remark != want {
			return nil, false
		}
		if acct != "" {
			sym := cardOf(next, e.orderSym)
			if !bind(sym, acct) {
				return nil, false
			}
		}
	}
	return next, true
}

func cardOf(s *State, orderSym string) string { return s.Orders[orderSym].Account }

func (c *Config) expect(s *State, r Request) []expect {
	switch r.Kind {
	case Pay:
		return c.pay(s, r)
	case CancelPay:
		return c.cancel(s, r)
	case UndoPay:
		return c.undo(s, r)
	case OpenCard:
		return c.openCard(s, r)
	case RepealCard:
		return c.repeal(s, r)
	case AccountInfo:
		return c.accountInfo(s, r)
	case Settle:
		return c.settle(s, r)
	}
	panic("refmodel: unknown kind " + string(r.Kind))
}

func decline(s *State, code int) []expect { return []expect{{code: code, left: -1, next: s}} }

// originOK reports whether seller, store and terminal exist and belong together.
func (c *Config) originOK(r Request) bool {
	o, ok := c.Terminals[r.TerminalID]
	return ok && o.SellerID == r.SellerID && o.StoreID == r.StoreID
}

func validMobile(s string) bool  { return len(s) == 11 && s[0] == '1' && digits(s) }
func validAccount(s string) bool { return len(s) == 16 && digits(s) }

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// consumer resolves a consumerId to its customer and, for an accountId, the
// account symbol; ok false is 10005.
func (s *State) consumer(id string) (mobile, account string, ok bool) {
	if validMobile(id) {
		_, ok := s.Customers[id]
		return id, "", ok
	}
	sym, bound := s.Syms[id]
	a, exists := s.Accounts[sym]
	if !bound || !exists {
		return "", "", false
	}
	return a.Customer, sym, true
}

// password applies the password rules to a customer (SPEC section 5): it
// returns the decline code (0 when right), the tries left a 10007 states,
// and the state with the new failure count.
func (c *Config) password(s *State, mobile string, r Request) (int, int, *State) {
	cu := s.Customers[mobile]
	switch {
	case cu.Locked:
		return CodeLocked, -1, s
	case cu.PIN == "":
		return CodeNoPassword, -1, s
	case r.PIN == cu.PIN:
		if cu.Failures == 0 {
			return OK, -1, s
		}
		n := s.Clone()
		cu.Failures = 0
		n.Customers[mobile] = cu
		return OK, -1, n
	}
	n := s.Clone()
	cu.Failures++
	left := c.MaxFailures - cu.Failures
	n.Customers[mobile] = cu
	if left <= 0 {
		// The wrong password that locks it is 10008 (ISO 8583: PIN tries
		// exceeded), the ones before it 10007.
		cu.Locked = true
		n.Customers[mobile] = cu
		return CodeLocked, -1, n
	}
	return CodeWrongPIN, left, n
}

// pay is SPEC section 5 消费.
func (c *Config) pay(s *State, r Request) []expect {
	if !validMobile(r.ConsumerID) && !validAccount(r.ConsumerID) {
		return decline(s, CodeMalformed)
	}
	if r.Sum <= 0 || r.Sum > c.PayLimit {
		return decline(s, CodeAmount) // invalid requests store nothing
	}
	k := r.Key()
	fp := r.fingerprint()
	if pk, ok := s.PayKeys[k]; ok {
		switch {
		case pk.State == "tombstone":
			// A pay after its reversal is declined; a different request
			// under the key may also be told the key is taken.
			if pk.FP != "" && pk.FP != fp {
				return []expect{{code: CodeUndone, left: -1, next: s}, {code: CodeKeyReused, left: -1, next: s}}
			}
			return decline(s, CodeUndone)
		case pk.FP != fp:
			if pk.State == "approved" && pk.Status == "reversed" {
				return []expect{{code: CodeUndone, left: -1, next: s}, {code: CodeKeyReused, left: -1, next: s}}
			}
			return decline(s, CodeKeyReused)
		case pk.State == "approved" && pk.Status == "reversed":
			return decline(s, CodeUndone)
		case pk.State == "declined":
			return []expect{{code: pk.Code, left: pk.Left, next: s}}
		}
		// The stored approval, again: same order, same balance after.
		return []expect{{status: StatusPaid, orderSym: "pay|" + k, accountSym: pk.Account, sum: pk.Sum, hasSum: true,
			balance: pk.After, hasBalance: true, left: -1, next: s}}
	}
	store := func(st *State, code, left int) []expect {
		n := st.Clone()
		n.PayKeys[k] = PayKey{FP: fp, State: "declined", Code: code, Left: left}
		return []expect{{code: code, left: left, next: n}}
	}
	if !c.originOK(r) {
		return store(s, CodeTerminal, -1)
	}
	if r.BadBlock {
		return store(s, CodePINBlock, -1)
	}
	mobile, acct, ok := s.consumer(r.ConsumerID)
	if !ok {
		return store(s, CodeNotFound, -1)
	}
	code, left, s2 := c.password(s, mobile, r)
	if code != OK {
		return store(s2, code, left)
	}
	candidates := []string{acct}
	if acct != "" {
		a := s2.Accounts[acct]
		switch {
		case a.Status != "active":
			return store(s2, CodeAccountState, -1)
		case a.Balance < r.Sum:
			return store(s2, CodeInsufficient, -1)
		}
	} else if candidates = s2.choose(mobile, r.Sum); len(candidates) == 0 {
		return store(s2, CodeInsufficient, -1)
	}
	var out []expect
	for _, chosen := range candidates {
		n := s2.Clone()
		a := n.Accounts[chosen]
		a.Balance -= r.Sum
		a.Used = true
		n.Accounts[chosen] = a
		n.PayKeys[k] = PayKey{FP: fp, State: "approved", Seller: r.SellerID, Store: r.StoreID, Terminal: r.TerminalID,
			Consumer: r.ConsumerID, Account: chosen, Sum: r.Sum, After: a.Balance, Status: "success", Day: r.Day}
		out = append(out, expect{status: StatusPaid, orderSym: "pay|" + k, accountSym: chosen, sum: r.Sum, hasSum: true,
			balance: a.Balance, hasBalance: true, left: -1, next: n})
	}
	return out
}

// choose is the card-first rule: the earliest-activated active card whose
// balance covers the sum, else the cash account if it does; none is 10009.
// Cards activated at the same time go by account id; while an id is not
// known to the model, each of them may be the one.
func (s *State) choose(mobile string, sum int64) []string {
	var best []string
	bestSeq := 0
	for sym, a := range s.Accounts {
		if a.Customer != mobile || a.Kind != "card" || a.Status != "active" || a.Balance < sum {
			continue
		}
		switch {
		case len(best) == 0 || a.ActSeq < bestSeq:
			best, bestSeq = []string{sym}, a.ActSeq
		case a.ActSeq == bestSeq:
			best = append(best, sym)
		}
	}
	if len(best) > 1 {
		slices.Sort(best)
		known := true
		for _, sym := range best {
			_, ok := s.IDs[sym]
			known = known && ok
		}
		if known {
			slices.SortFunc(best, func(a, b string) int { return strings.Compare(s.IDs[a], s.IDs[b]) })
			best = best[:1]
		}
	}
	if len(best) > 0 {
		return best
	}
	if cash := CashSymbol(mobile); s.Accounts[cash].Balance >= sum {
		return []string{cash}
	}
	return nil
}

// cancel is SPEC section 5 消费撤销.
func (c *Config) cancel(s *State, r Request) []expect {
	if r.OrderID == "" {
		return decline(s, CodeMalformed)
	}
	k := r.Key()
	fp := r.fingerprint()
	if st, ok := s.CancelKeys[k]; ok {
		if st.FP != fp {
			return decline(s, CodeKeyReused)
		}
		if st.Code != OK {
			return decline(s, st.Code)
		}
		a := st.Answer
		return []expect{{status: a.Status, orderSym: a.OrderID, accountSym: a.AccountID, balance: a.Balance,
			hasBalance: true, left: -1, next: s}}
	}
	store := func(code int) []expect {
		n := s.Clone()
		n.CancelKeys[k] = Stored{FP: fp, Code: code}
		return []expect{{code: code, left: -1, next: n}}
	}
	if !c.originOK(r) {
		return store(CodeTerminal)
	}
	sym := s.Syms[r.OrderID]
	pk, ok := s.PayKeys[strings.TrimPrefix(sym, "pay|")]
	if !strings.HasPrefix(sym, "pay|") || !ok || pk.State != "approved" {
		return store(CodeNoOriginal)
	}
	// SPEC gives no order among these refusals: when several apply, each
	// of their codes is a right answer.
	var refusals []expect
	if pk.Seller != r.SellerID || pk.Store != r.StoreID || pk.Terminal != r.TerminalID || pk.Day != r.Day {
		refusals = append(refusals, store(CodeCancelDenied)...)
	}
	if pk.Status != "success" {
		refusals = append(refusals, store(CodeUndone)...)
	}
	if len(refusals) > 0 {
		return refusals
	}
	n := s.Clone()
	payKey := strings.TrimPrefix(sym, "pay|")
	pk.Status = "cancelled"
	n.PayKeys[payKey] = pk
	a := n.Accounts[pk.Account]
	a.Balance += pk.Sum
	n.Accounts[pk.Account] = a
	ans := Answer{OrderID: "cancel|" + k, AccountID: pk.Account, Balance: a.Balance, HasBalance: true, Status: StatusCancelled}
	n.CancelKeys[k] = Stored{FP: fp, Answer: ans}
	return []expect{{status: StatusCancelled, orderSym: ans.OrderID, accountSym: pk.Account, balance: a.Balance,
		hasBalance: true, left: -1, next: n}}
}

// undo is SPEC section 5 消费冲正: every outcome is errcode 0 and stored;
// a repeat answers the stored reversal again.
func (c *Config) undo(s *State, r Request) []expect {
	if !c.originOK(r) {
		return decline(s, CodeTerminal)
	}
	k := r.Key()
	pk, found := s.PayKeys[k]
	if found && pk.Undo != nil {
		return []expect{fromAnswer(*pk.Undo, s)}
	}
	n := s.Clone()
	var ans Answer
	switch {
	case !found:
		ans = Answer{OrderID: "undo|" + k, Status: StatusReversed}
		pk = PayKey{State: "tombstone"}
	case pk.State != "approved":
		ans = Answer{OrderID: "undo|" + k, Status: StatusReversed}
	case pk.Status == "cancelled":
		ans = Answer{OrderID: "pay|" + k, AccountID: pk.Account, Sum: pk.Sum, Status: StatusWasCancelled,
			Balance: n.Accounts[pk.Account].Balance, HasBalance: true}
	default:
		a := n.Accounts[pk.Account]
		a.Balance += pk.Sum
		n.Accounts[pk.Account] = a
		pk.Status = "reversed"
		ans = Answer{OrderID: "pay|" + k, AccountID: pk.Account, Sum: pk.Sum, Status: StatusReversed,
			Balance: a.Balance, HasBalance: true}
	}
	pk.Undo = &ans
	n.PayKeys[k] = pk
	return []expect{fromAnswer(ans, n)}
}

func fromAnswer(a Answer, next *State) expect {
	return expect{status: a.Status, orderSym: a.OrderID, accountSym: a.AccountID, sum: a.Sum, hasSum: a.AccountID != "",
		balance: a.Balance, hasBalance: a.HasBalance, remark: a.Remark, left: -1, next: next}
}

// openCard is SPEC section 5 open_card, with split payments.
func (c *Config) openCard(s *State, r Request) []expect {
	if !validID(r.IDNumber) || !validMobile(r.Mobile) {
		return decline(s, CodeMalformed)
	}
	if len(r.ProductID) != 4 || !digits(r.ProductID) {
		return decline(s, CodeProduct)
	}
	if r.HasPaySum && r.PaySum <= 0 {
		return decline(s, CodeAmount)
	}
	k := r.Key()
	fp := r.fingerprint()
	if st, ok := s.OpenKeys[k]; ok {
		switch {
		case st.FP != fp:
			return decline(s, CodeKeyReused)
		case st.Repealed:
			return decline(s, CodeUndone)
		case st.Code != OK:
			return decline(s, st.Code)
		}
		return []expect{fromAnswer(st.Answer, s)}
	}
	store := func(code int) []expect {
		n := s.Clone()
		n.OpenKeys[k] = Stored{FP: fp, Code: code}
		return []expect{{code: code, left: -1, next: n}}
	}
	if !c.originOK(r) {
		return store(CodeTerminal)
	}
	p, ok := c.Products[r.ProductID]
	if !ok {
		return store(CodeProduct)
	}
	cu, known := s.Customers[r.Mobile]
	if known && cu.IDNumber != r.IDNumber {
		return store(CodeIdentity)
	}
	orderSym := ""
	price, paid := p.Price, int64(0)
	for sym, o := range s.Orders {
		if o.Customer == r.Mobile && o.Product == r.ProductID && o.Filling {
			orderSym, price, paid = sym, o.Price, o.Paid
		}
	}
	sum := price
	if r.HasPaySum {
		sum = r.PaySum
	}
	if sum > price-paid {
		return store(CodeAmount)
	}
	n := s.Clone()
	if !known {
		n.Customers[r.Mobile] = Customer{IDNumber: r.IDNumber, PIN: initialPIN(r.IDNumber)}
		n.Accounts[CashSymbol(r.Mobile)] = Account{Customer: r.Mobile, Kind: "cash", Status: "active"}
	}
	if orderSym == "" {
		n.Seq++
		orderSym = fmt.Sprintf("cardorder#%d", n.Seq)
		acct := fmt.Sprintf("card#%d", n.Seq)
		n.Accounts[acct] = Account{Customer: r.Mobile, Kind: "card", Product: r.ProductID, Status: "pending"}
		n.Orders[orderSym] = CardOrder{Customer: r.Mobile, Product: r.ProductID, Price: p.Price, Face: p.Face,
			Account: acct, Status: "pending"}
	}
	o := n.Orders[orderSym]
	o.Paid += sum
	o.Filling = o.Paid < o.Price
	if !o.Filling && c.Immediate {
		n.activate(&o)
	}
	n.Orders[orderSym] = o
	n.Payments[k] = CardPayment{Order: orderSym, Sum: sum, Seller: r.SellerID, Store: r.StoreID, Day: r.Day}
	ans := Answer{OrderID: orderSym, Remark: cardRemark(o.Price, o.Paid, c.Immediate)}
	n.OpenKeys[k] = Stored{FP: fp, Answer: ans}
	return []expect{fromAnswer(ans, n)}
}

func (s *State) activate(o *CardOrder) {
	s.ActSeq++
	a := s.Accounts[o.Account]
	a.Status, a.Balance, a.ActSeq = "active", a.Balance+o.Face, s.ActSeq
	s.Accounts[o.Account] = a
	o.Status, o.Credited = "active", true
}

// repeal is SPEC section 5 开卡撤销.
func (c *Config) repeal(s *State, r Request) []expect {
	if !c.originOK(r) {
		return decline(s, CodeTerminal)
	}
	k := r.Key()
	p, ok := s.Payments[k]
	if !ok {
		return decline(s, CodeNoOriginal)
	}
	if p.Seller != r.SellerID || p.Store != r.StoreID {
		return decline(s, CodeRepealDenied)
	}
	o := s.Orders[p.Order]
	if p.Repealed {
		// Repeating a repeal is harmless: it answers what the order is now.
		return []expect{{orderSym: p.Order, remark: repealRemark(o, p.Sum), left: -1, next: s}}
	}
	if p.Settled {
		return decline(s, CodeRepealDenied)
	}
	n := s.Clone()
	if o.Credited {
		a := n.Accounts[o.Account]
		if a.Used || a.Balance != o.Face {
			return decline(s, CodeRepealDenied)
		}
		a.Balance, a.Status, a.ActSeq = 0, "pending", 0
		n.Accounts[o.Account] = a
		o.Status, o.Credited = "pending", false
	}
	p.Repealed = true
	n.Payments[k] = p
	st := n.OpenKeys[k]
	st.Repealed = true
	n.OpenKeys[k] = st
	o.Paid -= p.Sum
	if o.Paid == 0 {
		o.Status, o.Filling = "closed", false
		a := n.Accounts[o.Account]
		a.Status = "closed"
		n.Accounts[o.Account] = a
	} else {
		other := false
		for sym, x := range n.Orders {
			if sym != p.Order && x.Customer == o.Customer && x.Product == o.Product && x.Filling {
				other = true
			}
		}
		o.Filling = !other
	}
	n.Orders[p.Order] = o
	return []expect{{orderSym: p.Order, remark: repealRemark(o, p.Sum), left: -1, next: n}}
}

// settle is a settlement run of SPEC section 6 whose file confirms exactly
// the given payments, each at its amount. Under the immediate policy a paid-up
// card is already active and credited, so nothing moves: the payments are
// settled (and can no longer be repealed). Under on_settlement a paid-up
// order whose payments are all confirmed is activated.
func (c *Config) settle(s *State, r Request) []expect {
	n := s.Clone()
	for _, k := range r.Settled {
		p := n.Payments[k]
		p.Settled = true
		n.Payments[k] = p
	}
	if !c.Immediate {
		// Cards activated by one run share its time (one ActSeq); card-first
		// then goes by account id (see choose).
		seq := n.ActSeq + 1
		for sym, o := range n.Orders {
			if o.Paid != o.Price || o.Credited {
				continue
			}
			all := true
			for _, p := range n.Payments {
				if p.Order == sym && !p.Repealed && !p.Settled {
					all = false
				}
			}
			if all {
				n.activate(&o)
				n.ActSeq = seq
				a := n.Accounts[o.Account]
				a.ActSeq = seq
				n.Accounts[o.Account] = a
				n.Orders[sym] = o
			}
		}
	}
	return []expect{{sum: int64(len(r.Settled)), hasSum: true, left: -1, next: n}}
}

// accountInfo is SPEC section 5 get_account_info.
func (c *Config) accountInfo(s *State, r Request) []expect {
	if !validMobile(r.ConsumerID) && !validAccount(r.ConsumerID) {
		return decline(s, CodeMalformed)
	}
	if !c.originOK(r) {
		return decline(s, CodeTerminal)
	}
	if r.BadBlock {
		return decline(s, CodePINBlock)
	}
	mobile, acct, ok := s.consumer(r.ConsumerID)
	if !ok {
		return decline(s, CodeNotFound)
	}
	code, left, n := c.password(s, mobile, r)
	if code != OK {
		return []expect{{code: code, left: left, next: n}}
	}
	if acct == "" {
		acct = CashSymbol(mobile)
	}
	a := n.Accounts[acct]
	return []expect{{status: chinese(a.Status), accountSym: acct, balance: a.Balance, hasBalance: true, left: -1, next: n}}
}

func chinese(status string) string {
	return map[string]string{"pending": "待生效", "active": "正常", "frozen": "冻结", "closed": "已注销"}[status]
}

// initialPIN is the id-last6 policy: the last six characters of the ID,
// X read as 0 (SPEC section 4).
func initialPIN(id string) string {
	return strings.ReplaceAll(strings.ToUpper(id[len(id)-6:]), "X", "0")
}

// validID checks the 18-character resident ID and its GB 11643 check digit.
func validID(id string) bool {
	if len(id) != 18 || !digits(id[:17]) {
		return false
	}
	return CheckDigit(id[:17]) == strings.ToUpper(id[17:])
}

// CheckDigit is the GB 11643 check character of the first 17 digits.
func CheckDigit(first17 string) string {
	weights := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, w := range weights {
		sum += int(first17[i]-'0') * w
	}
	return string("10X98765432"[sum%11])
}

func yuan(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) }

// cardRemark is what an open_card answer tells the POS: paid so far and
// still due, or that the card is paid up and when it takes effect.
func cardRemark(price, paid int64, immediate bool) string {
	switch {
	case paid < price:
		return "已付" + yuan(paid) + "元，尚欠" + yuan(price-paid) + "元"
	case immediate:
		return "已付清，卡{acct}已生效"
	}
	return "已付清，卡{acct}将于日切对账后生效"
}

func repealRemark(o CardOrder, sum int64) string {
	if o.Status == "closed" {
		return "已撤销" + yuan(sum) + "元，订单已关闭"
	}
	return "已撤销" + yuan(sum) + "元，" + cardRemark(o.Price, o.Paid, false)
}

// balances is the final read the model predicts.
func (s *State) balances() Answer {
	a := Answer{Accounts: map[string][]string{}, Passwords: map[string]string{}}
	for m, c := range s.Customers {
		a.Passwords[m] = fmt.Sprintf("%d %v", c.Failures, c.Locked)
	}
	for _, x := range s.Accounts {
		a.Accounts[x.Customer] = append(a.Accounts[x.Customer], AccountLine(x.Kind, x.Product, x.Status, x.Balance))
	}
	for _, l := range a.Accounts {
		slices.Sort(l)
	}
	return a
}

// AccountLine is one account in a Balances answer.
func AccountLine(kind, product, status string, balance int64) string {
	return fmt.Sprintf("%s %s %s %d", kind, product, status, balance)
}

func balancesEqual(want, got Answer) bool {
	if len(want.Accounts) != len(got.Accounts) || len(want.Passwords) != len(got.Passwords) {
		return false
	}
	for m, l := range want.Accounts {
		g := slices.Clone(got.Accounts[m])
		slices.Sort(g)
		if !slices.Equal(l, g) {
			return false
		}
	}
	for m, p := range want.Passwords {
		if got.Passwords[m] != p {
			return false
		}
	}
	return true
}
