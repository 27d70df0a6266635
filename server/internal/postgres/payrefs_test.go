package postgres

import (
	"testing"
)

// Migration 0015: a payment order's account and original order are checked
// once per statement instead of by foreign keys; the database still refuses
// an order naming an unknown one (23503, as the keys did), and refuses
// removing or renaming the rows orders name. Nothing refused leaves a row.
func TestPayOrdersRefs(t *testing.T) {
	e := newEnv(t)
	account := newPayer(t, e, "15800001235", 500)
	insert := func(orderID, accountID string, original any, kind string) error {
		_, err := e.store.pool.Exec(e.ctx, `INSERT INTO pay_orders (order_id, kind, seller_id, store_id, terminal_id,
    batch_no, terminal_order_id, consumer_id, account_id, amount, balance_after, status, original_order_id,
    business_date, pay_time)
VALUES ($1, $4, 'S', 'ST', 'T', '1', $1, '15800001235', $2, 1, 0, 'success', $3, current_date, now())`,
			orderID, accountID, original, kind)
		return err
	}
	orders := func() int64 { return e.scalar(t, `SELECT count(*) FROM pay_orders`) }
	before := orders()

	wantRefused(t, "unknown account", insert("ud00000000000000000001", "9999000000000002", nil, "pay"), "23503", "")
	wantRefused(t, "unknown original order", insert("ud00000000000000000002", account, "ud00000000000000009999", "cancel"), "23503", "")
	// One statement of several rows, one of them bad: none lands.
	_, err := e.store.pool.Exec(e.ctx, `INSERT INTO pay_orders (order_id, kind, seller_id, store_id, terminal_id,
    batch_no, terminal_order_id, consumer_id, account_id, amount, balance_after, status, business_date, pay_time)
SELECT o, 'pay', 'S', 'ST', 'T', '1', o, '15800001235', a, 1, 0, 'success', current_date, now()
FROM unnest(ARRAY['ud00000000000000000003', 'ud00000000000000000004'], ARRAY[$1, '9999000000000002']) AS u(o, a)`, account)
	wantRefused(t, "a statement with one unknown account", err, "23503", "")
	if got := orders(); got != before {
		t.Fatalf("%d payment orders after refusals, want %d", got, before)
	}

	// What is right still lands: a pay and its cancel.
	if err := insert("ud00000000000000000005", account, nil, "pay"); err != nil {
		t.Fatal(err)
	}
	if err := insert("ud00000000000000000006", account, "ud00000000000000000005", "cancel"); err != nil {
		t.Fatal(err)
	}

	for _, q := range []string{
		`DELETE FROM accounts WHERE account_id = '` + account + `'`,
		`UPDATE accounts SET account_id = '9999000000000002' WHERE account_id = '` + account + `'`,
		`DELETE FROM pay_orders`,
		`TRUNCATE pay_orders`,
		`UPDATE pay_orders SET account_id = '9999000000000002'`,
		`UPDATE pay_orders SET original_order_id = NULL`,
		`UPDATE pay_orders SET order_id = 'ud00000000000000000007' WHERE order_id = 'ud00000000000000000005'`,
	} {
		_, err := e.store.pool.Exec(e.ctx, q)
		wantRefused(t, q, err, "23503", "")
	}
	if got := orders(); got != before+2 {
		t.Fatalf("%d payment orders, want %d", got, before+2)
	}
	e.verify(t)
}
