package mapfront

import (
	"strings"
	"testing"
	"time"
)

func date(s string) time.Time {
	d, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

func TestClassify(t *testing.T) {
	rec := SettlementRecord{LineNo: 3, TradeID: "T1", Amount: 150000, SellerID: "SH01", TerminalID: "POS01",
		BatchNo: "1", TerminalOrderID: "9"}
	found := Match{Found: true, SellerID: "SH01", PaySum: 150000}
	cases := []struct {
		name    string
		dup     bool
		prior   Prior
		match   Match
		verdict Verdict
		typ     ExceptionType
	}{
		{"same amount confirms", false, Prior{}, found, Confirm, ""},
		{"other amount", false, Prior{}, Match{Found: true, SellerID: "SH01", PaySum: 149900}, Queue, ExAmountMismatch},
		{"not found opens", false, Prior{}, Match{}, Open, ""},
		{"twice in the file", true, Prior{}, found, Queue, ExDuplicate},
		{"applied by another date", false, Prior{Applied: true, Amount: 150000, Date: date("20261125")}, found, Queue, ExDuplicate},
		{"applied by this date before", false, Prior{Applied: true, SameDate: true, Amount: 150000}, found, AlreadyApplied, ""},
		{"re-run with another amount", false, Prior{Applied: true, SameDate: true, Amount: 100}, found, Queue, ExAmountMismatch},
		{"key of another seller", false, Prior{}, Match{Found: true, SellerID: "SH02", PaySum: 150000}, Queue, ExNotOpenable},
		{"payment repealed", false, Prior{}, Match{Found: true, SellerID: "SH01", PaySum: 150000, Repealed: true}, Queue, ExOverpaid},
		{"payment refunded by people", false, Prior{}, Match{Found: true, SellerID: "SH01", PaySum: 150000, Refunded: true}, Queue, ExOverpaid},
		{"payment settled by another record", false, Prior{}, Match{Found: true, SellerID: "SH01", PaySum: 150000, Settled: true, TradeID: "T0"}, Queue, ExDuplicate},
	}
	for _, c := range cases {
		d := Classify(&rec, c.dup, c.prior, c.match)
		if d.Verdict != c.verdict || d.Type != c.typ {
			t.Errorf("%s: got %v %q, want %v %q", c.name, d.Verdict, d.Type, c.verdict, c.typ)
		}
		if d.Verdict == Queue && d.Detail == "" {
			t.Errorf("%s: no detail", c.name)
		}
	}
	if d := Classify(&rec, false, Prior{}, Match{Found: true, SellerID: "SH01", PaySum: 149900}); d.Expected != 149900 {
		t.Errorf("amount mismatch expected %d, want the payment's 149900", d.Expected)
	}
}

func TestDecideOrder(t *testing.T) {
	cases := []struct {
		price, confirmed int64
		credited         bool
		want             OrderVerdict
	}{
		{450000, 450000, false, OrderActivate},
		{450000, 450000, true, OrderVerify},
		{450000, 225000, false, OrderWait},
		{450000, 0, true, OrderWait},
		{450000, 450001, false, OrderOverpaid},
		{450000, 900000, true, OrderOverpaid},
	}
	for _, c := range cases {
		if got := DecideOrder(c.price, c.confirmed, c.credited); got != c.want {
			t.Errorf("DecideOrder(%d, %d, %v) = %v, want %v", c.price, c.confirmed, c.credited, got, c.want)
		}
	}
}

// SPEC: a card activated on Jan 31 releases on the last day of February,
// then on Mar 31.
func TestDueParts(t *testing.T) {
	act := date("20270131")
	cases := []struct {
		today    string
		released int
		want     []int
	}{
		{"20270131", 1, nil},
		{"20270227", 1, nil},
		{"20270228", 1, []int{2}},
		{"20270228", 2, nil},
		{"20270330", 2, nil},
		{"20270331", 2, []int{3}},
		{"20270331", 1, []int{2, 3}}, // RunDaily missed February: both now, in order
		{"20271231", 3, nil},
	}
	for _, c := range cases {
		got := DueParts(act, 3, c.released, date(c.today))
		if len(got) != len(c.want) {
			t.Errorf("today %s released %d: %v, want %v", c.today, c.released, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("today %s released %d: %v, want %v", c.today, c.released, got, c.want)
			}
		}
	}
	if got := DueParts(date("20280131"), 2, 1, date("20280229")); len(got) != 1 {
		t.Errorf("leap year: %v, want part 2 on Feb 29", got)
	}
}

func TestWindowCutoff(t *testing.T) {
	if got := WindowCutoff(date("20261203"), 0); !got.Equal(date("20261126")) {
		t.Errorf("default window cutoff %s, want 20261126", DateString(got))
	}
	if got := WindowCutoff(date("20261203"), 2*24*time.Hour); !got.Equal(date("20261201")) {
		t.Errorf("2-day window cutoff %s, want 20261201", DateString(got))
	}
}

func TestRecordCheck(t *testing.T) {
	good := SettlementRecord{LineNo: 1, TradeID: "2020030744015541000101023952001524000539", Amount: 1,
		SellerID: "307440155410001", TerminalID: "01023952", BatchNo: "001524", TerminalOrderID: "000539"}
	if err := good.Check(); err != nil {
		t.Fatalf("document's sample: %v", err)
	}
	for name, mutate := range map[string]func(*SettlementRecord){
		"no trade id":   func(r *SettlementRecord) { r.TradeID = "" },
		"zero amount":   func(r *SettlementRecord) { r.Amount = 0 },
		"huge amount":   func(r *SettlementRecord) { r.Amount = MaxAmount + 1 },
		"no terminal":   func(r *SettlementRecord) { r.TerminalID = "" },
		"long terminal": func(r *SettlementRecord) { r.TerminalID = strings.Repeat("1", 33) },
		"bad utf8":      func(r *SettlementRecord) { r.Referrer = "\xff" },
		"line zero":     func(r *SettlementRecord) { r.LineNo = 0 },
	} {
		r := good
		mutate(&r)
		if r.Check() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBatchHeaderValidate(t *testing.T) {
	h := BatchHeader{BusinessDate: date("20261126"), SHA256: strings.Repeat("AB", 32)}
	if err := h.Validate(); err != nil || h.SHA256 != strings.Repeat("ab", 32) {
		t.Fatalf("valid header: %v %s", err, h.SHA256)
	}
	bad := h
	bad.SHA256 = "abc"
	if ErrorCode(bad.Validate()) != CodeMalformed {
		t.Error("short digest accepted")
	}
	bad = h
	bad.BusinessDate = time.Time{}
	if ErrorCode(bad.Validate()) != CodeMalformed {
		t.Error("missing date accepted")
	}
	bad = h
	bad.FileName = "20261126\x00.txt"
	if ErrorCode(bad.Validate()) != CodeMalformed {
		t.Error("a file name with U+0000 accepted (PostgreSQL refuses it: 10000)")
	}
}

func TestResolutionValidate(t *testing.T) {
	ok := []Resolution{
		{ID: 1, Action: ActionIgnore, Operator: "ops"},
		{ID: 1, Action: ActionActivate, Operator: "ops"},
		{ID: 1, Action: ActionRefundOwed, Operator: "ops", Note: "退款"},
		{ID: 1, Action: ActionLinkOrder, Operator: "ops", OrderID: "20261126100000000001"},
	}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := []Resolution{
		{Action: ActionIgnore, Operator: "ops"},
		{ID: 1, Action: "approve", Operator: "ops"},
		{ID: 1, Action: ActionIgnore},
		{ID: 1, Action: ActionLinkOrder, Operator: "ops"},
		{ID: 1, Action: ActionIgnore, Operator: "ops", Note: strings.Repeat("长", 257)},
	}
	for _, r := range bad {
		if ErrorCode(r.Validate()) != CodeMalformed {
			t.Errorf("%+v accepted", r)
		}
	}
}
