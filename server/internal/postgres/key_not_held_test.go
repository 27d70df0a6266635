package postgres

import (
	"errors"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
)

// A server started with the new master key alone while ID numbers are still
// under the old one (the old key dropped before rotate-keys finished) must
// not call an existing customer's own ID number another's: that answered
// 10016 and recorded it on the terminal key, so the repeat still answered
// 10016 once the old key was given back (found by a probe). Now the
// open_card fails as internal (ErrKeyNotHeld: 10000, nothing recorded), a
// record opening a card from the settlement file fails the run rather than
// filing a wrong not_openable item, and with the old key back the same
// request opens the card.
func TestIDIndexUnderKeyNotHeld(t *testing.T) {
	url := pgtest.NewDatabase(t)
	zone, _ := time.LoadLocation("Asia/Shanghai")
	clk := &testClock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, zone)}
	const mobile = "13800000350"
	id := stlID("11010519900101350")
	open := func(order string) *mapfront.OpenCardRequest {
		return &mapfront.OpenCardRequest{
			Origin:  mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op1"},
			BatchNo: "000001", TerminalOrderID: order, IDNumber: id, Mobile: mobile, ProductID: "1012",
			PaySum: 100, HasPaySum: true,
		}
	}
	old := keyedEnv(t, url, testKeys(t, keyA), clk)
	if err := old.admin.LoadDemo(old.ctx, testTPK); err != nil {
		t.Fatal(err)
	}
	if _, err := old.svc.OpenCard(old.ctx, open("k00001")); err != nil {
		t.Fatal(err)
	}

	only := keyedEnv(t, url, testKeys(t, keyB), clk)
	_, err := only.svc.OpenCard(only.ctx, open("k00002"))
	if !errors.Is(err, mapfront.ErrKeyNotHeld) {
		t.Fatalf("open_card of the customer's own ID with the old key missing: %v, want ErrKeyNotHeld", err)
	}
	if n := only.scalar(t, `SELECT count(*) FROM terminal_requests WHERE terminal_order_id = 'k00002'`); n != 0 {
		t.Fatalf("the failure was recorded on the key (%d rows)", n)
	}
	only.dayOver(t, "20261126")
	_, err = only.submit("20261126", "nk", false, []mapfront.SettlementRecord{
		stlRec(1, "F1", 100, "f00001", id, mobile, "1012")}, nil)
	if !errors.Is(err, mapfront.ErrKeyNotHeld) {
		t.Fatalf("settlement opening a card for the customer with the old key missing: %v, want ErrKeyNotHeld", err)
	}
	if n := only.scalar(t, `SELECT count(*) FROM settlement_exceptions WHERE type = 'not_openable'`); n != 0 {
		t.Fatalf("%d not_openable items filed", n)
	}

	back := keyedEnv(t, url, testKeys(t, keyB, keyA), clk)
	if _, err := back.svc.OpenCard(back.ctx, open("k00002")); err != nil {
		t.Fatalf("the same open_card with the old key back: %v", err)
	}
}
