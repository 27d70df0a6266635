package legacy

import (
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

func delivered(begun, sent bool) *delivery {
	d := &delivery{}
	d.begun.Store(begun)
	d.sent.Store(sent)
	return d
}

// TestOutcome is the table of SPEC section 3's rule for failed calls: 10018
// only when the request provably had no effect.
func TestOutcome(t *testing.T) {
	detail := func(code codes.Code, ed *mapfrontv1.ErrorDetail) error {
		st, err := status.New(code, "x").WithDetails(ed)
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	var (
		notBegun = delivered(false, false)
		notSent  = delivered(true, false)
		sent     = delivered(true, true)
	)
	tests := []struct {
		name     string
		err      error
		d        *delivery
		errcode  int32
		errmsg   string
		internal bool
	}{
		{"server decline", detail(codes.FailedPrecondition, &mapfrontv1.ErrorDetail{Errcode: 10009, Errmsg: "余额不足"}), sent, 10009, "余额不足", false},
		{"server busy", detail(codes.Unavailable, &mapfrontv1.ErrorDetail{Errcode: 10018, Errmsg: "系统繁忙"}), sent, 10018, "系统繁忙", false},
		{"server internal keeps its reference", detail(codes.Internal, &mapfrontv1.ErrorDetail{Errcode: 10000, Reference: "AB12"}), sent, 10000, "其它错误（参考号AB12）", false},
		{"detail wins over delivery", detail(codes.Unavailable, &mapfrontv1.ErrorDetail{Errcode: 10002, Errmsg: "终端未登记"}), notSent, 10002, "终端未登记", false},
		{"no ready connection", status.Error(codes.Unavailable, "connection refused"), notSent, 10018, msgBusy, false},
		{"deadline while connecting", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), notSent, 10018, msgBusy, false},
		{"canceled before sending", status.Error(codes.Canceled, "context canceled"), notSent, 10018, msgBusy, false},
		{"connection lost mid-call", status.Error(codes.Unavailable, "error reading from server: EOF"), sent, 10000, msgInternal, true},
		{"deadline after sending", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), sent, 10000, msgInternal, true},
		{"canceled after sending", status.Error(codes.Canceled, "context canceled"), sent, 10000, msgInternal, true},
		{"unknown status", status.Error(codes.Unknown, "?"), sent, 10000, msgInternal, true},
		{"status without detail", status.Error(codes.Internal, "pq: no"), sent, 10000, msgInternal, true},
		{"never begun: client not instrumented", status.Error(codes.Unavailable, "connection refused"), notBegun, 10000, msgInternal, true},
		{"no delivery record", status.Error(codes.Unavailable, "connection refused"), nil, 10000, msgInternal, true},
		{"not a status", errors.New("boom"), sent, 10000, msgInternal, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := outcome(tt.err, tt.d)
			// notSent marks the 10018 decided at the edge, not the server's.
			wantNotSent := tt.errcode == codeBusy && len(status.Convert(tt.err).Details()) == 0
			if v.errcode != tt.errcode || v.errmsg != tt.errmsg || v.internal != tt.internal || v.notSent != wantNotSent {
				t.Errorf("outcome = %+v, want errcode %d errmsg %q internal %v", v, tt.errcode, tt.errmsg, tt.internal)
			}
		})
	}
}

// TestConnectionLostMidCall: the server dies while the call is in flight, so
// the pay may have gone through: 10000 with a reference, never 10018.
func TestConnectionLostMidCall(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{delay: 5 * time.Second}
	srv := grpc.NewServer()
	mapfrontv1.RegisterOfflineServiceServer(srv, b)
	go func() { _ = srv.Serve(lis) }()
	h := handlerFor(t, lis.Addr().String(), Options{})
	go func() {
		for {
			if _, calls := b.last(); calls > 0 {
				srv.Stop() // closes the connection under the call
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	body := readExample(t, "pay")
	rec := post(h, "/front/offline/pay", body)
	a := readAnswer(t, rec, body)
	if rec.Code != http.StatusOK || a.Errcode != codeInternal || !referenced.MatchString(a.Errmsg) {
		t.Errorf("HTTP %d errcode %d errmsg %q, want 200 10000 with a reference", rec.Code, a.Errcode, a.Errmsg)
	}
}

// TestUninstrumentedClient: a connection dialed without ClientOptions cannot
// prove that a call was never sent, so even a refused connection is 10000.
func TestUninstrumentedClient(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h, err := NewHandler(mapfrontv1.NewOfflineServiceClient(conn), Options{})
	if err != nil {
		t.Fatal(err)
	}
	body := readExample(t, "pay")
	if a := readAnswer(t, post(h, "/front/offline/pay", body), body); a.Errcode != codeInternal {
		t.Errorf("errcode %d %s, want 10000", a.Errcode, a.Errmsg)
	}
}

// TestReconnectWithinASecond starts a real gRPC server after the gateway,
// then restarts it on the same port, each time after the client's backoff
// has had time to grow: while the server is down the answer is 10018
// (nothing sent), and once it is up a request succeeds within about a
// second. (grpc-go's default backoff takes over 3 s in the first case.)
func TestReconnectWithinASecond(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the reconnect backoff")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	b := &backend{}
	b.set(&mapfrontv1.DownloadProductResponse{}, nil)
	h := handlerFor(t, addr, Options{CallTimeout: 2 * time.Second})
	body := readExample(t, "download_product")
	send := func() answer { return readAnswer(t, post(h, "/front/offline/download_product", body), body) }

	// down keeps the server away for d, checking that every answer says
	// that nothing was done.
	down := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if a := send(); a.Errcode != codeBusy {
				t.Fatalf("server down: errcode %d %s, want 10018", a.Errcode, a.Errmsg)
			}
		}
	}
	// up starts the server on addr and returns how long the first success
	// took.
	up := func() (*grpc.Server, time.Duration) {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		srv := grpc.NewServer()
		mapfrontv1.RegisterOfflineServiceServer(srv, b)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		started := time.Now()
		for {
			a := send()
			if a.Errcode == 0 {
				return srv, time.Since(started)
			}
			if a.Errcode != codeBusy {
				t.Fatalf("while reconnecting: errcode %d %s, want 10018 or 0", a.Errcode, a.Errmsg)
			}
			if time.Since(started) > 5*time.Second {
				t.Fatal("no success within 5 s of the start")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The bound is 800 ms + 20 % jitter; the rest is slack for a loaded CI
	// machine.
	const within = 1300 * time.Millisecond

	down(2500 * time.Millisecond)
	srv, took := up()
	t.Logf("first start: first success after %v", took)
	if took > within {
		t.Errorf("first start: first success after %v, want within about a second", took)
	}

	srv.Stop()
	// A request racing the close may be written into the dying connection
	// (10000, rightly); give the client a moment to see the close.
	time.Sleep(200 * time.Millisecond)
	down(2500 * time.Millisecond)
	_, took = up()
	t.Logf("restart: first success after %v", took)
	if took > within {
		t.Errorf("restart: first success after %v, want within about a second", took)
	}
}
