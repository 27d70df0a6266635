package postgres

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mapfront/server/internal/mapfront"
)

// The README's queries for the tracking tables (Operations, Proving the
// ledger) do what it says: empty when the tables are exact, a row per
// difference otherwise, and the rebuild makes them exact again.
func TestReadmeTrackedOrdersQueries(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(body)
	at := strings.Index(doc, "rebuilds the tables from the orders")
	if at < 0 {
		t.Fatal("README: the tracking tables' queries are gone")
	}
	start := strings.Index(doc[at:], "```sql\n")
	if start < 0 {
		t.Fatal("README: no sql block after the tracking tables' paragraph")
	}
	block := doc[at+start+len("```sql\n"):]
	block = block[:strings.Index(block, "```")]
	checks, rebuild, ok := strings.Cut(block, "\nBEGIN;")
	if !ok {
		t.Fatalf("README: no rebuild transaction in:\n%s", block)
	}
	rebuild = "BEGIN;" + rebuild
	var queries []string
	for _, q := range strings.Split(checks, ";\n") {
		if q = strings.TrimSpace(q); q != "" {
			queries = append(queries, q)
		}
	}
	if len(queries) != 2 {
		t.Fatalf("README: %d difference queries, want 2:\n%s", len(queries), checks)
	}

	e := newEnv(t, func(p *mapfront.Policy) { p.Activation = mapfront.ActivateImmediate })
	if _, err := e.admin.UpsertProduct(e.ctx, mapfront.Product{ID: "2020", Name: "分期卡3期", ShortName: "分期卡3期",
		Price: 300000, FaceValue: 360000, Kind: mapfront.Installment, Installments: 3, OnSale: true}); err != nil {
		t.Fatal(err)
	}
	// A pending order (the first part of a split payment) and an active
	// 3-part card with parts still to release.
	if _, err := e.svc.OpenCard(e.ctx, openReq(newMobile, newID, "R1", 50000)); err != nil {
		t.Fatal(err)
	}
	installment := openReq(newMobile, newID, "R2", 300000)
	installment.ProductID = "2020"
	card, err := e.svc.OpenCard(e.ctx, installment)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.scalar(t, `SELECT count(*) FROM card_orders_pending`); n == 0 {
		t.Fatal("no pending order to track")
	}
	if n := e.scalar(t, `SELECT count(*) FROM card_orders_releasing WHERE order_id = $1`, card.OrderID); n != 1 {
		t.Fatal("the 3-part card is not releasing")
	}
	checkTracked(t, e, "before")
	differences := func() int {
		n := 0
		for _, q := range queries {
			rows, err := e.store.pool.Query(e.ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			for rows.Next() {
				n++
			}
			if rows.Err() != nil {
				t.Fatal(rows.Err())
			}
		}
		return n
	}
	if n := differences(); n != 0 {
		t.Fatalf("exact tables: %d differences", n)
	}
	// As a restore without triggers could leave them, each way a table can
	// differ: the pending orders missing, a pending row of an order that is
	// not pending, the releasing card missing, a releasing row of an order
	// that releases nothing.
	pending := e.scalar(t, `SELECT count(*) FROM card_orders_pending`)
	for _, q := range []string{
		`DELETE FROM card_orders_pending`,
		`INSERT INTO card_orders_pending SELECT business_date, order_id FROM card_orders WHERE status <> 'pending' LIMIT 1`,
		`DELETE FROM card_orders_releasing`,
		`INSERT INTO card_orders_releasing SELECT order_id FROM card_orders WHERE installments = 1 LIMIT 1`,
	} {
		if tag, err := e.store.pool.Exec(e.ctx, q); err != nil || tag.RowsAffected() == 0 {
			t.Fatalf("%s: %v, %d rows", q, err, tag.RowsAffected())
		}
	}
	if n := differences(); n != int(pending)+3 {
		t.Fatalf("%d differences, want %d", n, pending+3)
	}
	if _, err := e.store.pool.Exec(e.ctx, rebuild); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if n := differences(); n != 0 {
		t.Fatalf("after the rebuild: %d differences", n)
	}
	checkTracked(t, e, "after the rebuild")
}
