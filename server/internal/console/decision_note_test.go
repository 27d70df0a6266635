package console_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// A supervisor's note typed over two lines in the proposals page's textarea
// (the browser sends CRLF) is one line in the decision, not a refusal
// (10001: a control character) that lost the decision (found by a review).
func TestDecisionNoteOverLines(t *testing.T) {
	s := newSystem(t)
	id := strconv.FormatInt(s.item.ID, 10)
	alice := newClient(t, s.url)
	alice.signIn("alice", s.password("alice"))
	alice.do("GET", "/exceptions/"+id, nil)
	if code, _, _ := alice.do("POST", "/exceptions/"+id+"/resolve", url.Values{"csrf": {alice.csrf}, "action": {"activate"}}); code != http.StatusSeeOther {
		t.Fatalf("resolve: %d", code)
	}
	ps, _ := s.store.ListProposals(s.ctx, mapfront.ProposalFilter{State: mapfront.ProposalPending})
	pid := strconv.FormatInt(ps[0].ID, 10)
	bob := newClient(t, s.url)
	bob.signIn("bob", s.password("bob"))
	bob.do("GET", "/proposals", nil)
	code, _, page := bob.do("POST", "/proposals/"+pid+"/approve", url.Values{"csrf": {bob.csrf}, "back": {"/proposals"}, "note": {"已核对POSP回单\r\n第二行"}})
	p, _ := s.store.GetProposal(s.ctx, ps[0].ID)
	t.Logf("approve with a two-line note: HTTP %d, proposal state %s", code, p.State)
	if m := regexp.MustCompile(`(?s)<main.*?</main>`).FindString(page); m != "" {
		t.Logf("page: %s", m)
	} else if i := strings.Index(page, "note"); i >= 0 {
		t.Logf("page: %s", page[max(0, i-300):min(len(page), i+300)])
	}
	_, _, after := bob.do("GET", "/proposals", nil)
	if m := regexp.MustCompile(`(?s)class="flash[^>]*>.*?<`).FindString(after); m != "" {
		t.Logf("flash: %s", m)
	} else if i := strings.Index(after, "note"); i >= 0 {
		t.Logf("after: %s", after[:min(len(after), 1500)])
	}
	if p.State != mapfront.ProposalApproved || p.DecisionNote != "已核对POSP回单 第二行" {
		t.Errorf("a two-line note: proposal %s, note %q; want approved with the note on one line", p.State, p.DecisionNote)
	}
}

// An incomplete_after_window item whose order had a payment confirmed by
// the file: its amount is the file-confirmed sum, shown as such in the queue
// and on its page, as the CLI shows it; it showed the price and "no file
// record" (found by a review).
func TestIncompleteItemAmounts(t *testing.T) {
	s := newSystem(t)
	zone := s.clock.now.Location()
	s.clock.set(time.Date(2026, 11, 27, 10, 0, 0, 0, zone))
	id3 := checkDigit("11010519900101009")
	if _, err := s.svc.OpenCard(s.ctx, &mapfront.OpenCardRequest{
		Origin:  mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op1"},
		BatchNo: "000002", TerminalOrderID: "000009", IDNumber: id3, Mobile: "13800000019", ProductID: "1012",
		PaySum: 50000, HasPaySum: true}); err != nil {
		t.Fatal(err)
	}
	s.clock.set(time.Date(2026, 11, 28, 0, 30, 0, 0, zone))
	rec := mapfront.SettlementRecord{LineNo: 1, TradeID: "T9", CardNo: "6225380083477614", Amount: 50000,
		TerminalOrderID: "000009", ReferenceNo: "152412390959", SellerID: "SH01", TerminalID: "POS01",
		BatchNo: "000002", TradeDate: "20261127", TradeTime: "102412", IDNumber: id3, Mobile: "13800000019",
		Referrer: "R1", ProductID: "1012"}
	sent := false
	if _, err := s.store.SubmitBatch(s.ctx, mapfront.BatchHeader{BusinessDate: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
		FileName: "20261127.txt", SHA256: strings.Repeat("cd", 32), RecordCount: 1, TotalFen: 50000},
		func() (*mapfront.BatchChunk, error) {
			if sent {
				return nil, io.EOF
			}
			sent = true
			return &mapfront.BatchChunk{Records: []mapfront.SettlementRecord{rec}}, nil
		}); err != nil {
		t.Fatal(err)
	}
	s.clock.set(time.Date(2026, 12, 10, 0, 30, 0, 0, zone))
	if _, err := s.store.RunDaily(s.ctx, 0); err != nil {
		t.Fatal(err)
	}
	items, _ := s.store.ListExceptions(s.ctx, mapfront.ExceptionFilter{State: "open"})
	var inc *mapfront.Exception
	for i := range items {
		if items[i].Type == mapfront.ExIncomplete && items[i].Amount > 0 {
			inc = &items[i]
		}
	}
	if inc == nil {
		t.Fatalf("no incomplete item with a confirmed amount: %+v", items)
	}
	t.Logf("stored: amount %d (file-confirmed) expected %d detail %s", inc.Amount, inc.Expected, inc.Detail)
	alice := newClient(t, s.url)
	alice.signIn("alice", s.password("alice"))
	_, _, page := alice.do("GET", "/exceptions", nil)
	row := regexp.MustCompile(`(?s)<tr><td><a href="/exceptions/` + strconv.FormatInt(inc.ID, 10) + `">.*?</tr>`).FindString(page)
	t.Logf("queue row: %s", row)
	_, _, page = alice.do("GET", "/exceptions/"+strconv.FormatInt(inc.ID, 10), nil)
	t.Logf("item page amount row: %s", regexp.MustCompile(`<tr><th>文件金额.*?</tr>`).FindString(page))
	if strings.Contains(page, "文件中没有记录") || !strings.Contains(page, mapfront.FormatYuan(inc.Amount)+" 元（文件已对账）") {
		t.Errorf("item page: want the file-confirmed %s:\n%s", mapfront.FormatYuan(inc.Amount),
			regexp.MustCompile(`<tr><th>文件金额.*?</tr>`).FindString(page))
	}
	if !strings.Contains(row, `<span title="文件已对账的金额">`+mapfront.FormatYuan(inc.Amount)+`</span>`) {
		t.Errorf("queue row: want the file-confirmed %s:\n%s", mapfront.FormatYuan(inc.Amount), row)
	}
}
