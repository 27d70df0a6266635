package postgres

import (
	"io"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// The stream of a settlement file arrives over gRPC at the client's pace,
// and staging's one COPY waits for it: a stream that takes longer than the
// requests' statement timeout (5 s by default) still settles (the COPY runs
// under the settlement's own timeout). Found by review: the COPY ran with
// the pool's timeout and a slow stream failed with 10018, every time.
func TestSettleSlowStream(t *testing.T) {
	e := newEnv(t)
	var recs []mapfront.SettlementRecord
	for i := 0; i < 4; i++ {
		id := stlID("1101051990010109" + string(rune('1'+i)))
		mobile := "1380000009" + string(rune('1'+i))
		term := "00009" + string(rune('1'+i))
		stlOpen(t, e, mobile, id, "1012", term, 150000)
		recs = append(recs, stlRec(int64(i+1), "TS"+term, 150000, term, id, mobile, "1012"))
	}
	e.dayOver(t, "20261126")
	d, _ := mapfront.ParseDate("20261126")
	h := mapfront.BatchHeader{BusinessDate: d, FileName: "slow.txt", SHA256: stlSHA("slow"), RecordCount: 4, TotalFen: 600000}
	i := 0
	start := time.Now()
	r, err := e.store.SubmitBatch(e.ctx, h, func() (*mapfront.BatchChunk, error) {
		if i >= len(recs) {
			return nil, io.EOF
		}
		if i > 0 {
			time.Sleep(1800 * time.Millisecond) // the client's next chunk is on its way
		}
		c := &mapfront.BatchChunk{Records: []mapfront.SettlementRecord{recs[i]}}
		i++
		return c, nil
	})
	t.Logf("after %v: err=%v", time.Since(start), err)
	if err != nil || r.Status != "settled" || r.Activated != 4 {
		t.Fatalf("slow stream: %v %+v", err, r)
	}
}
