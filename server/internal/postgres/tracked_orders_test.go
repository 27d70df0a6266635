package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

// trackedDrift describes how card_orders_pending and card_orders_releasing
// (migration 0021) differ from the orders they stand for: empty when each
// holds exactly its orders.
const trackedDriftSQL = `
SELECT coalesce(string_agg(d.what || ' ' || d.order_id, ', ' ORDER BY d.what, d.order_id), '') FROM (
    (SELECT 'pending missing' AS what, order_id FROM card_orders WHERE status = 'pending'
     EXCEPT SELECT 'pending missing', order_id FROM card_orders_pending)
    UNION ALL
    (SELECT 'pending extra', q.order_id FROM card_orders_pending q
     WHERE NOT EXISTS (SELECT 1 FROM card_orders o WHERE o.order_id = q.order_id
                          AND o.status = 'pending' AND o.business_date = q.business_date))
    UNION ALL
    (SELECT 'releasing missing', order_id FROM card_orders
      WHERE status = 'active' AND credited AND released < installments AND installments > 1
     EXCEPT SELECT 'releasing missing', order_id FROM card_orders_releasing)
    UNION ALL
    (SELECT 'releasing extra', r.order_id FROM card_orders_releasing r
     WHERE NOT EXISTS (SELECT 1 FROM card_orders o WHERE o.order_id = r.order_id AND o.installments > 1
                          AND o.status = 'active' AND o.credited AND o.released < o.installments))) d`

// checkTracked fails the test unless the tracking tables are exact.
func checkTracked(t *testing.T, e *env, step string) {
	t.Helper()
	var drift string
	if err := e.store.pool.QueryRow(e.ctx, trackedDriftSQL).Scan(&drift); err != nil {
		t.Fatal(err)
	}
	if drift != "" {
		t.Fatalf("%s: tracking tables drift: %s", step, drift)
	}
}

// Migration 0021: the tables RunDaily scans follow every way an order
// changes state: split payments (pending), activation under the immediate
// policy (releasing), a repeal back to pending, a payment that activates it
// again, the releases to the last part, a repeal that closes an order, and
// settlement's activation.
func TestTrackedOrdersFollowEveryWrite(t *testing.T) {
	e := newEnv(t, func(p *mapfront.Policy) { p.Activation = mapfront.ActivateImmediate })
	if _, err := e.admin.UpsertProduct(e.ctx, mapfront.Product{ID: "2020", Name: "分期卡3期", ShortName: "分期卡3期",
		Price: 300000, FaceValue: 360000, Kind: mapfront.Installment, Installments: 3, OnSale: true}); err != nil {
		t.Fatal(err)
	}
	checkTracked(t, e, "demo")
	req := func(key string, sum int64) *mapfront.OpenCardRequest {
		r := openReq(newMobile, newID, key, sum)
		r.ProductID = "2020"
		return r
	}
	inSet := func(table, orderID string) bool {
		t.Helper()
		return e.scalar(t, `SELECT count(*) FROM `+table+` WHERE order_id = $1`, orderID) == 1
	}
	a, err := e.svc.OpenCard(e.ctx, req("p1", 100000))
	if err != nil {
		t.Fatal(err)
	}
	order := a.OrderID
	checkTracked(t, e, "first part paid")
	if !inSet("card_orders_pending", order) {
		t.Fatal("a partly paid order is not in card_orders_pending")
	}
	if _, err := e.svc.OpenCard(e.ctx, req("p2", 200000)); err != nil {
		t.Fatal(err)
	}
	checkTracked(t, e, "paid in full, active")
	if inSet("card_orders_pending", order) || !inSet("card_orders_releasing", order) {
		t.Fatal("an active 3-part card is not releasing only")
	}
	repeal := &mapfront.RepealCardRequest{Origin: req("", 0).Origin, BatchNo: req("", 0).BatchNo, TerminalOrderID: "p2"}
	if _, err := e.svc.RepealCard(e.ctx, repeal); err != nil {
		t.Fatal(err)
	}
	checkTracked(t, e, "repealed back to pending")
	if !inSet("card_orders_pending", order) || inSet("card_orders_releasing", order) {
		t.Fatal("a repealed card is not pending only")
	}
	if _, err := e.svc.OpenCard(e.ctx, req("p3", 200000)); err != nil {
		t.Fatal(err)
	}
	checkTracked(t, e, "paid in full again")
	for months, want := range []int64{1, 1, 0} {
		e.clock.now = e.clock.now.AddDate(0, 1, 1)
		res, err := e.store.RunDaily(e.ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if res.InstallmentsReleased != want {
			t.Fatalf("month %d: released %d, want %d", months+1, res.InstallmentsReleased, want)
		}
		checkTracked(t, e, "RunDaily")
	}
	if inSet("card_orders_releasing", order) {
		t.Fatal("a card released to its last part is still releasing")
	}

	// A card of one part never releases; a repeal of its only payment
	// closes it.
	one, err := e.svc.OpenCard(e.ctx, openReq("13800000002", stlID("11010519900101072"), "q1", 0))
	if err != nil {
		t.Fatal(err)
	}
	checkTracked(t, e, "one-part card active")
	if inSet("card_orders_releasing", one.OrderID) {
		t.Fatal("a card of one part is releasing")
	}
	if _, err := e.svc.RepealCard(e.ctx, &mapfront.RepealCardRequest{Origin: repeal.Origin, BatchNo: repeal.BatchNo,
		TerminalOrderID: "q1"}); err != nil {
		t.Fatal(err)
	}
	checkTracked(t, e, "closed")
	e.verify(t)
}

// Settlement's activation leaves card_orders_pending, and RunDaily flags
// from it only the orders still pending past the window.
func TestTrackedOrdersSettlement(t *testing.T) {
	e := newEnv(t)
	id1, id2 := stlID("11010519900101081"), stlID("11010519900101082")
	full := stlOpen(t, e, "13800000081", id1, "1012", "000001", 150000)
	part := stlOpen(t, e, "13800000082", id2, "1010", "000002", 225000)
	checkTracked(t, e, "sold")
	e.dayOver(t, "20261126")
	r, err := e.submit("20261126", "f", false, []mapfront.SettlementRecord{
		stlRec(1, "T1", 150000, "000001", id1, "13800000081", "1012"),
		stlRec(2, "T2", 225000, "000002", id2, "13800000082", "1010")}, nil)
	if err != nil || r.Activated != 1 {
		t.Fatalf("settle: %v %+v", err, r)
	}
	checkTracked(t, e, "settled")
	if n := e.scalar(t, `SELECT count(*) FROM card_orders_pending WHERE order_id IN ($1, $2)`, full.OrderID, part.OrderID); n != 1 {
		t.Fatalf("%d of the activated and the partly paid order pending, want 1", n)
	}
	e.clock.now = e.clock.now.AddDate(0, 0, 8)
	res, err := e.store.RunDaily(e.ctx, 0)
	if err != nil || res.IncompleteFlagged != 1 {
		t.Fatalf("RunDaily: %v %+v, want 1 flagged", err, res)
	}
	if n := e.scalar(t, `SELECT count(*) FROM settlement_exceptions WHERE type = 'incomplete_after_window' AND order_id = $1`,
		part.OrderID); n != 1 {
		t.Fatal("the partly paid order was not flagged")
	}
	e.verify(t)
}

// Migration 0021's point: settlement's activation of an order (markActivated)
// writes no index entry, the order's filling flag being false already once it
// is paid in full, split payments included.
func TestActivationIsHOT(t *testing.T) {
	e := newEnv(t)
	id1, id2 := stlID("11010519900101091"), stlID("11010519900101092")
	full := stlOpen(t, e, "13800000091", id1, "1012", "000001", 150000)
	stlOpen(t, e, "13800000092", id2, "1010", "000002", 225000)
	split := stlOpen(t, e, "13800000092", id2, "1010", "000003", 225000)
	var orders []*settledOrder
	for _, id := range []string{full.OrderID, split.OrderID} {
		o, err := scanCardOrder(e.store.pool.QueryRow(e.ctx, `SELECT `+cardOrderColumns+` FROM card_orders WHERE order_id = $1`, id))
		if err != nil {
			t.Fatal(err)
		}
		if o.filling || o.paid != o.price {
			t.Fatalf("order %s paid %d of %d, filling %v", id, o.paid, o.price, o.filling)
		}
		orders = append(orders, &settledOrder{cardOrder: *o, confirmed: o.price, payments: 1})
	}
	// A connection of its own: the counts read below are those of its
	// backend, not yet reported (the pool's backends did the sales).
	ctx, tx, r := settlingTx(t, e)
	now := r.at
	if err := markActivated(ctx, tx, r, orders, orders, now); err != nil {
		t.Fatal(err)
	}
	var updated, hot int64
	if err := tx.QueryRow(ctx, `SELECT pg_stat_get_xact_tuples_updated('card_orders'::regclass),
       pg_stat_get_xact_tuples_hot_updated('card_orders'::regclass)`).Scan(&updated, &hot); err != nil {
		t.Fatal(err)
	}
	if updated != 2 || hot != 2 {
		t.Fatalf("activation updated %d orders, %d HOT; want 2 and 2", updated, hot)
	}
	var pending int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM card_orders_pending WHERE order_id IN ($1, $2)`,
		full.OrderID, split.OrderID).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != 0 {
		t.Fatalf("%d activated orders still in card_orders_pending", pending)
	}
}

// Migration 0021 fills the tracking tables from the orders a database
// already holds: pending ones of any date, installment cards with parts to
// release, and none of the rest.
func TestMigration0021FillsTrackingTables(t *testing.T) {
	ctx := context.Background()
	url, _, exec := migratedBefore(t, "0021")
	exec(`INSERT INTO products (product_id, name, short_name, price, face_value, kind, installments)
VALUES ('2020', '分期卡', '分期卡', 300000, 360000, 'installment', 3), ('1012', '折扣卡', '折扣卡', 150000, 200000, 'discount', 1)`)
	// order id suffix, product, installments, released, paid, filling,
	// status, credited, business date
	orders := []struct {
		n, product         string
		installments, rel  int
		paid               int64
		filling            bool
		status             string
		credited           bool
		date               string
		pending, releasing bool
	}{
		{"01", "1012", 1, 0, 50000, true, "pending", false, "2026-11-01", true, false},
		{"02", "1012", 1, 0, 150000, false, "pending", false, "2026-11-20", true, false},
		{"03", "2020", 3, 0, 100000, true, "pending", false, "2026-11-20", true, false},
		{"04", "2020", 3, 1, 300000, false, "active", true, "2026-10-01", false, true},
		{"05", "2020", 3, 2, 300000, false, "active", true, "2026-09-01", false, true},
		{"06", "2020", 3, 3, 300000, false, "active", true, "2026-08-01", false, false},
		{"07", "1012", 1, 1, 150000, false, "active", true, "2026-11-20", false, false},
		{"08", "1012", 1, 0, 0, false, "closed", false, "2026-11-20", false, false},
	}
	for _, o := range orders {
		mobile := "1380000010" + o.n[1:]
		exec(`INSERT INTO customers (mobile, id_number) VALUES ($1, '110105194912310038')`, mobile)
		account := o.product + "0000000001" + o.n
		exec(`INSERT INTO accounts (account_id, kind, customer_id, product_id, status)
SELECT $1, 'card', customer_id, $2, 'pending' FROM customers WHERE mobile = $3`, account, o.product, mobile)
		exec(`INSERT INTO card_orders (order_id, customer_id, product_id, account_id, price, face_value, installments,
    released, paid, filling, status, credited, business_date)
SELECT $1, c.customer_id, p.product_id, $2, p.price, p.face_value, $3, $4, $5, $6, $7, $8, $9
FROM customers c, products p WHERE c.mobile = $10 AND p.product_id = $11`,
			"202611260000000000"+o.n, account, o.installments, o.rel, o.paid, o.filling, o.status, o.credited, o.date,
			mobile, o.product)
	}

	zone, _ := time.LoadLocation("Asia/Shanghai")
	e := keyedEnv(t, url, testKeys(t, keyA), &testClock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, zone)})
	checkTracked(t, e, "after the migration")
	for _, o := range orders {
		id := "202611260000000000" + o.n
		if got := e.scalar(t, `SELECT count(*) FROM card_orders_pending WHERE order_id = $1`, id) == 1; got != o.pending {
			t.Errorf("order %s pending %v, want %v", id, got, o.pending)
		}
		if got := e.scalar(t, `SELECT count(*) FROM card_orders_releasing WHERE order_id = $1`, id) == 1; got != o.releasing {
			t.Errorf("order %s releasing %v, want %v", id, got, o.releasing)
		}
	}
	// No index of card_orders names a column that activation changes.
	var indexes string
	if err := e.store.pool.QueryRow(ctx, `SELECT string_agg(indexrelid::regclass::text, ' ' ORDER BY indexrelid::regclass::text)
FROM pg_index WHERE indrelid = 'card_orders'::regclass`).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if indexes != "card_orders_account_id_key card_orders_one_filling card_orders_pkey" {
		t.Fatalf("indexes of card_orders: %s", indexes)
	}
	// The business date keys card_orders_pending: it never changes.
	_, err := e.store.pool.Exec(ctx, `UPDATE card_orders SET business_date = business_date + 1 WHERE order_id = $1`,
		"202611260000000000"+"01")
	wantRefused(t, "changing a business date", err, "23000", "")
}

// settlingTx begins a transaction on a connection of its own (so that the
// pg_stat_get_xact_* counts read in it are its own) and starts a settlement
// run in it, as a slice of settlement works inside one. The transaction
// rolls back and the connection closes when the test ends.
func settlingTx(t *testing.T, e *env) (context.Context, pgx.Tx, *run) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.store.pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	var runID int64
	if err := tx.QueryRow(ctx, `INSERT INTO settlement_runs (business_date, file_name, sha256, status, started_at)
VALUES ('2026-11-26', 'f.txt', $1, 'applying', now()) RETURNING run_id`, stlSHA("f")).Scan(&runID); err != nil {
		t.Fatal(err)
	}
	return ctx, tx, &run{id: runID, date: e.store.clock.Today(), at: e.clock.Now()}
}
