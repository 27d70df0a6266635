package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/test/bufconn"

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
	unary := []grpc.UnaryServerInterceptor{
		m.Unary,
		az.Unary,
		grpcapi.Recover(log),
	}
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

// inProcessBuffer is the in-memory connection's buffer in each direction:
// a legacy request or answer is a few KiB, so 1 MiB never stalls a burst.
const inProcessBuffer = 1 << 20

// serveInProcess serves srv on an in-memory listener and returns a client
// connection to it: single-binary mode's path from the legacy JSON handler to
// the gRPC server. It is a real gRPC connection (HTTP/2 framing over an
// in-memory pipe, no socket), so every request passes through the interceptor
// chain of serverOptions exactly as a request of the gateway program does;
// that costs a protobuf encoding each way, which the split deployment pays
// too. Serve's result is sent on errc. Closing the connection and stopping
// srv (which closes the listener) are the caller's.
//
// The connection is plaintext unless opts say otherwise: opts come after the
// defaults and win, so that when the server requires TLS with client
// certificates (issue 9) the caller passes the credentials of the identity
// the in-process legacy handler calls as.
func serveInProcess(srv *grpc.Server, maxMessageBytes int, errc chan<- error, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	lis := bufconn.Listen(inProcessBuffer)
	go func() { errc <- srv.Serve(lis) }()
	// "passthrough" hands the target to the dialer unresolved; the name is
	// only what logs and errors show.
	conn, err := grpc.NewClient("passthrough:///in-process", append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageBytes),
			grpc.MaxCallSendMsgSize(maxMessageBytes),
		),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("in-process gRPC connection: %w", err)
	}
	return conn, nil
}
