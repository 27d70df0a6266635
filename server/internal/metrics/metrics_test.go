package metrics

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// Requests are counted by their partner errcode (from the ErrorDetail), by
// gRPC code when there is none, and legacy answers by bounded path names.
func TestCountsByErrcode(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none") // never connects: no MinConns
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m := New(pool)
	info := &grpc.UnaryServerInfo{FullMethod: "/mapfront.v1.OfflineService/Pay"}
	declined, _ := status.New(codes.FailedPrecondition, "余额不足").WithDetails(&mapfrontv1.ErrorDetail{Errcode: 10009})
	for _, err := range []error{nil, declined.Err(), status.Error(codes.Unavailable, "down")} {
		_, _ = m.Unary(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, err })
	}
	m.ObserveLegacy("/front/offline/pay", 0, time.Millisecond)
	m.ObserveLegacy("/wp-admin", 10001, time.Millisecond)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`mapfront_grpc_requests_total{errcode="0",method="/mapfront.v1.OfflineService/Pay"} 1`,
		`mapfront_grpc_requests_total{errcode="10009",method="/mapfront.v1.OfflineService/Pay"} 1`,
		`mapfront_grpc_requests_total{errcode="Unavailable",method="/mapfront.v1.OfflineService/Pay"} 1`,
		`mapfront_grpc_requests_total{errcode="0",method="/legacy/pay"} 1`,
		`mapfront_grpc_requests_total{errcode="10001",method="/legacy/other"} 1`,
		`mapfront_db_pool_max_connections`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s", want)
		}
	}
}
