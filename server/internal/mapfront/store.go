package mapfront

import (
	"context"
	"errors"
	"time"
)

// OfflineStore is what the Offline service needs of storage. The service
// owns this interface; the postgres package implements it with SQL and
// nothing else (no key material, no decisions).
//
// Each Load method is one call that begins one database transaction, takes
// the locks its comment names, reads everything the rules need and returns
// that state with the Unit that ends the transaction. The locks are held
// until the unit ends: Persist writes the decided outcome and commits in one
// call; Rollback ends it with nothing written. A unit must be ended exactly
// once (Rollback after Persist is a no-op, so `defer u.Rollback()` is always
// right). Between Load and Persist the service decides; it never goes back
// to the store within a unit.
//
// Errors of every method: an error wrapping *Transient when the transaction
// certainly did not commit and a new attempt may succeed (the service
// retries it, then answers 10018); a *Error for a business outcome the
// database itself decided (10009 when the balance CHECK refused an
// overdraft; nothing was written); any other error is internal (10000) and,
// from Persist, means the outcome is unknown.
type OfflineStore interface {
	// LoadPay takes the pay key's transaction lock (the same one LoadUndo
	// takes, so a pay and its reversal run one after the other), reads the
	// key's record and approved order, the terminal, the customer named by
	// consumerId and their active accounts in activation order (customer and
	// accounts locked FOR NO KEY UPDATE until the end of the transaction),
	// and reserves an order number. One round trip.
	LoadPay(ctx context.Context, r *PayRequest) (*PayState, Unit[*PayOutcome], error)
	// LoadCancel takes the cancel key's lock, reads its record, the terminal,
	// the original pay order and its account's balance (both locked).
	LoadCancel(ctx context.Context, r *CancelPayRequest) (*CancelState, Unit[*CancelOutcome], error)
	// LoadUndo takes the pay key's lock, reads its record, the terminal, the
	// approved order of the key and its account's balance (both locked).
	LoadUndo(ctx context.Context, r *UndoPayRequest) (*UndoState, Unit[*UndoOutcome], error)
	// LoadOpenCard takes the open_card key's lock, reads its record, the
	// terminal, the product, the customer of the mobile number and their
	// filling order for the product (locked), and reserves the account and
	// order numbers a new customer and a new order would take.
	LoadOpenCard(ctx context.Context, r *OpenCardRequest) (*OpenCardState, Unit[*OpenCardOutcome], error)
	// LoadRepeal takes the open_card key's lock and reads the terminal, the
	// payment of the key, its order, the customer's mobile and the card's
	// balance and use (payment, order and card locked FOR UPDATE).
	LoadRepeal(ctx context.Context, r *RepealCardRequest) (*RepealState, Unit[*RepealOutcome], error)
	// LoadAccountQuery reads the terminal, the customer named by consumerId
	// (locked FOR NO KEY UPDATE, for the password count) and the account
	// the query answers: a mobile number's cash account, or that accountId.
	LoadAccountQuery(ctx context.Context, r *AccountQuery) (*AccountQueryState, Unit[*PasswordChange], error)
	// ProductsFor reads the terminal and the products on sale, in id order,
	// in one read-only snapshot.
	ProductsFor(ctx context.Context, o Origin) (TerminalState, []Product, error)
}

// Unit is the open half of a transaction begun by a Load: Persist writes the
// outcome and commits; Rollback ends the transaction writing nothing.
type Unit[O any] interface {
	// Persist writes o and commits in one round trip. Errors: see
	// OfflineStore.
	Persist(ctx context.Context, o O) error
	// Rollback ends the transaction if it is still open.
	Rollback()
}

// Transient marks a store error after which the transaction certainly did
// not commit (a serialization failure, a deadlock, a plan invalidated by a
// schema change, a connection that failed before COMMIT was sent): the
// request had no effect and may be tried again.
type Transient struct{ Err error }

func (e *Transient) Error() string { return "transient: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *Transient) Unwrap() error { return e.Err }

// IsTransient reports whether err certainly had no effect and may be retried.
func IsTransient(err error) bool {
	var t *Transient
	return errors.As(err, &t)
}

// TerminalState is a registry terminal as a request sees it.
type TerminalState struct {
	Found     bool // the terminal exists with that seller and store
	Enabled   bool // terminal, store and seller are all enabled
	SealedTPK []byte
	LegacyDES bool
	PINGuard  PINGuard // the terminal's wrong-PIN budget (SPEC section 7)
}

// Customer is a customer as the rules need them.
type Customer struct {
	ID       int64
	Mobile   string
	IDIndex  []byte // the ID number's blind index (SealedID); never the clear number
	PwHash   []byte // nil: no password set
	Failures int
	Locked   bool
}

// PasswordChange is a customer's new failure count and lock, to be written
// whether the request is approved or declined (SPEC section 5).
type PasswordChange struct {
	CustomerID int64
	Failures   int
	Locked     bool
	// Rehash, when set, replaces the password hash: the password verified
	// under an old master key and is hashed again under the current one
	// (SPEC section 7, rotation), in the same write as the count.
	Rehash []byte
	// Terminal is the wrong PIN to count against the terminal's budget
	// (SPEC section 7), written with the customer's count; nil: none.
	Terminal *PINFailure
}

// PayStatus is the state of a payment order.
type PayStatus string

// Payment order states.
const (
	PaySuccess   PayStatus = "success"
	PayCancelled PayStatus = "cancelled"
	PayReversed  PayStatus = "reversed"
)

// PayOrder is a payment order: a pay, or the cancel of one.
type PayOrder struct {
	ID              string
	Status          PayStatus
	AccountID       string
	SellerID        string
	StoreID         string
	TerminalID      string
	BatchNo         string
	TerminalOrderID string
	OperatorID      string
	ConsumerID      string
	Amount          int64 // fen
	BalanceAfter    int64 // fen, the account's balance after the order
	BusinessDate    time.Time
	PayTime         time.Time
	ProductName     string
	ProductPrice    int64
	ProductQuantity string
	Remark          string
	Fingerprint     []byte // pays: the request's, for repeats of its key
	OriginalOrderID string // cancels: the pay's
}

// PayState is what LoadPay reads.
type PayState struct {
	Key      *KeyRecord // the key's record; nil if none
	Paid     *PayOrder  // the key's approved pay; nil if none
	Terminal TerminalState
	Customer *Customer // nil: no such consumer
	// Accounts are the customer's candidate accounts: by mobile their
	// active accounts in activation order, by accountId that account.
	Accounts []AccountChoice
	OrderSeq int64
}

// PayOutcome is what a pay writes.
type PayOutcome struct {
	Password *PasswordChange // the count to store, decline or not
	Approved *PayOrder       // the order to insert and post
	Declined *KeyRecord      // the key's record of a decline
	Key      TerminalKey
}

// CancelState is what LoadCancel reads.
type CancelState struct {
	Key             *KeyRecord
	Terminal        TerminalState
	Original        *PayOrder // nil: no pay with that orderId
	OriginalBalance int64     // the original's account balance now
	OrderSeq        int64
}

// CancelOutcome is what a pay_cancel writes: the cancel order and its
// refund, or the decline, and the key's record either way.
type CancelOutcome struct {
	Key    TerminalKey
	Record *KeyRecord
	Cancel *PayOrder // nil when declined
}

// UndoState is what LoadUndo reads.
type UndoState struct {
	Terminal    TerminalState
	Key         *KeyRecord // the pay key's record
	Paid        *PayOrder  // the approved pay of the key
	PaidBalance int64      // its account's balance now
	OrderSeq    int64
}

// UndoOutcome is what a pay_undo writes: the refund of the pay if any and
// the pay key's new record.
type UndoOutcome struct {
	Key    TerminalKey
	Refund *PayOrder // the pay to mark reversed and refund
	Record *KeyRecord
}

// CardOrder is a card order: the open_card payments of one customer and
// product toward its price (SPEC section 5).
type CardOrder struct {
	ID           string
	CustomerID   int64
	ProductID    string
	AccountID    string
	Price        int64
	FaceValue    int64
	Installments int
	Released     int
	Paid         int64
	Filling      bool
	Status       string // pending, active, closed
	Credited     bool
	Referrer     string
	ActivatedAt  *time.Time
}

// OpenCardState is what LoadOpenCard reads.
type OpenCardState struct {
	Key      *KeyRecord
	Terminal TerminalState
	Product  *Product   // nil: unknown
	Customer *Customer  // nil: a new customer
	Filling  *CardOrder // the customer's filling order of the product
	// Numbers reserved for what a payment may create: the new customer's
	// cash account, the new order's card account and the order.
	CashSeq, CardSeq, OrderSeq int64
}

// NewCustomer is a customer an open_card creates, with their cash account.
type NewCustomer struct {
	Mobile        string
	ID            *SealedID
	PwHash        []byte
	CashAccountID string
}

// OpenCardOutcome is what an open_card writes.
type OpenCardOutcome struct {
	Key         TerminalKey
	Record      *KeyRecord
	Mobile      string // the customer's
	NewCustomer *NewCustomer
	NewOrder    *CardOrder // an order to start (with its pending card account)
	Order       *CardOrder // the order paid into, after the payment
	Payment     *CardPaymentRow
	Activate    bool // credit the card now (immediate policy)
	Now         time.Time
}

// CardPaymentRow is an open_card payment as stored.
type CardPaymentRow struct {
	ID              int64
	OrderID         string
	Origin          Origin
	BatchNo         string
	TerminalOrderID string
	Sum             int64
	Status          string // paid, repealed, refunded (RefundOwed)
	Settled         bool
	BusinessDate    time.Time
}

// RepealState is what LoadRepeal reads.
type RepealState struct {
	Terminal TerminalState
	Payment  *CardPaymentRow // nil: no payment with that key
	Order    *CardOrder
	Mobile   string
	// CardBalance and CardSpent are the card account's balance and whether
	// any pay used it.
	CardBalance int64
	CardSpent   bool
	// CardStatus is the card account's status (frozen: no repeal).
	CardStatus AccountStatus
	// OtherFilling: the customer has another filling order of the product.
	OtherFilling bool
}

// RepealOutcome is what a repeal_card writes.
type RepealOutcome struct {
	Key       TerminalKey
	PaymentID int64
	TakeBack  []Leg      // the postings that reverse the activation, if any
	Order     *CardOrder // the order after the repeal
	Now       time.Time
}

// AccountQueryState is what LoadAccountQuery reads.
type AccountQueryState struct {
	Terminal TerminalState
	Customer *Customer
	Account  *AccountInfo // nil: none
}
