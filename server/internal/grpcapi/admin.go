package grpcapi

import (
	"context"
	"log/slog"
	"time"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// Admin is what the AdminService needs of the back office's application
// service (mapfront.AdminService). Each method returns *mapfront.Error for
// business outcomes (errcodes of SPEC section 3, named on each method) and
// other errors only for internal failures; 10018 when the database is busy.
type Admin interface {
	// ListAudit: 10001 a limit out of range.
	ListAudit(ctx context.Context, f audit.Filter) ([]audit.Entry, error)
	// UpsertProduct: 10001 invalid product.
	UpsertProduct(ctx context.Context, p mapfront.Product) (*mapfront.Product, error)
	ListProducts(ctx context.Context, onSaleOnly bool) ([]mapfront.Product, error)
	// UpsertSeller: 10001 bad id.
	UpsertSeller(ctx context.Context, id, name string, enabled bool) error
	// UpsertStore: 10001 bad id, 10002 unknown seller.
	UpsertStore(ctx context.Context, sellerID, storeID, name string, enabled bool) error
	// UpsertTerminal returns the key check value: 10001 bad id or key, 10002
	// unknown seller/store.
	UpsertTerminal(ctx context.Context, t mapfront.TerminalSpec) (string, error)
	// LiftTerminalSuspension reports whether the terminal was suspended:
	// 10002 unknown terminal.
	LiftTerminalSuspension(ctx context.Context, terminalID string) (bool, error)
	// CreateCustomer: 10001, 10016.
	CreateCustomer(ctx context.Context, mobile, idNumber string) (*mapfront.CustomerView, error)
	// GetCustomer: 10005.
	GetCustomer(ctx context.Context, mobile string) (*mapfront.CustomerView, error)
	// SetPaymentPassword: 10001, 10005.
	SetPaymentPassword(ctx context.Context, mobile, password string) error
	// ResetPaymentPassword: 10005.
	ResetPaymentPassword(ctx context.Context, mobile string) error
	// UnlockPaymentPassword: 10005.
	UnlockPaymentPassword(ctx context.Context, mobile string) error
	// TopUpCash returns the cash account and its balance: 10001, 10003,
	// 10005, 10006, 10015.
	TopUpCash(ctx context.Context, mobile string, amount int64, reference string) (string, int64, error)
	// SetAccountFrozen: 10005, 10006.
	SetAccountFrozen(ctx context.Context, accountID string, frozen bool) error
	// GetOrder: 10010.
	GetOrder(ctx context.Context, orderID string) (*mapfront.OrderView, error)
	// ListStatement returns the balance and the newest postings: 10005.
	ListStatement(ctx context.Context, accountID string, limit int) (int64, []mapfront.StatementLine, error)
	VerifyLedger(ctx context.Context) (*mapfront.LedgerReport, error)
	// ListExceptions returns manual-handling queue items (SPEC section 6):
	// 10001.
	ListExceptions(ctx context.Context, f mapfront.ExceptionFilter) ([]mapfront.Exception, error)
	// GetException: 10010.
	GetException(ctx context.Context, id int64) (*mapfront.Exception, error)
	// ResolveException settles a queue item once; already says it was:
	// 10001, 10006, 10010, 10015, 10018.
	ResolveException(ctx context.Context, r mapfront.Resolution) (*mapfront.Exception, bool, error)
	// Proposals: four-eyes approval (proposals.go).
	Proposals
	// Lookups: the console's look-ups (lookup.go).
	Lookups
}

// AdminServer implements mapfrontv1.AdminServiceServer over Admin.
// The manual-handling queue RPCs are served by the settlement side.
type AdminServer struct {
	mapfrontv1.UnimplementedAdminServiceServer
	Store Admin
	Log   *slog.Logger
}

func (s *AdminServer) fail(ctx context.Context, method string, err error) error {
	return errorStatus(ctx, s.Log, method, err)
}

var kinds = map[mapfrontv1.ProductKind]mapfront.ProductKind{
	mapfrontv1.ProductKind_PRODUCT_KIND_UNSPECIFIED: mapfront.Discount,
	mapfrontv1.ProductKind_PRODUCT_KIND_DISCOUNT:    mapfront.Discount,
	mapfrontv1.ProductKind_PRODUCT_KIND_INSTALLMENT: mapfront.Installment,
}

func productOut(p *mapfront.Product) *mapfrontv1.Product {
	k := mapfrontv1.ProductKind_PRODUCT_KIND_DISCOUNT
	if p.Kind == mapfront.Installment {
		k = mapfrontv1.ProductKind_PRODUCT_KIND_INSTALLMENT
	}
	return &mapfrontv1.Product{ProductId: p.ID, Name: p.Name, ShortName: p.ShortName, Price: p.Price,
		FaceValue: p.FaceValue, Kind: k, Installments: int32(p.Installments), OnSale: p.OnSale, Remark: p.Remark}
}

// UpsertProduct implements the RPC of the same name.
func (s *AdminServer) UpsertProduct(ctx context.Context, in *mapfrontv1.UpsertProductRequest) (*mapfrontv1.UpsertProductResponse, error) {
	p := in.GetProduct()
	if p == nil {
		return nil, s.fail(ctx, "UpsertProduct", mapfront.Missing("product"))
	}
	out, err := s.Store.UpsertProduct(ctx, mapfront.Product{ID: p.ProductId, Name: p.Name, ShortName: p.ShortName,
		Price: p.Price, FaceValue: p.FaceValue, Kind: kinds[p.Kind], Installments: int(p.Installments), OnSale: p.OnSale, Remark: p.Remark})
	if err != nil {
		return nil, s.fail(ctx, "UpsertProduct", err)
	}
	return &mapfrontv1.UpsertProductResponse{Product: productOut(out)}, nil
}

// ListProducts implements the RPC of the same name.
func (s *AdminServer) ListProducts(ctx context.Context, _ *mapfrontv1.ListProductsRequest) (*mapfrontv1.ListProductsResponse, error) {
	ps, err := s.Store.ListProducts(ctx, false)
	if err != nil {
		return nil, s.fail(ctx, "ListProducts", err)
	}
	out := &mapfrontv1.ListProductsResponse{}
	for i := range ps {
		out.Products = append(out.Products, productOut(&ps[i]))
	}
	return out, nil
}

// UpsertSeller implements the RPC of the same name.
func (s *AdminServer) UpsertSeller(ctx context.Context, in *mapfrontv1.UpsertSellerRequest) (*mapfrontv1.UpsertSellerResponse, error) {
	if err := s.Store.UpsertSeller(ctx, in.SellerId, in.Name, in.Enabled); err != nil {
		return nil, s.fail(ctx, "UpsertSeller", err)
	}
	return &mapfrontv1.UpsertSellerResponse{}, nil
}

// UpsertStore implements the RPC of the same name.
func (s *AdminServer) UpsertStore(ctx context.Context, in *mapfrontv1.UpsertStoreRequest) (*mapfrontv1.UpsertStoreResponse, error) {
	if err := s.Store.UpsertStore(ctx, in.SellerId, in.StoreId, in.Name, in.Enabled); err != nil {
		return nil, s.fail(ctx, "UpsertStore", err)
	}
	return &mapfrontv1.UpsertStoreResponse{}, nil
}

// UpsertTerminal implements the RPC of the same name.
func (s *AdminServer) UpsertTerminal(ctx context.Context, in *mapfrontv1.UpsertTerminalRequest) (*mapfrontv1.UpsertTerminalResponse, error) {
	kcv, err := s.Store.UpsertTerminal(ctx, mapfront.TerminalSpec{TerminalID: in.TerminalId, SellerID: in.SellerId,
		StoreID: in.StoreId, Enabled: in.Enabled, TPKHex: in.TpkHex, LegacyDES: in.LegacyDes})
	if err != nil {
		return nil, s.fail(ctx, "UpsertTerminal", err)
	}
	return &mapfrontv1.UpsertTerminalResponse{Kcv: kcv}, nil
}

func customerOut(c *mapfront.CustomerView) *mapfrontv1.Customer {
	out := &mapfrontv1.Customer{MobileNum: c.Mobile, IdNumberMasked: c.IDNumberMasked, PasswordSet: c.PasswordSet,
		PasswordLocked: c.Locked, PasswordFailures: int32(c.Failures)}
	for _, a := range c.Accounts {
		v := &mapfrontv1.Account{AccountId: a.ID, Kind: a.Kind, ProductId: a.ProductID, Status: accountStatus(a.Status), Balance: a.Balance}
		if a.ActivatedAt != nil {
			v.ActivatedAt = a.ActivatedAt.Format(time.RFC3339)
		}
		out.Accounts = append(out.Accounts, v)
	}
	return out
}

// CreateCustomer implements the RPC of the same name.
func (s *AdminServer) CreateCustomer(ctx context.Context, in *mapfrontv1.CreateCustomerRequest) (*mapfrontv1.CreateCustomerResponse, error) {
	c, err := s.Store.CreateCustomer(ctx, in.MobileNum, in.IdNumber)
	if err != nil {
		return nil, s.fail(ctx, "CreateCustomer", err)
	}
	return &mapfrontv1.CreateCustomerResponse{Customer: customerOut(c)}, nil
}

// GetCustomer implements the RPC of the same name.
func (s *AdminServer) GetCustomer(ctx context.Context, in *mapfrontv1.GetCustomerRequest) (*mapfrontv1.GetCustomerResponse, error) {
	c, err := s.Store.GetCustomer(ctx, in.MobileNum)
	if err != nil {
		return nil, s.fail(ctx, "GetCustomer", err)
	}
	return &mapfrontv1.GetCustomerResponse{Customer: customerOut(c)}, nil
}

// SetPaymentPassword implements the RPC of the same name.
func (s *AdminServer) SetPaymentPassword(ctx context.Context, in *mapfrontv1.SetPaymentPasswordRequest) (*mapfrontv1.SetPaymentPasswordResponse, error) {
	if err := s.Store.SetPaymentPassword(ctx, in.MobileNum, in.Password); err != nil {
		return nil, s.fail(ctx, "SetPaymentPassword", err)
	}
	return &mapfrontv1.SetPaymentPasswordResponse{}, nil
}

// ResetPaymentPassword implements the RPC of the same name.
func (s *AdminServer) ResetPaymentPassword(ctx context.Context, in *mapfrontv1.ResetPaymentPasswordRequest) (*mapfrontv1.ResetPaymentPasswordResponse, error) {
	if err := s.Store.ResetPaymentPassword(ctx, in.MobileNum); err != nil {
		return nil, s.fail(ctx, "ResetPaymentPassword", err)
	}
	return &mapfrontv1.ResetPaymentPasswordResponse{}, nil
}

// LiftTerminalSuspension implements the RPC of the same name (SPEC section 7).
func (s *AdminServer) LiftTerminalSuspension(ctx context.Context, in *mapfrontv1.LiftTerminalSuspensionRequest) (*mapfrontv1.LiftTerminalSuspensionResponse, error) {
	was, err := s.Store.LiftTerminalSuspension(ctx, in.TerminalId)
	if err != nil {
		return nil, s.fail(ctx, "LiftTerminalSuspension", err)
	}
	return &mapfrontv1.LiftTerminalSuspensionResponse{WasSuspended: was}, nil
}

// UnlockPaymentPassword implements the RPC of the same name.
func (s *AdminServer) UnlockPaymentPassword(ctx context.Context, in *mapfrontv1.UnlockPaymentPasswordRequest) (*mapfrontv1.UnlockPaymentPasswordResponse, error) {
	if err := s.Store.UnlockPaymentPassword(ctx, in.MobileNum); err != nil {
		return nil, s.fail(ctx, "UnlockPaymentPassword", err)
	}
	return &mapfrontv1.UnlockPaymentPasswordResponse{}, nil
}

// TopUpCash implements the RPC of the same name.
func (s *AdminServer) TopUpCash(ctx context.Context, in *mapfrontv1.TopUpCashRequest) (*mapfrontv1.TopUpCashResponse, error) {
	account, balance, p, err := s.Store.SubmitTopUp(ctx, in.MobileNum, in.Amount, in.Reference)
	if err != nil {
		return nil, s.fail(ctx, "TopUpCash", err)
	}
	return &mapfrontv1.TopUpCashResponse{AccountId: account, Balance: balance, Proposal: ProposalOut(p, time.Now())}, nil
}

// FreezeAccount implements the RPC of the same name.
func (s *AdminServer) FreezeAccount(ctx context.Context, in *mapfrontv1.FreezeAccountRequest) (*mapfrontv1.FreezeAccountResponse, error) {
	if err := s.Store.SetAccountFrozen(ctx, in.AccountId, true); err != nil {
		return nil, s.fail(ctx, "FreezeAccount", err)
	}
	s.Log.InfoContext(ctx, "account frozen", "account", in.AccountId, "reason", in.Reason)
	return &mapfrontv1.FreezeAccountResponse{}, nil
}

// UnfreezeAccount implements the RPC of the same name.
func (s *AdminServer) UnfreezeAccount(ctx context.Context, in *mapfrontv1.UnfreezeAccountRequest) (*mapfrontv1.UnfreezeAccountResponse, error) {
	if err := s.Store.SetAccountFrozen(ctx, in.AccountId, false); err != nil {
		return nil, s.fail(ctx, "UnfreezeAccount", err)
	}
	return &mapfrontv1.UnfreezeAccountResponse{}, nil
}

// GetOrder implements the RPC of the same name.
func (s *AdminServer) GetOrder(ctx context.Context, in *mapfrontv1.GetOrderRequest) (*mapfrontv1.GetOrderResponse, error) {
	v, err := s.Store.GetOrder(ctx, in.OrderId)
	if err != nil {
		return nil, s.fail(ctx, "GetOrder", err)
	}
	o := &mapfrontv1.Order{OrderId: v.OrderID, Kind: v.Kind, Status: word[mapfrontv1.OrderStatus](v.Status), AccountId: v.AccountID, MobileNum: v.Mobile,
		ProductId: v.ProductID, Amount: v.Amount, Paid: v.Paid, SellerId: v.SellerID, StoreId: v.StoreID,
		TerminalId: v.TerminalID, BatchNo: v.BatchNo, TerminalOrderId: v.TermOrderID,
		BusinessDate: mapfront.DateString(v.BusinessDate), CreatedAt: v.CreatedAt.Format(time.RFC3339), OriginalOrderId: v.OriginalOrderID}
	for _, p := range v.Payments {
		o.Payments = append(o.Payments, &mapfrontv1.Payment{TerminalId: p.TerminalID, BatchNo: p.BatchNo,
			TerminalOrderId: p.TerminalOrderID, PaySum: p.PaySum, Status: word[mapfrontv1.CardPaymentStatus](p.Status),
			BusinessDate: mapfront.DateString(p.BusinessDate), Settled: p.Settled})
	}
	return &mapfrontv1.GetOrderResponse{Order: o}, nil
}

// ListStatement implements the RPC of the same name.
func (s *AdminServer) ListStatement(ctx context.Context, in *mapfrontv1.ListStatementRequest) (*mapfrontv1.ListStatementResponse, error) {
	balance, lines, err := s.Store.ListStatement(ctx, in.AccountId, int(in.Limit))
	if err != nil {
		return nil, s.fail(ctx, "ListStatement", err)
	}
	out := &mapfrontv1.ListStatementResponse{Balance: balance}
	for _, l := range lines {
		out.Lines = append(out.Lines, &mapfrontv1.StatementLine{TxnId: l.TxnID, Kind: l.Kind, OrderId: l.OrderID,
			Amount: l.Amount, CreatedAt: l.CreatedAt.Format(time.RFC3339)})
	}
	return out, nil
}

// VerifyLedger implements the RPC of the same name.
func (s *AdminServer) VerifyLedger(ctx context.Context, _ *mapfrontv1.VerifyLedgerRequest) (*mapfrontv1.VerifyLedgerResponse, error) {
	r, err := s.Store.VerifyLedger(ctx)
	if err != nil {
		return nil, s.fail(ctx, "VerifyLedger", err)
	}
	return &mapfrontv1.VerifyLedgerResponse{Ok: r.OK, Transactions: r.Transactions, Postings: r.Postings,
		Accounts: r.Accounts, Unbalanced: r.Unbalanced, Mismatched: r.Mismatched, Negative: r.Negative}, nil
}
