package postgres

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// In one group-commit batch, five wrong passwords of one customer:
// four 10007 and one 10008 (the one that locks), all five on the terminal's
// wrong-PIN budget; their repeats answer the same and count nothing.
func TestBatchFifthWrongPasswordCountsOnce(t *testing.T) {
	e, sizes := budgetGroupEnv(t, mapfront.GroupConfig{MaxBatch: 5, MaxWait: 2 * time.Second})
	mobiles := pinCustomers(t, e, 1)
	for round := 0; round < 2; round++ {
		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = e.svc.Pay(e.ctx, payReq(t, mobiles[0], "000000", fmt.Sprintf("g%d", i), 100))
			}()
		}
		wg.Wait()
		n7, n8 := 0, 0
		for _, err := range errs {
			switch mapfront.ErrorCode(err) {
			case mapfront.CodeWrongPassword:
				n7++
			case mapfront.CodePasswordLocked:
				n8++
			default:
				t.Errorf("round %d: %v", round, err)
			}
		}
		f, _ := e.terminalGuard(t, "ZJ000001")
		t.Logf("round %d: %d×10007 %d×10008, terminal failures %d, customer %d, batches %v", round, n7, n8, f, e.customerFailures(t, mobiles[0]), sizes.sizes)
		if n7 != 4 || n8 != 1 || f != 5 {
			t.Errorf("round %d: %d×10007 %d×10008 terminal %d; want 4, 1, 5", round, n7, n8, f)
		}
	}
}
