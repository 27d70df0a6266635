package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/secret"
)

// The answers as the code before migration 0003 encoded them: the domain
// structs of that time with their JSON tags, copied here so that the test
// keeps the old bytes whatever the domain becomes.
type oldCardOrderAnswer struct {
	OrderID         string `json:"orderId"`
	Mobile          string `json:"mobileNum"`
	SellerID        string `json:"sellerId"`
	StoreID         string `json:"storeId"`
	TerminalID      string `json:"terminalId"`
	OperatorID      string `json:"operatorId"`
	BatchNo         string `json:"batchNo"`
	TerminalOrderID string `json:"terminalOrderId"`
	Remark          string `json:"remark"`
}

type oldPaymentAnswer struct {
	OrderID         string `json:"orderId"`
	ConsumerID      string `json:"consumerId"`
	Sum             int64  `json:"sum"`
	PayTime         string `json:"payTime"`
	SellerID        string `json:"sellerId"`
	StoreID         string `json:"storeId"`
	TerminalID      string `json:"terminalId"`
	OperatorID      string `json:"operatorId"`
	BatchNo         string `json:"batchNo"`
	TerminalOrderID string `json:"terminalOrderId"`
	ProductName     string `json:"productName"`
	ProductPrice    int64  `json:"productPrice"`
	ProductQuantity string `json:"productQuantity"`
	Remark          string `json:"remark"`
	Status          string `json:"status"`
	AccountID       string `json:"accountId,omitempty"`
	Balance         *int64 `json:"balance,omitempty"`
}

type oldCancelAnswer struct {
	OrderID         string `json:"orderId"`
	PayTime         string `json:"payTime"`
	SellerID        string `json:"sellerId"`
	StoreID         string `json:"storeId"`
	TerminalID      string `json:"terminalId"`
	OperatorID      string `json:"operatorId"`
	BatchNo         string `json:"batchNo"`
	TerminalOrderID string `json:"terminalOrderId"`
	Remark          string `json:"remark"`
	Status          string `json:"status"`
	AccountID       string `json:"accountId,omitempty"`
	Balance         *int64 `json:"balance,omitempty"`
}

func oldJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The old code's statements, as it sent them (terminalkey.go, pay.go,
// payments.go before migration 0003; the pay order's INSERT without the
// ledger legs that preceded it in the same statement).
const (
	oldClaimKey = `
INSERT INTO terminal_requests (kind, terminal_id, batch_no, terminal_order_id, fingerprint, state, errcode)
VALUES ($1, $2, $3, $4, $5, 'done', -1)
ON CONFLICT DO NOTHING`
	oldFinishKey = `UPDATE terminal_requests SET errcode = $5, errmsg = $6, answer = $7
WHERE kind = $1 AND terminal_id = $2 AND batch_no = $3 AND terminal_order_id = $4`
	oldPayDecline = `INSERT INTO terminal_requests (kind, terminal_id, batch_no, terminal_order_id, fingerprint, state, errcode, errmsg)
VALUES ('pay', $1, $2, $3, $4, 'done', $5, $6)`
	oldPayOrder = `
INSERT INTO pay_orders (order_id, kind, seller_id, store_id, terminal_id, batch_no, terminal_order_id,
    operator_id, consumer_id, account_id, amount, balance_after, status, product_name, product_price,
    product_quantity, remark, business_date, pay_time, fingerprint)
VALUES ($1, 'pay', $4, $5, $6, $7, $8, $9, $10, $2, $3, $11, 'success', $12, $13, $14, $15, $16, $17, $18)`
	oldUndoInsert = `INSERT INTO terminal_requests (kind, terminal_id, batch_no, terminal_order_id, fingerprint,
    state, errcode, undo_answer) VALUES ('pay', $1, $2, $3, $4, $5, 0, $6)`
	oldUndoUpdate = `UPDATE terminal_requests SET state = $4, undo_answer = $5
WHERE kind = 'pay' AND terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3`
	oldRepealKey = `UPDATE terminal_requests SET state = 'reversed'
WHERE kind = 'open_card' AND terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3`
)

// Migration 0003 carries every stored outcome over: keys stored by the old
// code on the old schema (migrations 0001-0002), then migrated, answer their
// repeats through the service with the same bytes and the same declines.
func TestMigration0003KeepsEveryAnswer(t *testing.T) {
	ctx := context.Background()
	url, _, exec := migratedBefore(t, "0003")

	zone, _ := time.LoadLocation("Asia/Shanghai")
	clock := mapfront.Clock{Zone: zone, Now: func() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, zone) }}
	payTime := time.Date(2026, 11, 26, 9, 30, 0, 0, zone)
	exec(`INSERT INTO customers (mobile, id_number) VALUES ('13700000001', '110105194912310038')`)
	exec(`INSERT INTO accounts (account_id, kind, customer_id, status, activated_at)
SELECT '9999000000000097', 'cash', customer_id, 'active', now() FROM customers WHERE mobile = '13700000001'`)

	origin := mapfront.Origin{SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "op01"}
	cardOrigin := mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op01"}
	pay := func(key string, sum int64) *mapfront.PayRequest {
		return &mapfront.PayRequest{Origin: origin, BatchNo: "000001", TerminalOrderID: key, ConsumerID: "13700000001",
			PINBlock: "B5BA8AF886E80014", Sum: sum, ProductName: "0号柴油", ProductPrice: 500, ProductQuantity: "10"}
	}
	undo := func(key string) *mapfront.UndoPayRequest {
		return &mapfront.UndoPayRequest{Origin: origin, BatchNo: "000001", TerminalOrderID: key}
	}
	open := func(key string, sum int64) *mapfront.OpenCardRequest {
		return &mapfront.OpenCardRequest{Origin: cardOrigin, BatchNo: "000001", TerminalOrderID: key,
			IDNumber: "110105194912310038", Mobile: "13800000001", ProductID: "1010", PaySum: sum, HasPaySum: true}
	}

	// open_card approved, open_card declined, open_card approved then repealed.
	o1 := open("000002", 200000)
	o1Answer := oldJSON(t, oldCardOrderAnswer{OrderID: "20261126181352000002", Mobile: "13800000001", SellerID: "SH01",
		StoreID: "ST01", TerminalID: "POS01", OperatorID: "op01", BatchNo: "000001", TerminalOrderID: "000002",
		Remark: "已付2000.00元，尚欠2500.00元"})
	exec(oldClaimKey, "open_card", "POS01", "000001", "000002", o1.Fingerprint())
	exec(oldFinishKey, "open_card", "POS01", "000001", "000002", 0, "", o1Answer)
	o2 := open("000003", 450001)
	exec(oldClaimKey, "open_card", "POS01", "000001", "000003", o2.Fingerprint())
	exec(oldFinishKey, "open_card", "POS01", "000001", "000003", 10015, "支付金额4500.01元超过应付余额2500.00元", nil)
	o3 := open("000004", 250000)
	exec(oldClaimKey, "open_card", "POS01", "000001", "000004", o3.Fingerprint())
	exec(oldFinishKey, "open_card", "POS01", "000001", "000004", 0, "", oldJSON(t, oldCardOrderAnswer{OrderID: "20261126181352000002"}))
	exec(oldRepealKey, "POS01", "000001", "000004")

	// pay approved (its outcome is its order), pay declined, pay approved
	// then reversed, a tombstone, a declined pay reversed.
	p1 := pay("000001", 5000)
	exec(oldPayOrder, "ud20261126093000000003", "9999000000000097", int64(5000), "SH12345", "ST12345", "ZJ000001",
		"000001", "000001", "op01", "13700000001", int64(995000), "0号柴油", int64(500), "10", "",
		clock.BusinessDate(payTime), payTime, p1.Fingerprint())
	bal := int64(995000)
	p1Answer := oldJSON(t, oldPaymentAnswer{OrderID: "ud20261126093000000003", ConsumerID: "13700000001", Sum: 5000,
		PayTime: "2026-11-26 09:30:00", SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "op01",
		BatchNo: "000001", TerminalOrderID: "000001", ProductName: "0号柴油", ProductPrice: 500, ProductQuantity: "10",
		Status: "支付成功", AccountID: "9999000000000097", Balance: &bal})
	p2 := pay("000002", 4_000_000)
	exec(oldPayDecline, "ZJ000001", "000001", "000002", p2.Fingerprint(), 10009, "余额不足")
	p3 := pay("000003", 3000)
	exec(oldPayOrder, "ud20261126093000000005", "9999000000000097", int64(3000), "SH12345", "ST12345", "ZJ000001",
		"000001", "000003", "op01", "13700000001", int64(992000), "0号柴油", int64(500), "10", "",
		clock.BusinessDate(payTime), payTime, p3.Fingerprint())
	exec(`UPDATE pay_orders SET status = 'reversed' WHERE order_id = 'ud20261126093000000005'`)
	back := int64(995000)
	p3Undo := oldJSON(t, oldPaymentAnswer{OrderID: "ud20261126093000000005", ConsumerID: "13700000001", Sum: 3000,
		PayTime: "2026-11-26 09:31:00", SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "op01",
		BatchNo: "000001", TerminalOrderID: "000003", ProductName: "0号柴油", ProductPrice: 500, ProductQuantity: "10",
		Status: "支付失败，冲正成功", AccountID: "9999000000000097", Balance: &back})
	exec(oldUndoInsert, "ZJ000001", "000001", "000003", p3.Fingerprint(), "reversed", p3Undo)
	tombUndo := oldJSON(t, oldPaymentAnswer{OrderID: "ud20261126093200000006", PayTime: "2026-11-26 09:32:00",
		SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "op01", BatchNo: "000001",
		TerminalOrderID: "000009", Status: "支付失败，冲正成功"})
	exec(oldUndoInsert, "ZJ000001", "000001", "000009", nil, "tombstone", tombUndo)
	declinedUndo := oldJSON(t, oldPaymentAnswer{OrderID: "ud20261126093300000007", PayTime: "2026-11-26 09:33:00",
		SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "op01", BatchNo: "000001",
		TerminalOrderID: "000002", Status: "原交易未成功，冲正成功"})
	exec(oldUndoUpdate, "ZJ000001", "000001", "000002", "done", declinedUndo)

	// pay_cancel approved: its answer under its own key.
	c1 := &mapfront.CancelPayRequest{Origin: origin, BatchNo: "000001", TerminalOrderID: "000010", OrderID: "ud20261126093000000003"}
	refunded := int64(1000000)
	c1Answer := oldJSON(t, oldCancelAnswer{OrderID: "ud20261126093400000008", PayTime: "2026-11-26 09:34:00",
		SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "op01", BatchNo: "000001",
		TerminalOrderID: "000010", Status: "消费撤销成功", AccountID: "9999000000000097", Balance: &refunded})
	exec(oldClaimKey, "pay_cancel", "ZJ000001", "000001", "000010", c1.Fingerprint())
	exec(oldFinishKey, "pay_cancel", "ZJ000001", "000001", "000010", 0, "", c1Answer)

	// Migrate (Open applies 0003 and the rest) and serve.
	keys, err := secret.Parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	policy := mapfront.DefaultPolicy()
	s, err := Open(ctx, url, Options{Clock: clock, Policy: policy, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// As serve does before serving: the keys' digests sealed (0017).
	if _, err := mapfront.SealPendingFingerprints(ctx, s, keys, log); err != nil {
		t.Fatal(err)
	}
	if err := mapfront.NewAdminService(s, keys, policy).LoadDemo(ctx, testTPK); err != nil {
		t.Fatal(err)
	}
	svc := mapfront.NewService(s, keys, clock, policy, log)

	same := func(name string, got any, want []byte) {
		t.Helper()
		if b := oldJSON(t, got); !bytes.Equal(b, want) {
			t.Errorf("%s answered\n%s\nbefore the migration\n%s", name, b, want)
		}
	}
	declined := func(name string, err error, code mapfront.Code, msg string) {
		t.Helper()
		if mapfront.ErrorCode(err) != code || (msg != "" && err.Error() != (&mapfront.Error{Code: code, Msg: msg}).Error()) {
			t.Errorf("%s: %v, want %d %s", name, err, code, msg)
		}
	}

	a, err := svc.OpenCard(ctx, o1)
	if err != nil {
		t.Fatal(err)
	}
	same("open_card", oldCardOrderAnswer(*a), o1Answer)
	_, err = svc.OpenCard(ctx, o2)
	declined("declined open_card", err, mapfront.CodeAmount, "支付金额4500.01元超过应付余额2500.00元")
	_, err = svc.OpenCard(ctx, o3)
	declined("repealed open_card", err, mapfront.CodeAlreadyUndone, "")

	pa, err := svc.Pay(ctx, p1)
	if err != nil {
		t.Fatal(err)
	}
	same("approved pay", oldPaymentAnswer(*pa), p1Answer)
	_, err = svc.Pay(ctx, p2)
	declined("declined pay", err, mapfront.CodeInsufficient, "余额不足")
	_, err = svc.Pay(ctx, p3)
	declined("reversed pay", err, mapfront.CodeAlreadyUndone, "")
	_, err = svc.Pay(ctx, pay("000009", 100))
	declined("pay of a tombstone", err, mapfront.CodeAlreadyUndone, "")

	for _, u := range []struct {
		key  string
		want []byte
	}{{"000003", p3Undo}, {"000009", tombUndo}, {"000002", declinedUndo}} {
		ua, err := svc.UndoPay(ctx, undo(u.key))
		if err != nil {
			t.Fatal(err)
		}
		same("pay_undo "+u.key, oldPaymentAnswer(*ua), u.want)
	}
	ca, err := svc.CancelPay(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	same("pay_cancel", oldCancelAnswer(*ca), c1Answer)

	// Nothing moved: the customer's account was never posted to.
	var postings int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM postings WHERE account_id = '9999000000000097'`).Scan(&postings); err != nil {
		t.Fatal(err)
	}
	if postings != 0 {
		t.Fatalf("replays moved money: %d postings", postings)
	}
	var states []string
	rows, _ := s.pool.Query(ctx, `SELECT kind || ' ' || terminal_order_id || ' ' || state FROM terminal_requests ORDER BY 1`)
	if states, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	want := []string{"open_card 000002 approved", "open_card 000003 declined", "open_card 000004 reversed",
		"pay 000002 declined", "pay 000003 reversed", "pay 000009 tombstone", "pay_cancel 000010 approved"}
	if len(states) != len(want) {
		t.Fatalf("states %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("states %v, want %v", states, want)
		}
	}
}
