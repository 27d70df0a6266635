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
// next, so nothing unauthorized reaches a handler; recovery is innermost, around the handler,
// so that a panic becomes a status (errcode 10000) that metrics then sees.
func serverOptions(cfg *config.Config, log *slog.Logger, m *metrics.Metrics, az *authz.Authorizer) []grpc.ServerOption {
	unary := unaryInterceptors(log, m, az)
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
func unaryInterceptors(log *slog.Logger, m *metrics.Metrics, az *authz.Authorizer) []grpc.UnaryServerInterceptor {
	return []grpc.UnaryServerInterceptor{
		m.Unary,
		az.Unary,
		grpcapi.Recover(log),
	}
}

// chainUnary composes interceptors into one, the first outermost, as
// grpc.ChainUnaryInterceptor does for the server.
func chainUnary(interceptors []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return callChain(interceptors, ctx, req, info, h)
	}
}

func callChain(interceptors []grpc.UnaryServerInterceptor, ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if len(interceptors) == 0 {
		return h(ctx, req)
	}
	return interceptors[0](ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return callChain(interceptors[1:], ctx, req, info, h)
	})
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
	srv   mapfrontv1.OfflineServiceServer
	chain grpc.UnaryServerInterceptor
	peer  *peer.Peer
}

var _ mapfrontv1.OfflineServiceClient = (*inProcessOffline)(nil)

// invoke runs call through c's chain as method.
func invoke[Req, Resp any](ctx context.Context, c *inProcessOffline, method string, in Req, call func(context.Context, Req) (Resp, error)) (Resp, error) {
	info := &grpc.UnaryServerInfo{Server: c.srv, FullMethod: method}
	out, err := c.chain(peer.NewContext(ctx, c.peer), in, info, func(ctx context.Context, req any) (any, error) {
		return call(ctx, req.(Req))
	})
	if err != nil {
		var zero Resp
		return zero, err
	}
	return out.(Resp), nil
}

func (c *inProcessOffline) OpenCard(ctx context.Context, in *mapfrontv1.OpenCardRequest, _ ...grpc.CallOption) (*mapfrontv1.OpenCardResponse, error) {
	return invoke(ctx, c, mapfrontv1.OfflineService_OpenCard_FullMethodName, in, c.srv.OpenCard)
}

func (c *inProcessOffline) RepealCard(ctx context.Context, in *mapfrontv1.RepealCardRequest, _ ...grpc.CallOption) (*mapfrontv1.RepealCardResponse, error) {
	return invoke(ctx, c, mapfrontv1.OfflineService_RepealCard_FullMethodName, in, c.srv.RepealCard)
}

func (c *inProcessOffline) Pay(ctx context.Context, in *mapfrontv1.PayRequest, _ ...grpc.CallOption) (*mapfrontv1.PayResponse, error) {
	return invoke(ctx, c, mapfrontv1.OfflineService_Pay_FullMethodName, in, c.srv.Pay)
}

func (c *inProcessOffline) CancelPay(ctx context.Context, in *mapfrontv1.CancelPayRequest, _ ...grpc.CallOption) (*mapfrontv1.CancelPayResponse, error) {
	return invoke(ctx, c, mapfrontv1.OfflineService_CancelPay_FullMethodName, in, c.srv.CancelPay)
}

func (c *inProcessOffline) UndoPay(ctx context.Context, in *mapfrontv1.UndoPayRequest, _ ...grpc.CallOption) (*mapfrontv1.UndoPayResponse, error) {
	return invoke(ctx, c, mapfrontv1.OfflineService_UndoPay_FullMethodName, in, c.srv.UndoPay)
}

func (c *inProcessOffline) GetAccountInfo(ctx context.Context, in *mapfrontv1.GetAccountInfoRequest, _ ...grpc.CallOption) (*mapfrontv1.GetAccountInfoResponse, error) {
	return invoke(ctx, c, mapfrontv1.OfflineService_GetAccountInfo_FullMethodName, in, c.srv.GetAccountInfo)
}

func (c *inProcessOffline) DownloadProduct(ctx context.Context, in *mapfrontv1.DownloadProductRequest, _ ...grpc.CallOption) (*mapfrontv1.DownloadProductResponse, error) {
	return invoke(ctx, c, mapfrontv1.OfflineService_DownloadProduct_FullMethodName, in, c.srv.DownloadProduct)
}
