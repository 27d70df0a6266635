package postgres

import (
	"fmt"
	"strings"
	"testing"

	"mapfront/server/internal/mapfront"
)

// Issue 10: a NUL inside a string field used to reach PostgreSQL and come
// back as 10000; it is the client's mistake, 10001 naming the field, and
// nothing is stored under the key.
func TestControlCharacterIsMalformedNotInternal(t *testing.T) {
	e := newEnv(t)
	p := payReq(t, demoMobile, "123456", "nul1", 100)
	p.OperatorID = "zhang\x00san"
	_, err := e.svc.Pay(e.ctx, p)
	wantCode(t, err, mapfront.CodeMalformed)
	if !strings.Contains(err.Error(), "operatorId") {
		t.Fatalf("%v does not name operatorId", err)
	}
	o := openReq(newMobile, newID, "nul2", 100)
	o.Referrer = "\x00"
	_, err = e.svc.OpenCard(e.ctx, o)
	wantCode(t, err, mapfront.CodeMalformed)
	// The key stayed free: the same key with a clean request pays.
	p.OperatorID = "zhangsan"
	if _, err := e.svc.Pay(e.ctx, p); err != nil {
		t.Fatal(err)
	}
}

// Issue 10: a column type change invalidates the statements that pooled
// connections prepared ("cached plan must not change result type", SQLSTATE
// 0A000). The request certainly had no effect, so it is retried, not
// answered 10000; the pays after the change all succeed and the ledger
// proves.
func TestSchemaChangeDuringPaysIsRetried(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 4; i++ {
		if _, err := e.svc.Pay(e.ctx, payReq(t, demoMobile, "123456", fmt.Sprintf("before%d", i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.pool.Exec(e.ctx, `ALTER TABLE pay_orders ALTER COLUMN product_quantity TYPE varchar(32)`); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := e.svc.Pay(e.ctx, payReq(t, demoMobile, "123456", fmt.Sprintf("after%d", i), 100)); err != nil {
			t.Fatalf("pay %d after the column change: %v", i, err)
		}
	}
	if b := e.balance(t, demoCard); b != 300000-800 {
		t.Fatalf("balance %d", b)
	}
	e.verify(t)
}
