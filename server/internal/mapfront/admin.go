package mapfront

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/pinblock"
)

// Views of AdminService (SPEC section 1): what the back office sees.

// CustomerView is a customer as AdminService shows them.
type CustomerView struct {
	Mobile         string
	IDNumberMasked string
	PasswordSet    bool
	Locked         bool
	Failures       int
	Accounts       []AccountView
}

// AccountView is an account as AdminService shows it.
type AccountView struct {
	ID          string
	Kind        string
	ProductID   string
	Status      AccountStatus
	Balance     int64
	ActivatedAt *time.Time
}

// OrderView is a card or payment order as the back office sees it.
type OrderView struct {
	OrderID, Kind, Status, AccountID, Mobile, ProductID string
	Amount, Paid                                        int64
	SellerID, StoreID, TerminalID, BatchNo, TermOrderID string
	BusinessDate                                        time.Time
	CreatedAt                                           time.Time
	OriginalOrderID                                     string
	Payments                                            []PaymentView
}

// PaymentView is one open_card payment of a card order.
type PaymentView struct {
	TerminalID, BatchNo, TerminalOrderID, Status string
	PaySum                                       int64
	BusinessDate                                 time.Time
	Settled                                      bool
}

// StatementLine is one posting on an account.
type StatementLine struct {
	TxnID     int64
	Kind      string
	OrderID   string
	Amount    int64
	CreatedAt time.Time
}

// LedgerReport is the outcome of VerifyLedger.
type LedgerReport struct {
	OK           bool
	Transactions int64
	Postings     int64
	Accounts     int64
	Unbalanced   []string // "txn 12: sum 5"
	Mismatched   []string // "1010…: balance 10, postings 5"
	Negative     []string // "1010…: balance -5"
}

// TerminalSpec is what UpsertTerminal sets.
type TerminalSpec struct {
	TerminalID, SellerID, StoreID string
	Enabled                       bool
	// TPKHex is the clear PIN key in hex: 32 digits, or 16 for a legacy
	// single-DES terminal; empty keeps the stored key.
	TPKHex    string
	LegacyDES bool
}

// TerminalRow is a terminal as the store keeps it: the PIN key sealed.
type TerminalRow struct {
	TerminalID, SellerID, StoreID string
	Enabled                       bool
	SealedTPK                     []byte // nil keeps the stored key
	KCV                           string
	LegacyDES                     bool
}

// AdminStore is what the admin service needs of storage: one transaction
// per method, SQL only. Errors are *Error for business outcomes (named on
// each method), 10018 when the database was busy, others internal.
type AdminStore interface {
	// ListAudit returns the audit records f selects, newest first (SPEC
	// section 7): 10001 a limit out of range.
	ListAudit(ctx context.Context, f audit.Filter) ([]audit.Entry, error)
	// UpsertProduct creates or replaces a validated product.
	UpsertProduct(ctx context.Context, p Product) (*Product, error)
	// ListProducts returns the products in id order.
	ListProducts(ctx context.Context, onSaleOnly bool) ([]Product, error)
	UpsertSeller(ctx context.Context, id, name string, enabled bool) error
	// UpsertStore: 10002 unknown seller.
	UpsertStore(ctx context.Context, sellerID, storeID, name string, enabled bool) error
	// UpsertTerminal returns the stored key's check value. 10002 unknown store.
	UpsertTerminal(ctx context.Context, t TerminalRow) (string, error)
	// CreateCustomer finds or creates a customer with a cash account; a new
	// one gets pwHash. 10016 mobile of another ID.
	CreateCustomer(ctx context.Context, mobile string, id *SealedID, pwHash []byte) error
	// GetCustomer: 10005.
	GetCustomer(ctx context.Context, mobile string) (*CustomerView, error)
	// CustomerSealedID returns a customer's sealed ID number. 10005.
	CustomerSealedID(ctx context.Context, mobile string) ([]byte, error)
	// SetPasswordHash sets a customer's password hash (nil: none), clears
	// the count and unlocks. 10005.
	SetPasswordHash(ctx context.Context, mobile string, hash []byte) error
	// UnlockPaymentPassword clears the count and the lock. 10005.
	UnlockPaymentPassword(ctx context.Context, mobile string) error
	// LiftTerminalSuspension ends a terminal's wrong-PIN suspension and
	// clears its count (SPEC section 7), reporting whether it was suspended
	// (its end still to come by the store's clock). 10002 unknown terminal.
	LiftTerminalSuspension(ctx context.Context, terminalID string) (bool, error)
	// TopUpCash credits a cash account once per reference; a reference a
	// pending top-up proposal holds is as in TopUpCashWithin. 10003, 10005,
	// 10006, ErrTopUpNeedsApproval.
	TopUpCash(ctx context.Context, mobile string, amount int64, reference string) (string, int64, error)
	// TopUpCashWithin is TopUpCash made without a supervisor: it credits
	// nothing and returns ErrTopUpNeedsApproval when the account's direct
	// top-ups of the last TopUpWindow and amount come to more than limit
	// fen (limit 0: no limit), counted under the account's lock, or when a
	// pending top-up proposal holds the reference for the same mobile and
	// amount (another: 10003); a reference is never credited both directly
	// and by an approval.
	TopUpCashWithin(ctx context.Context, mobile string, amount int64, reference string, limit int64) (string, int64, error)
	// SetAccountFrozen: 10005, 10006.
	SetAccountFrozen(ctx context.Context, accountID string, frozen bool) error
	// GetOrder: 10010.
	GetOrder(ctx context.Context, orderID string) (*OrderView, error)
	// ListStatement: 10005.
	ListStatement(ctx context.Context, accountID string, limit int) (int64, []StatementLine, error)
	VerifyLedger(ctx context.Context) (*LedgerReport, error)
	// ListExceptions returns manual-handling queue items (SPEC section 6):
	// 10001.
	ListExceptions(ctx context.Context, f ExceptionFilter) ([]Exception, error)
	// GetException: 10010.
	GetException(ctx context.Context, id int64) (*Exception, error)
	// ResolveException settles a queue item once; already says it was:
	// 10001, 10006, 10010, 10011 and 10013 (refund_owed), 10015, 10018.
	ResolveException(ctx context.Context, r Resolution) (*Exception, bool, error)
	// CheckRefund says whether refund_owed on queue item id would be
	// refused now (RefundOwed), so that no proposal is filed that a
	// supervisor could never approve; nil when it would go through or the
	// item names no payment to refund. Errors: 10011, 10013, 10018.
	CheckRefund(ctx context.Context, id int64) error
	// LoadDemoCard adds the demo card with its balance (SPEC section 8),
	// once.
	LoadDemoCard(ctx context.Context, mobile, card string) error
	// ProposalStore keeps the four-eyes proposals (proposals.go).
	ProposalStore
	// LookupStore finds customers by ID number and terminal keys' histories (lookup.go).
	LookupStore
}

// AdminService is the back office's application service (AdminService of
// SPEC section 1): it validates, does what needs the master key (sealing PIN
// keys, hashing passwords) and asks the store.
type AdminService struct {
	AdminStore
	keys           Keys
	policy         Policy
	approvalPolicy ApprovalPolicy
}

// NewAdminService returns the admin service over store.
func NewAdminService(store AdminStore, keys Keys, policy Policy) *AdminService {
	return &AdminService{AdminStore: store, keys: keys, policy: policy}
}

// UpsertProduct validates and stores a product. Errors: 10001.
func (s *AdminService) UpsertProduct(ctx context.Context, p Product) (*Product, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return s.AdminStore.UpsertProduct(ctx, p)
}

// UpsertSeller creates or updates a seller. Errors: 10001.
func (s *AdminService) UpsertSeller(ctx context.Context, id, name string, enabled bool) error {
	if err := checkRegistryID("sellerId", id); err != nil {
		return err
	}
	return s.AdminStore.UpsertSeller(ctx, id, name, enabled)
}

// UpsertStore creates or updates a store of an existing seller.
// Errors: 10001 bad id, 10002 unknown seller.
func (s *AdminService) UpsertStore(ctx context.Context, sellerID, storeID, name string, enabled bool) error {
	if err := checkRegistryID("storeId", storeID); err != nil {
		return err
	}
	return s.AdminStore.UpsertStore(ctx, sellerID, storeID, name, enabled)
}

// UpsertTerminal creates or updates a terminal; the PIN key is sealed under
// the master key and only its check value is returned.
// Errors: 10001 bad id or key, 10002 unknown seller/store.
func (s *AdminService) UpsertTerminal(ctx context.Context, t TerminalSpec) (string, error) {
	if err := checkRegistryID("terminalId", t.TerminalID); err != nil {
		return "", err
	}
	row := TerminalRow{TerminalID: t.TerminalID, SellerID: t.SellerID, StoreID: t.StoreID, Enabled: t.Enabled, LegacyDES: t.LegacyDES}
	if t.TPKHex != "" {
		keying, want := pinblock.DoubleLength, 16
		if t.LegacyDES {
			keying, want = pinblock.LegacySingle, 8
		}
		key, err := hex.DecodeString(t.TPKHex)
		if err != nil || len(key) != want {
			return "", Invalid("tpk", fmt.Sprintf("须为%d位十六进制", want*2))
		}
		defer clear(key)
		if row.KCV, err = pinblock.KCV(key, keying); err != nil {
			return "", Invalid("tpk", "不是可用的密钥")
		}
		if row.SealedTPK, err = s.keys.SealTPK(t.TerminalID, key); err != nil {
			return "", err
		}
	}
	return s.AdminStore.UpsertTerminal(ctx, row)
}

// CreateCustomer registers a customer with a cash account and the policy's
// initial password; an existing customer with the same mobile and ID is
// returned. Errors: 10001, 10016.
func (s *AdminService) CreateCustomer(ctx context.Context, mobile, idNumber string) (*CustomerView, error) {
	idNumber = NormalizeIDNumber(idNumber)
	if !ValidMobile(mobile) {
		return nil, Invalid("mobileNum", "须为1开头的11位数字")
	}
	if !ValidIDNumber(idNumber) {
		return nil, Invalid("ID", "须为18位身份证号且校验位正确")
	}
	hash, err := s.initialHash(idNumber)
	if err != nil {
		return nil, err
	}
	id, err := SealID(s.keys, mobile, idNumber)
	if err != nil {
		return nil, err
	}
	if err := s.AdminStore.CreateCustomer(ctx, mobile, id, hash); err != nil {
		return nil, err
	}
	return s.GetCustomer(ctx, mobile)
}

// SetPaymentPassword sets a customer's password (6 digits) and unlocks it.
// Errors: 10001, 10005.
func (s *AdminService) SetPaymentPassword(ctx context.Context, mobile, password string) error {
	if !validPassword(password) {
		return Invalid("password", "须为6位数字")
	}
	hash, err := s.keys.HashPassword(password)
	if err != nil {
		return err
	}
	return s.SetPasswordHash(ctx, mobile, hash)
}

// ResetPaymentPassword puts the policy's initial password back (none under
// policy none) and unlocks. Errors: 10005.
func (s *AdminService) ResetPaymentPassword(ctx context.Context, mobile string) error {
	sealed, err := s.CustomerSealedID(ctx, mobile)
	if err != nil {
		return err
	}
	id, err := s.keys.OpenIDNumber(mobile, sealed)
	if err != nil {
		return err
	}
	hash, err := s.initialHash(id)
	if err != nil {
		return err
	}
	return s.SetPasswordHash(ctx, mobile, hash)
}

// TopUpCash credits a customer's cash account; reference makes it
// idempotent. Errors: 10001, 10003, 10005, 10006, 10015.
func (s *AdminService) TopUpCash(ctx context.Context, mobile string, amount int64, reference string) (string, int64, error) {
	if amount <= 0 || amount > MaxAmount {
		return "", 0, Errorf(CodeAmount, "充值金额须大于0")
	}
	if reference == "" || len(reference) > 64 {
		return "", 0, Invalid("reference", "不能为空且最多64个字符")
	}
	return s.AdminStore.TopUpCash(ctx, mobile, amount, reference)
}

// LoadDemo loads the demo data of SPEC section 8; loading it again changes
// nothing but setting the demo password back. tpkHex is the demo terminals'
// PIN key.
func (s *AdminService) LoadDemo(ctx context.Context, tpkHex string) error {
	for _, t := range [][3]string{{"SH01", "ST01", "POS01"}, {"SH12345", "ST12345", "ZJ000001"}, {"GM01", "ST01", "POS12345"}} {
		if err := s.UpsertSeller(ctx, t[0], "演示商户"+t[0], true); err != nil {
			return err
		}
		if err := s.UpsertStore(ctx, t[0], t[1], "演示门店"+t[1], true); err != nil {
			return err
		}
		if _, err := s.UpsertTerminal(ctx, TerminalSpec{TerminalID: t[2], SellerID: t[0], StoreID: t[1], Enabled: true, TPKHex: tpkHex}); err != nil {
			return err
		}
	}
	for _, p := range []Product{
		{ID: "1010", Name: "乐驾包5000", ShortName: "乐驾包5000", Price: 450000, FaceValue: 500000, OnSale: true},
		{ID: "1011", Name: "乐驾包4000", ShortName: "乐驾包4000", Price: 350000, FaceValue: 400000, OnSale: true},
		{ID: "1012", Name: "乐驾包2000", ShortName: "乐驾包2000", Price: 150000, FaceValue: 200000, OnSale: true},
	} {
		if _, err := s.UpsertProduct(ctx, p); err != nil {
			return err
		}
	}
	const mobile, idNumber, card = "13912345678", "11010519491231002X", "1010123412341234"
	if _, err := s.CreateCustomer(ctx, mobile, idNumber); err != nil {
		return err
	}
	if err := s.SetPaymentPassword(ctx, mobile, "123456"); err != nil {
		return err
	}
	if _, _, err := s.TopUpCash(ctx, mobile, 1_000_000, "demo-cash-13912345678"); err != nil {
		return err
	}
	return s.LoadDemoCard(ctx, mobile, card)
}

func (s *AdminService) initialHash(idNumber string) ([]byte, error) {
	return InitialPasswordHasher(s.policy, s.keys)(idNumber)
}

func validPassword(p string) bool { return len(p) == 6 && allDigits(p) }

// checkRegistryID applies the registry's id rule: present, at most 32
// characters, no surrounding spaces.
func checkRegistryID(name, id string) error {
	if id == "" {
		return Missing(name)
	}
	if len(id) > MaxIDLen || strings.TrimSpace(id) != id || HasControl(id) {
		return Invalid(name, "最多32个字符，首尾不能有空格")
	}
	return nil
}
