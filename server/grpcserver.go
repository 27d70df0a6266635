package main

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/server/internal/authz"
	"mapfront/server/internal/config"
	"mapfront/server/internal/grpcapi"
	"mapfront/server/internal/metrics"
)

// serverOptions is the one place where the gRPC server's interceptor chain
// and limits are built. Every caller goes through this chain, whether it
// comes over TCP (the gateway program, the settlement command, internal
// systems) or over the in-memory connection of single-binary mode, so a rule
// added here (authorization, issue 9) holds in both deployments.
//
// Order matters: metrics is outermost so that it also counts what the inner
// interceptors refuse or recover; authorization (server/internal/authz) comes
// next, so nothing unauthorized reaches a handler; then the refusal of
// AdminService requests holding U+0000 (grpcapi.RefuseNUL: 10001 naming the
// field, a refused change recorded through rec, which needs the caller that
// authorization put in the context); recovery is innermost, around the handler,
// so that a panic becomes a status (errcode 10000) that metrics then sees.
// AdminService has no stream method, so the stream chain has no RefuseNUL
// (SettlementService's SubmitBatch stores a bad line's NUL as U+FFFD).
func serverOptions(cfg *config.Config, log *slog.Logger, m *metrics.Metrics, az *authz.Authorizer, rec grpcapi.RefusalRecorder) []grpc.ServerOption {
	unary := unaryInterceptors(log, m, az, rec)
	stream := []grpc.StreamServerInterceptor{
		m.Stream,
		az.Stream,
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute}),
	}
}

// unaryInterceptors is the unary chain of serverOptions, outermost first;
// the single-binary mode's in-process calls run the same (inProcessOffline).
func unaryInterceptors(log *slog.Logger, m *metrics.Metrics, az *authz.Authorizer, rec grpcapi.RefusalRecorder) []grpc.UnaryServerInterceptor {
	return []grpc.UnaryServerInterceptor{
		m.Unary,
		az.Unary,
		grpcapi.RefuseNUL(log, rec, authz.Audited),
		grpcapi.Recover(log),
	}
}

// inProcessOffline is the single-binary mode's OfflineService client: each
// call runs the service implementation in this process through the server's
// unary interceptor chain (metrics, authorization, recovery), under the
// method's full gRPC name and as peer (authz.InProcessPeer: the identity of
// the legacy client certificate), so a request is counted, authorized and
// recovered exactly as the same call of the gateway program over mTLS is.
// What it leaves out is the connection: no TLS, no HTTP/2 framing, no
// protobuf encoding, no transport goroutines. The request and answer
// messages are shared with the service, which neither keeps nor changes
// them after it returns.
//
// A failed call has always reached the chain, so the legacy edge never
// reads it as "not sent" (10018 stays the server's own verdict).
type inProcessOffline struct {
	peer *peer.Peer
	// One chained handler per method, built once (newInProcessOffline):
	// a call allocates only its context with the peer, not the chain's
	// closures and server info.
	openCard, repealCard, pay, cancelPay, undoPay, getAccountInfo, downloadProduct grpc.UnaryHandler
}

var _ mapfrontv1.OfflineServiceClient = (*inProcessOffline)(nil)

// newInProcessOffline returns the in-process client of srv through the
// interceptors (outermost first), calling as caller.
func newInProcessOffline(srv mapfrontv1.OfflineServiceServer, interceptors []grpc.UnaryServerInterceptor, caller *peer.Peer) *inProcessOffline {
	return &inProcessOffline{
		peer:            caller,
		openCard:        chained(srv, interceptors, mapfrontv1.OfflineService_OpenCard_FullMethodName, srv.OpenCard),
		repealCard:      chained(srv, interceptors, mapfrontv1.OfflineService_RepealCard_FullMethodName, srv.RepealCard),
		pay:             chained(srv, interceptors, mapfrontv1.OfflineService_Pay_FullMethodName, srv.Pay),
		cancelPay:       chained(srv, interceptors, mapfrontv1.OfflineService_CancelPay_FullMethodName, srv.CancelPay),
		undoPay:         chained(srv, interceptors, mapfrontv1.OfflineService_UndoPay_FullMethodName, srv.UndoPay),
		getAccountInfo:  chained(srv, interceptors, mapfrontv1.OfflineService_GetAccountInfo_FullMethodName, srv.GetAccountInfo),
		downloadProduct: chained(srv, interceptors, mapfrontv1.OfflineService_DownloadProduct_FullMethodName, srv.DownloadProduct),
	}
}

// chained is call, as the method's full gRPC name, wrapped in the
// interceptors, the first outermost, as grpc.ChainUnaryInterceptor chains
// them for the server. The server info is the method's one, shared by its
// calls (the interceptors only read it).
func chained[Req, Resp any](srv any, interceptors []grpc.UnaryServerInterceptor, method string, call func(context.Context, Req) (Resp, error)) grpc.UnaryHandler {
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: method}
	h := func(ctx context.Context, req any) (any, error) { return call(ctx, req.(Req)) }
	for i := len(interceptors) - 1; i >= 0; i-- {
		next, icpt := h, interceptors[i]
		h = func(ctx context.Context, req any) (any, error) { return icpt(ctx, req, info, next) }
	}
	return h
}

// invoke runs h, a chained handler of c, with in, as c's peer.
func invoke[Resp any](ctx context.Context, c *inProcessOffline, h grpc.UnaryHandler, in any) (Resp, error) {
	out, err := h(peer.NewContext(ctx, c.peer), in)
	if err != nil {
		var zero Resp
		return zero, err
	}
	return out.(Resp), nil
}

func (c *inProcessOffline) OpenCard(ctx context.Context, in *mapfrontv1.OpenCardRequest, _ ...grpc.CallOption) (*mapfrontv1.OpenCardResponse, error) {
	return invoke[*mapfrontv1.OpenCardResponse](ctx, c, c.openCard, in)
}

func (c *inProcessOffline) RepealCard(ctx context.Context, in *mapfrontv1.RepealCardRequest, _ ...grpc.CallOption) (*mapfrontv1.RepealCardResponse, error) {
	return invoke[*mapfrontv1.RepealCardResponse](ctx, c, c.repealCard, in)
}

func (c *inProcessOffline) Pay(ctx context.Context, in *mapfrontv1.PayRequest, _ ...grpc.CallOption) (*mapfrontv1.PayResponse, error) {
	return invoke[*mapfrontv1.PayResponse](ctx, c, c.pay, in)
}

func (c *inProcessOffline) CancelPay(ctx context.Context, in *mapfrontv1.CancelPayRequest, _ ...grpc.CallOption) (*mapfrontv1.CancelPayResponse, error) {
	return invoke[*mapfrontv1.CancelPayResponse](ctx, c, c.cancelPay, in)
}

func (c *inProcessOffline) UndoPay(ctx context.Context, in *mapfrontv1.UndoPayRequest, _ ...grpc.CallOption) (*mapfrontv1.UndoPayResponse, error) {
	return invoke[*mapfrontv1.UndoPayResponse](ctx, c, c.undoPay, in)
}

func (c *inProcessOffline) GetAccountInfo(ctx context.Context, in *mapfrontv1.GetAccountInfoRequest, _ ...grpc.CallOption) (*mapfrontv1.GetAccountInfoResponse, error) {
	return invoke[*mapfrontv1.GetAccountInfoResponse](ctx, c, c.getAccountInfo, in)
}

func (c *inProcessOffline) DownloadProduct(ctx context.Context, in *mapfrontv1.DownloadProductRequest, _ ...grpc.CallOption) (*mapfrontv1.DownloadProductResponse, error) {
	return invoke[*mapfrontv1.DownloadProductResponse](ctx, c, c.downloadProduct, in)
}
