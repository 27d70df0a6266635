// Package grpcapi is the gRPC edge of the server: it translates generated
// protobuf messages to the domain types of package mapfront and back, and
// domain errors to gRPC status with an ErrorDetail carrying the errcode.
package grpcapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/server/internal/mapfront"
)

// grpcCodes is the one table from errcode to gRPC status code (SPEC section 3).
var grpcCodes = map[mapfront.Code]codes.Code{
	mapfront.CodeInternal:       codes.Internal,
	mapfront.CodeMalformed:      codes.InvalidArgument,
	mapfront.CodeTerminal:       codes.PermissionDenied,
	mapfront.CodeKeyReused:      codes.AlreadyExists,
	mapfront.CodeProduct:        codes.NotFound,
	mapfront.CodeNotFound:       codes.NotFound,
	mapfront.CodeAccountState:   codes.FailedPrecondition,
	mapfront.CodeWrongPassword:  codes.Unauthenticated,
	mapfront.CodePasswordLocked: codes.PermissionDenied,
	mapfront.CodeInsufficient:   codes.FailedPrecondition,
	mapfront.CodeNoOriginal:     codes.NotFound,
	mapfront.CodeAlreadyUndone:  codes.FailedPrecondition,
	mapfront.CodeCancelDenied:   codes.FailedPrecondition,
	mapfront.CodeRepealDenied:   codes.FailedPrecondition,
	mapfront.CodeNoPassword:     codes.FailedPrecondition,
	mapfront.CodeAmount:         codes.InvalidArgument,
	mapfront.CodeIdentity:       codes.InvalidArgument,
	mapfront.CodePINBlock:       codes.InvalidArgument,
	mapfront.CodeBusy:           codes.Unavailable,
}

// errorStatus turns err into the status the client sees. Domain errors keep
// their errcode and message; anything else is logged with a reference and
// answered as 10000 quoting only that reference.
func errorStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	var de *mapfront.Error
	if errors.As(err, &de) {
		if de.Code == mapfront.CodeBusy {
			log.WarnContext(ctx, "busy", "method", method, "err", err)
		}
		return detailed(grpcCodes[de.Code], &mapfrontv1.ErrorDetail{Errcode: int32(de.Code), Errmsg: de.Msg})
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		log.WarnContext(ctx, "request ended by its deadline", "method", method, "err", err)
		return status.FromContextError(err).Err()
	}
	ref := reference()
	log.ErrorContext(ctx, "internal error", "method", method, "ref", ref, "err", err)
	return detailed(codes.Internal, &mapfrontv1.ErrorDetail{
		Errcode: int32(mapfront.CodeInternal), Errmsg: "其它错误（参考号" + ref + "）", Reference: ref})
}

func detailed(c codes.Code, d *mapfrontv1.ErrorDetail) error {
	st, err := status.New(c, d.Errmsg).WithDetails(d)
	if err != nil {
		return status.Error(c, d.Errmsg)
	}
	return st.Err()
}

// reference is a short random id that ties an answer to its log line.
func reference() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Recover turns a panic in a unary handler into 10000 with a logged
// reference, so that one bad request cannot stop the server.
func Recover(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = errorStatus(ctx, log, info.FullMethod, fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
			}
		}()
		return h(ctx, req)
	}
}
