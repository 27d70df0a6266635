package postgres

import (
	"fmt"
	"sync/atomic"
	"testing"

	"mapfront/server/internal/mapfront"
)

// BenchmarkPay measures Store.Pay alone (no HTTP, no gRPC) with parallel
// callers, each paying from its own customer's cash account, against the
// real PostgreSQL. Run: make test is not needed; `MAPFRONT_TEST_DATABASE_URL=...
// go test -run XXX -bench Pay -benchtime 5s ./server/internal/postgres`.
func BenchmarkPay(b *testing.B) {
	e := newEnvTB(b)
	const customers = 64
	blocks := make([]string, customers)
	for i := 0; i < customers; i++ {
		mobile := fmt.Sprintf("1500000%04d", i)
		if _, err := e.admin.CreateCustomer(e.ctx, mobile, newID); err != nil {
			b.Fatal(err)
		}
		if err := e.admin.SetPaymentPassword(e.ctx, mobile, "123456"); err != nil {
			b.Fatal(err)
		}
		if _, _, err := e.store.TopUpCash(e.ctx, mobile, 1_000_000_000, "bench-"+mobile); err != nil {
			b.Fatal(err)
		}
		blocks[i] = pinForTB(b, "123456", mobile)
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			c := int(i % customers)
			r := &mapfront.PayRequest{
				Origin:  mapfront.Origin{SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "bench"},
				BatchNo: "1", TerminalOrderID: fmt.Sprint(i), ConsumerID: fmt.Sprintf("1500000%04d", c), PINBlock: blocks[c], Sum: 1,
			}
			if _, err := e.svc.Pay(e.ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
