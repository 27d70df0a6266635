package postgres

import "testing"

// Migration 0022: a settlement trade names its payment's order; a trade
// naming another order, known as it is, is refused as an unknown one was.
func TestTradeOfAnotherPaymentsOrderRefused(t *testing.T) {
	e := newEnv(t)
	a := stlOpen(t, e, "13800000094", stlID("11010519900101094"), "1012", "000094", 150000)
	b := stlOpen(t, e, "13800000095", stlID("11010519900101095"), "1012", "000095", 150000)
	var run, payment int64
	if err := e.store.pool.QueryRow(e.ctx, `INSERT INTO settlement_runs (business_date, file_name, sha256, status, started_at)
VALUES ('2026-11-26', 'refs', repeat('a', 64), 'applying', now()) RETURNING run_id`).Scan(&run); err != nil {
		t.Fatal(err)
	}
	if err := e.store.pool.QueryRow(e.ctx, `SELECT payment_id FROM card_payments WHERE order_id = $1`, a.OrderID).Scan(&payment); err != nil {
		t.Fatal(err)
	}
	const trade = `INSERT INTO settlement_trades (trade_id, business_date, run_id, line_no, outcome, payment_id, order_id,
    amount, applied_at) VALUES ('R1', '2026-11-26', $1, 1, 'matched', $2, $3, 1, now())`
	_, err := e.store.pool.Exec(e.ctx, trade, run, payment, b.OrderID)
	wantRefused(t, "trade of another payment's order", err, "23503", "")
	if _, err := e.store.pool.Exec(e.ctx, trade, run, payment, a.OrderID); err != nil {
		t.Fatal(err)
	}
}
