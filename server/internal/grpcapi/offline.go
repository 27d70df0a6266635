package grpcapi

import (
	"context"
	"log/slog"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/server/internal/mapfront"
)

// Offline is what the OfflineService needs of the application service
// (mapfront.Service). Each method returns *mapfront.Error for business
// outcomes (errcodes of SPEC section 3; each method's are listed on
// mapfront.Service) and other errors only for internal failures.
type Offline interface {
	OpenCard(ctx context.Context, r *mapfront.OpenCardRequest) (*mapfront.CardOrderAnswer, error)
	RepealCard(ctx context.Context, r *mapfront.RepealCardRequest) (*mapfront.CardOrderAnswer, error)
	Pay(ctx context.Context, r *mapfront.PayRequest) (*mapfront.PaymentAnswer, error)
	CancelPay(ctx context.Context, r *mapfront.CancelPayRequest) (*mapfront.CancelAnswer, error)
	UndoPay(ctx context.Context, r *mapfront.UndoPayRequest) (*mapfront.PaymentAnswer, error)
	GetAccountInfo(ctx context.Context, r *mapfront.AccountQuery) (*mapfront.AccountInfo, error)
	DownloadProduct(ctx context.Context, r *mapfront.DownloadProductRequest) ([]mapfront.Product, error)
}

// OfflineServer implements mapfrontv1.OfflineServiceServer over Offline.
type OfflineServer struct {
	mapfrontv1.UnimplementedOfflineServiceServer
	Store Offline
	Log   *slog.Logger
}

// OpenCard implements the RPC of the same name.
func (s *OfflineServer) OpenCard(ctx context.Context, in *mapfrontv1.OpenCardRequest) (*mapfrontv1.OpenCardResponse, error) {
	r := &mapfront.OpenCardRequest{
		Origin:  mapfront.Origin{SellerID: in.SellerId, StoreID: in.StoreId, TerminalID: in.TerminalId, OperatorID: in.OperatorId},
		BatchNo: in.BatchNo, TerminalOrderID: in.TerminalOrderId,
		IDNumber: in.IdNumber, Mobile: in.MobileNum, Referrer: in.Referrer, ProductID: in.ProductId,
		PaySum: in.GetPaySum(), HasPaySum: in.PaySum != nil,
	}
	a, err := s.Store.OpenCard(ctx, r)
	if err != nil {
		return nil, errorStatus(ctx, s.Log, "OpenCard", err)
	}
	return &mapfrontv1.OpenCardResponse{Order: cardOrder(a)}, nil
}

// RepealCard implements the RPC of the same name.
func (s *OfflineServer) RepealCard(ctx context.Context, in *mapfrontv1.RepealCardRequest) (*mapfrontv1.RepealCardResponse, error) {
	r := &mapfront.RepealCardRequest{
		Origin:  mapfront.Origin{SellerID: in.SellerId, StoreID: in.StoreId, TerminalID: in.TerminalId, OperatorID: in.OperatorId},
		BatchNo: in.BatchNo, TerminalOrderID: in.TerminalOrderId,
	}
	a, err := s.Store.RepealCard(ctx, r)
	if err != nil {
		return nil, errorStatus(ctx, s.Log, "RepealCard", err)
	}
	return &mapfrontv1.RepealCardResponse{Order: cardOrder(a)}, nil
}

func cardOrder(a *mapfront.CardOrderAnswer) *mapfrontv1.CardOrder {
	return &mapfrontv1.CardOrder{
		OrderId: a.OrderID, MobileNum: a.Mobile, SellerId: a.SellerID, StoreId: a.StoreID,
		TerminalId: a.TerminalID, OperatorId: a.OperatorID, BatchNo: a.BatchNo,
		TerminalOrderId: a.TerminalOrderID, Remark: a.Remark,
	}
}

// Pay implements the RPC of the same name.
func (s *OfflineServer) Pay(ctx context.Context, in *mapfrontv1.PayRequest) (*mapfrontv1.PayResponse, error) {
	o := in.GetOrder()
	if o == nil {
		return nil, errorStatus(ctx, s.Log, "Pay", mapfront.Missing("order"))
	}
	if o.Sum == nil {
		return nil, errorStatus(ctx, s.Log, "Pay", mapfront.Missing("sum"))
	}
	r := &mapfront.PayRequest{
		Origin:  mapfront.Origin{SellerID: o.SellerId, StoreID: o.StoreId, TerminalID: o.TerminalId, OperatorID: o.OperatorId},
		BatchNo: o.BatchNo, TerminalOrderID: o.TerminalOrderId,
		ConsumerID: o.ConsumerId, PINBlock: o.PaymentCodeDes, Sum: o.GetSum(),
		ProductName: o.ProductName, ProductPrice: o.ProductPrice, ProductQuantity: o.ProductQuantity, Remark: o.Remark,
	}
	a, err := s.Store.Pay(ctx, r)
	if err != nil {
		return nil, errorStatus(ctx, s.Log, "Pay", err)
	}
	return &mapfrontv1.PayResponse{Order: paymentOrder(a)}, nil
}

// CancelPay implements the RPC of the same name.
func (s *OfflineServer) CancelPay(ctx context.Context, in *mapfrontv1.CancelPayRequest) (*mapfrontv1.CancelPayResponse, error) {
	o := in.GetOrder()
	if o == nil {
		return nil, errorStatus(ctx, s.Log, "CancelPay", mapfront.Missing("order"))
	}
	r := &mapfront.CancelPayRequest{
		Origin:  mapfront.Origin{SellerID: o.SellerId, StoreID: o.StoreId, TerminalID: o.TerminalId, OperatorID: o.OperatorId},
		BatchNo: o.BatchNo, TerminalOrderID: o.TerminalOrderId, OrderID: o.OrderId, Remark: o.Remark,
	}
	a, err := s.Store.CancelPay(ctx, r)
	if err != nil {
		return nil, errorStatus(ctx, s.Log, "CancelPay", err)
	}
	return &mapfrontv1.CancelPayResponse{Order: &mapfrontv1.CancelOrder{
		OrderId: a.OrderID, PayTime: a.PayTime, SellerId: a.SellerID, StoreId: a.StoreID,
		TerminalId: a.TerminalID, OperatorId: a.OperatorID, BatchNo: a.BatchNo,
		TerminalOrderId: a.TerminalOrderID, Remark: a.Remark, Status: paymentStatus(a.Status),
		AccountId: optString(a.AccountID), Balance: a.Balance,
	}}, nil
}

// UndoPay implements the RPC of the same name.
func (s *OfflineServer) UndoPay(ctx context.Context, in *mapfrontv1.UndoPayRequest) (*mapfrontv1.UndoPayResponse, error) {
	o := in.GetOrder()
	if o == nil {
		return nil, errorStatus(ctx, s.Log, "UndoPay", mapfront.Missing("order"))
	}
	r := &mapfront.UndoPayRequest{
		Origin:  mapfront.Origin{SellerID: o.SellerId, StoreID: o.StoreId, TerminalID: o.TerminalId, OperatorID: o.OperatorId},
		BatchNo: o.BatchNo, TerminalOrderID: o.TerminalOrderId, Remark: o.Remark,
	}
	a, err := s.Store.UndoPay(ctx, r)
	if err != nil {
		return nil, errorStatus(ctx, s.Log, "UndoPay", err)
	}
	return &mapfrontv1.UndoPayResponse{Order: paymentOrder(a)}, nil
}

func paymentOrder(a *mapfront.PaymentAnswer) *mapfrontv1.PaymentOrder {
	return &mapfrontv1.PaymentOrder{
		OrderId: a.OrderID, ConsumerId: a.ConsumerID, Sum: a.Sum, PayTime: a.PayTime,
		SellerId: a.SellerID, StoreId: a.StoreID, TerminalId: a.TerminalID, OperatorId: a.OperatorID,
		BatchNo: a.BatchNo, TerminalOrderId: a.TerminalOrderID, ProductName: a.ProductName,
		ProductPrice: a.ProductPrice, ProductQuantity: a.ProductQuantity, Remark: a.Remark, Status: paymentStatus(a.Status),
		AccountId: optString(a.AccountID), Balance: a.Balance,
	}
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// GetAccountInfo implements the RPC of the same name.
func (s *OfflineServer) GetAccountInfo(ctx context.Context, in *mapfrontv1.GetAccountInfoRequest) (*mapfrontv1.GetAccountInfoResponse, error) {
	q := in.GetQuery()
	if q == nil {
		return nil, errorStatus(ctx, s.Log, "GetAccountInfo", mapfront.Missing("query"))
	}
	r := &mapfront.AccountQuery{
		Origin:  mapfront.Origin{SellerID: q.SellerId, StoreID: q.StoreId, TerminalID: q.TerminalId, OperatorID: q.OperatorId},
		BatchNo: q.BatchNo, TerminalOrderID: q.TerminalOrderId, ConsumerID: q.ConsumerId, PINBlock: q.PaymentCodeDes, Remark: q.Remark,
	}
	a, err := s.Store.GetAccountInfo(ctx, r)
	if err != nil {
		return nil, errorStatus(ctx, s.Log, "GetAccountInfo", err)
	}
	return &mapfrontv1.GetAccountInfoResponse{Card: &mapfrontv1.Card{
		AccountId: a.AccountID, Balance: a.Balance, Status: accountStatus(a.Status), Remark: a.Remark}}, nil
}

// DownloadProduct implements the RPC of the same name.
func (s *OfflineServer) DownloadProduct(ctx context.Context, in *mapfrontv1.DownloadProductRequest) (*mapfrontv1.DownloadProductResponse, error) {
	r := &mapfront.DownloadProductRequest{
		Origin:  mapfront.Origin{SellerID: in.SellerId, StoreID: in.StoreId, TerminalID: in.TerminalId, OperatorID: in.OperatorId},
		BatchNo: in.BatchNo, TerminalOrderID: in.TerminalOrderId,
	}
	ps, err := s.Store.DownloadProduct(ctx, r)
	if err != nil {
		return nil, errorStatus(ctx, s.Log, "DownloadProduct", err)
	}
	out := &mapfrontv1.DownloadProductResponse{Product: make([]*mapfrontv1.ProductItem, 0, len(ps))}
	for _, p := range ps {
		out.Product = append(out.Product, &mapfrontv1.ProductItem{
			ProductId: p.ID, ProductName: p.Name, ProductShortName: p.ShortName, ProductPrice: p.Price, Remark: p.Remark})
	}
	return out, nil
}
