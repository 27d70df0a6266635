package mapfront

import (
	"context"
	"strings"
	"time"
)

// LookupStore is what the operations console's look-ups need of the store
// (SPEC section 7; part of AdminStore): reads only, one statement each, SQL only.
type LookupStore interface {
	// CustomersByIDIndex returns the mobiles of the customers whose stored
	// blind index is one of indexes (the index under each key held), in
	// mobile order; none is no error.
	CustomersByIDIndex(ctx context.Context, indexes [][]byte) ([]string, error)
	// KeyHistory returns everything stored under a terminal key (SPEC
	// section 5), in KeyEvent order; none is no error.
	KeyHistory(ctx context.Context, key TerminalKey) ([]KeyEvent, error)
}

// Key events: what one entry of a terminal key's history is.
const (
	EventOpenCard  = "open_card" // a card sale's payment (card_payments)
	EventPay       = "pay"       // an approved pay (its order)
	EventCancel    = "cancel"    // a cancel (消费撤销): under this key, or naming this key's pay
	EventDecline   = "decline"   // a declined request, with its errcode
	EventTombstone = "tombstone" // a reversal before (or instead of) its pay
	EventReversal  = "reversal"  // the reversal (冲正) of this key's approved pay
)

// KeyEvent is one entry of a terminal key's history: the orders stored under
// the key, the cancels naming its pay, then its stored outcomes other than
// approvals (declines, tombstone, reversal), each group in time order.
type KeyEvent struct {
	Event string // EventPay, ...
	Kind  string // the kind of the key it is stored under: KindOpenCard, KindPay, KindPayCancel
	// OrderID is the order of the entry (a reversal's: the reversed pay's);
	// OriginalOrderID the pay a cancel names.
	OrderID, OriginalOrderID string
	Status                   string // the order's status, or the key's state
	Amount                   int64  // fen; 0 where nothing stored has one (declines, tombstones)
	Errcode                  int    // a decline's (SPEC section 3); 0 otherwise
	Errmsg                   string
	Key                      TerminalKey // a cancel naming the pay has a key of its own
	At                       time.Time   // the order's time; for outcomes, when the store wrote them
}

// FindCustomersByID returns the customers registered with a whole ID number
// (18 characters, check digit valid), looked up by its blind index: the
// number itself is never stored nor returned, only its masked form in each
// CustomerView. None found is an empty slice. Errors: 10001.
func (s *AdminService) FindCustomersByID(ctx context.Context, idNumber string) ([]*CustomerView, error) {
	idNumber = NormalizeIDNumber(strings.TrimSpace(idNumber))
	if !ValidIDNumber(idNumber) {
		return nil, Invalid("ID", "须为18位身份证号且校验位正确")
	}
	mobiles, err := s.AdminStore.CustomersByIDIndex(ctx, s.keys.IDIndexes(idNumber))
	if err != nil {
		return nil, err
	}
	out := make([]*CustomerView, 0, len(mobiles))
	for _, m := range mobiles {
		c, err := s.GetCustomer(ctx, m)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// TerminalKeyHistory returns a terminal key's whole history (SPEC section
// 5): its pay or card sale, declines with their errcodes, the cancels of
// its pay and its reversal or tombstone. An unknown key has none.
// Errors: 10001 a missing or over-long part.
func (s *AdminService) TerminalKeyHistory(ctx context.Context, key TerminalKey) ([]KeyEvent, error) {
	for _, f := range []struct{ name, v string }{{"terminalId", key.TerminalID}, {"batchNo", key.BatchNo}, {"terminalOrderId", key.TerminalOrderID}} {
		if f.v == "" || len(f.v) > MaxIDLen {
			return nil, Invalid(f.name, "不能为空且不超过限长")
		}
	}
	return s.AdminStore.KeyHistory(ctx, key)
}
