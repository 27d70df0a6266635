package legacy

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// Reconnection of the gateway's gRPC client. grpc-go's default backoff grows
// to 120 s; during that wait every request is refused (10018) although the
// server may long be back. Bounded at 800 ms (plus 20 % jitter) a restarted
// server is used within a second.
const (
	reconnectBaseDelay = 100 * time.Millisecond
	reconnectMaxDelay  = 800 * time.Millisecond
	// reconnectTimeout bounds one connection attempt, so that a server host
	// that drops packets turns into "no connection" (10018) within seconds
	// rather than at each call's deadline.
	reconnectTimeout = 3 * time.Second
)

// ClientOptions are the dial options of a gRPC connection behind NewHandler:
// bounded reconnection, and the stats handler that tells the handler whether
// a failed call's request was ever handed to the transport (see outcome).
// Without them every failure without a server answer is 10000.
func ClientOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  reconnectBaseDelay,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   reconnectMaxDelay,
			},
			MinConnectTimeout: reconnectTimeout,
		}),
		grpc.WithStatsHandler(deliveryStats{}),
	}
}

// delivery records, for one legacy request, what grpc-go did with its call:
// begun is set when a call attempt started (after name resolution, before the
// connection is picked), sent when the request message was handed to a
// transport stream. grpc-go reports OutPayload only after the write into the
// stream succeeded, so "begun and never sent" proves that the server cannot
// have run the call: a unary handler needs the whole message.
type delivery struct {
	begun, sent atomic.Bool
}

// deliveryStats is the grpc stats.Handler that fills the delivery of the
// legacy request found in a call's context (its exchange). Calls without one
// (health checks) are not looked at.
type deliveryStats struct{}

func (deliveryStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (deliveryStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	ex, ok := ctx.Value(exchangeKey{}).(*exchange)
	if !ok {
		return
	}
	d := &ex.delivery
	switch s.(type) {
	case *stats.Begin:
		d.begun.Store(true)
	case *stats.OutPayload:
		d.sent.Store(true)
	}
}

func (deliveryStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (deliveryStats) HandleConn(context.Context, stats.ConnStats) {}

// verdict is the envelope's errcode and errmsg for a failed call; internal
// marks an unknown outcome, which is logged under a reference that errmsg
// quotes.
type verdict struct {
	errcode  int32
	errmsg   string
	internal bool
	notSent  bool // 10018 decided here: the call never reached a transport
}

// outcome is the one rule for a call that failed (SPEC section 3): 10018
// ("busy, the request had no effect") only when that is proven, and 10000
// whenever the request may have reached the server.
//
//   - The server answered with an ErrorDetail: its errcode and errmsg,
//     including the server's own 10018 (which the server gives only for a
//     transaction that cannot have committed).
//   - The call was begun and its request never handed to a transport (no
//     ready connection, a connection refused, a deadline that passed while
//     connecting): 10018, whatever the status code.
//   - Anything else (connection lost mid-call, deadline or cancellation after
//     sending, a status without detail, a client not instrumented with
//     ClientOptions): 10000. The POS then reverses, and pay_undo is safe
//     whether or not the pay went through (SPEC section 5).
func outcome(err error, d *delivery) verdict {
	st := status.Convert(err)
	for _, det := range st.Details() {
		if ed, ok := det.(*mapfrontv1.ErrorDetail); ok && ed.GetErrcode() != 0 {
			return verdict{errcode: ed.GetErrcode(), errmsg: detailMessage(ed)}
		}
	}
	if d != nil && d.begun.Load() && !d.sent.Load() {
		return verdict{errcode: codeBusy, errmsg: msgBusy, notSent: true}
	}
	return verdict{errcode: codeInternal, errmsg: msgInternal, internal: true}
}
