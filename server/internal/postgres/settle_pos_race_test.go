package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// POS traffic while the day's settlement runs: the file holds 400 card
// sales whose open_card never reached us; as the run applies, terminals
// resend those open_cards (each creating its payment after the slice's
// first lock) and repeal each one that succeeds. The run must settle, every
// record end in exactly one outcome, and the ledger prove. Before, a slice
// read such a payment unlocked, the repeal committed before the slice
// confirmed it, and the whole run failed with "confirmed N payments,
// expected M" (found by a probe: 9 failures in 9 rounds).
func TestSettlementWithResentOpenCardsAndRepeals(t *testing.T) {
	for round := 0; round < 3; round++ {
		// The last round resends without repealing: a resent open_card
		// that creates its payment after the record was matched meets the
		// record in the open pass, and the item says a POS opened the key,
		// not another record of the file.
		repeal := round < 2
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			e := newEnv(t)
			const n = 400
			recs := make([]mapfront.SettlementRecord, n)
			open := make([]*mapfront.OpenCardRequest, n)
			for i := range n {
				mobile, id, key := fmt.Sprintf("137%08d", i+1), stlID(fmt.Sprintf("110105199003%05d", i+1)), fmt.Sprintf("%06d", i+1)
				recs[i] = stlRec(int64(i+1), "T"+key, 150000, key, id, mobile, "1012")
				open[i] = &mapfront.OpenCardRequest{
					Origin:  mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op1"},
					BatchNo: "000001", TerminalOrderID: key, IDNumber: id, Mobile: mobile, ProductID: "1012",
					PaySum: 150000, HasPaySum: true, Referrer: "R1"}
			}
			e.dayOver(t, "20261126")
			var settleErr error
			var report *mapfront.BatchReport
			done := make(chan struct{})
			go func() {
				defer close(done)
				report, settleErr = e.submit("20261126", fmt.Sprint("f", round), false, recs, nil)
			}()
			// The POS traffic starts once the run applies (or has ended).
		wait:
			for {
				var st string
				if err := e.store.pool.QueryRow(e.ctx, `SELECT coalesce(max(status), '') FROM settlement_runs`).Scan(&st); err != nil {
					t.Fatal(err)
				}
				if st == "applying" || st == "settled" {
					break
				}
				select {
				case <-done:
					break wait
				case <-time.After(200 * time.Microsecond):
				}
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var internal []error
			const workers = 6
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < n; i += workers {
						select {
						case <-done:
							return
						default:
						}
						ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
						_, err := e.svc.OpenCard(ctx, open[i])
						if err == nil && repeal {
							_, err = e.svc.RepealCard(ctx, repealReq(open[i].TerminalOrderID))
						}
						cancel()
						if mapfront.ErrorCode(err) == mapfront.CodeInternal {
							mu.Lock()
							internal = append(internal, err)
							mu.Unlock()
						}
					}
				}()
			}
			<-done
			wg.Wait()
			if settleErr != nil {
				t.Fatalf("the settlement run failed: %v", settleErr)
			}
			for _, err := range internal {
				t.Errorf("a POS request answered 10000: %v", err)
			}
			// Every record is applied once: matched, opened or an item.
			items := e.scalar(t, `SELECT count(*) FROM settlement_exceptions WHERE business_date = '2026-11-26' AND line_no > 0`)
			if report.Matched+report.Opened+items != n {
				t.Errorf("matched %d + opened %d + items %d, want %d records", report.Matched, report.Opened, items, n)
			}
			if n := e.scalar(t, `SELECT count(*) FROM settlement_exceptions e JOIN card_payments p
    ON p.terminal_id = e.terminal_id AND p.batch_no = e.batch_no AND p.terminal_order_id = e.terminal_order_id
WHERE e.type = 'duplicate' AND p.source = 'pos' AND e.detail = '终端流水号已由另一条记录开卡'`); n != 0 {
				t.Errorf("%d items say another record opened a key a POS opened", n)
			}
			t.Logf("items naming a key a POS opened during the run: %d", e.scalar(t, `SELECT count(*) FROM settlement_exceptions
WHERE type = 'duplicate' AND detail LIKE '日切期间POS%'`))
			e.verify(t)
		})
	}
}
