package load

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/mtls"
)

// Dial opens a gRPC connection to a loopback server, with mutual TLS from
// files (the server gives the certificate's identity its roles), or
// plaintext when devPlaintext (MAPFRONT_INSECURE_DEV_PLAINTEXT=1). One
// connection carries all workers' calls (HTTP/2 streams), as the gateway
// does.
func Dial(addr string, files mtls.Files, devPlaintext bool) (*grpc.ClientConn, error) {
	if err := CheckLoopbackAddr(addr); err != nil {
		return nil, err
	}
	creds, err := mtls.DialCredentials(addr, files, devPlaintext)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(addr, creds)
}

// GRPCClient drives OfflineService directly, without the gateway: the
// difference to HTTPClient is the gateway's cost.
type GRPCClient struct {
	conn *grpc.ClientConn
	svc  mapfrontv1.OfflineServiceClient
}

// NewGRPCClient targets addr (host:port, loopback only); files and
// devPlaintext as for Dial.
func NewGRPCClient(addr string, files mtls.Files, devPlaintext bool) (*GRPCClient, error) {
	conn, err := Dial(addr, files, devPlaintext)
	if err != nil {
		return nil, err
	}
	return &GRPCClient{conn: conn, svc: mapfrontv1.NewOfflineServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *GRPCClient) Close() error { return c.conn.Close() }

// Do calls the RPC behind t's legacy path.
func (c *GRPCClient) Do(ctx context.Context, t *Txn) Outcome {
	var err error
	var orderID string
	switch t.Op {
	case OpPay:
		var r *mapfrontv1.PayResponse
		r, err = c.svc.Pay(ctx, &mapfrontv1.PayRequest{Order: &mapfrontv1.PayOrderInput{
			ConsumerId: t.ConsumerID, PaymentCodeDes: t.PINBlock, Sum: &t.Sum,
			SellerId: t.SellerID, StoreId: t.StoreID, TerminalId: t.TerminalID, OperatorId: t.OperatorID,
			BatchNo: t.BatchNo, TerminalOrderId: t.TerminalOrderID,
			ProductName: benchProductName, ProductPrice: t.Sum, ProductQuantity: benchQuantity}})
		if err == nil {
			orderID = r.GetOrder().GetOrderId()
			if orderID == "" {
				return Outcome{Errcode: CodeBadAnswer, Errmsg: "pay approved without orderId"}
			}
		}
	case OpQuery:
		_, err = c.svc.GetAccountInfo(ctx, &mapfrontv1.GetAccountInfoRequest{Query: &mapfrontv1.AccountQuery{
			ConsumerId: t.ConsumerID, PaymentCodeDes: t.PINBlock,
			SellerId: t.SellerID, StoreId: t.StoreID, TerminalId: t.TerminalID, OperatorId: t.OperatorID,
			TerminalOrderId: t.TerminalOrderID, BatchNo: t.BatchNo}})
	case OpCancel:
		_, err = c.svc.CancelPay(ctx, &mapfrontv1.CancelPayRequest{Order: &mapfrontv1.CancelOrderInput{
			OrderId: t.OrderID, SellerId: t.SellerID, StoreId: t.StoreID, TerminalId: t.TerminalID,
			OperatorId: t.OperatorID, BatchNo: t.BatchNo, TerminalOrderId: t.TerminalOrderID}})
	case OpUndo:
		_, err = c.svc.UndoPay(ctx, &mapfrontv1.UndoPayRequest{Order: &mapfrontv1.UndoOrderInput{
			SellerId: t.SellerID, StoreId: t.StoreID, TerminalId: t.TerminalID, OperatorId: t.OperatorID,
			TerminalOrderId: t.TerminalOrderID, BatchNo: t.BatchNo}})
	default:
		return Outcome{Errcode: CodeBadAnswer, Errmsg: fmt.Sprintf("unknown op %v", t.Op)}
	}
	if err != nil {
		return statusOutcome(err)
	}
	return Outcome{OrderID: orderID}
}

// statusOutcome reads the errcode from the ErrorDetail of a status; a status
// without one is CodeNoDetail, a non-status error CodeTransport.
func statusOutcome(err error) Outcome {
	code, msg, ok := Errcode(err)
	if ok {
		return Outcome{Errcode: code, Errmsg: msg}
	}
	st, isStatus := status.FromError(err)
	if !isStatus {
		return Outcome{Errcode: CodeTransport, Errmsg: err.Error()}
	}
	// No answer from the server: the connection failed or the call timed out.
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return Outcome{Errcode: CodeTransport, Errmsg: st.Code().String() + ": " + st.Message()}
	}
	return Outcome{Errcode: CodeNoDetail, Errmsg: st.Code().String() + ": " + st.Message()}
}

// Errcode extracts the partner errcode and errmsg that the server puts in a
// status's ErrorDetail; ok is false when there is none.
func Errcode(err error) (code int, msg string, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus {
		return 0, "", false
	}
	for _, d := range st.Details() {
		if ed, isED := d.(*mapfrontv1.ErrorDetail); isED {
			return int(ed.Errcode), ed.Errmsg, true
		}
	}
	return 0, "", false
}
