package grpcapi

import (
	"context"
	"time"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/server/internal/mapfront"
)

// Lookups are the reads the operations console searches with (SPEC section 7).
type Lookups interface {
	// FindCustomersByID returns the customers of a whole ID number (masked
	// in the views): 10001.
	FindCustomersByID(ctx context.Context, idNumber string) ([]*mapfront.CustomerView, error)
	// TerminalKeyHistory returns everything stored under a terminal key:
	// 10001.
	TerminalKeyHistory(ctx context.Context, key mapfront.TerminalKey) ([]mapfront.KeyEvent, error)
}

// FindCustomerByID implements the RPC of the same name.
func (s *AdminServer) FindCustomerByID(ctx context.Context, in *mapfrontv1.FindCustomerByIDRequest) (*mapfrontv1.FindCustomerByIDResponse, error) {
	cs, err := s.Store.FindCustomersByID(ctx, in.IdNumber)
	if err != nil {
		return nil, s.fail(ctx, "FindCustomerByID", err)
	}
	out := &mapfrontv1.FindCustomerByIDResponse{}
	for _, c := range cs {
		out.Customers = append(out.Customers, customerOut(c))
	}
	return out, nil
}

// GetTerminalKeyHistory implements the RPC of the same name.
func (s *AdminServer) GetTerminalKeyHistory(ctx context.Context, in *mapfrontv1.GetTerminalKeyHistoryRequest) (*mapfrontv1.GetTerminalKeyHistoryResponse, error) {
	evs, err := s.Store.TerminalKeyHistory(ctx, mapfront.TerminalKey{TerminalID: in.TerminalId, BatchNo: in.BatchNo, TerminalOrderID: in.TerminalOrderId})
	if err != nil {
		return nil, s.fail(ctx, "GetTerminalKeyHistory", err)
	}
	out := &mapfrontv1.GetTerminalKeyHistoryResponse{}
	for _, e := range evs {
		out.Events = append(out.Events, &mapfrontv1.KeyEvent{Event: e.Event, Kind: e.Kind, OrderId: e.OrderID,
			OriginalOrderId: e.OriginalOrderID, Status: e.Status, Amount: e.Amount, Errcode: int32(e.Errcode), Errmsg: e.Errmsg,
			TerminalId: e.Key.TerminalID, BatchNo: e.Key.BatchNo, TerminalOrderId: e.Key.TerminalOrderID, At: e.At.Format(time.RFC3339)})
	}
	return out, nil
}
