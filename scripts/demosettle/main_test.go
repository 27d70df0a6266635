package main

import (
	"strings"
	"testing"
	"time"
)

func TestNextCutover(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04:05", s, sh)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		now    string
		hh, mm int
		want   string
	}{
		{"2026-11-29 22:36:33", 22, 39, "2026-11-29 22:39:00"},
		{"2026-11-29 22:39:00", 22, 39, "2026-11-30 22:39:00"}, // at the cutover the next day has begun
		{"2026-11-29 23:59:30", 0, 1, "2026-11-30 00:01:00"},
		{"2026-12-31 23:00:00", 0, 0, "2027-01-01 00:00:00"},
	} {
		if got := nextCutover(at(c.now), c.hh, c.mm); !got.Equal(at(c.want)) {
			t.Errorf("nextCutover(%s, %02d:%02d) = %s, want %s", c.now, c.hh, c.mm, got, c.want)
		}
	}
}

// TestFileLine: a record has the 14 fields of the partner's file, the amount
// in yuan with two decimals, the business date and the terminal key.
func TestFileLine(t *testing.T) {
	line := strings.Join([]string{"", "", "", "000002", "", "SH01", "POS01", "223633", "", "", gbID("31010119850262993"), "13695962993", "", "1010"}, "|")
	got := fileLine(line, "20261129", 2, 200005, time.Date(2026, 11, 29, 22, 36, 33, 0, time.UTC))
	f := strings.Split(got, "|")
	if len(f) != 14 || f[0] != "202611292236330002" || f[2] != "2000.05" || f[3] != "000002" || f[7] != "223633" ||
		f[8] != "20261129" || f[9] != "223633" || f[13] != "1010" {
		t.Errorf("fileLine: %s", got)
	}
}

func TestGBID(t *testing.T) {
	// The demo customer's ID (SPEC section 8) ends in its check character X.
	if got := gbID("11010519491231002"); got != "11010519491231002X" {
		t.Errorf("gbID: %s", got)
	}
}

// The file is shown with its ID numbers masked, the header and the other
// fields as they are.
func TestMaskIDs(t *testing.T) {
	id := gbID("31010119850262993")
	line := strings.Join([]string{"t1", "6225380083477614", "2000.00", "000002", "r", "SH01", "POS01", "223633", "20261126",
		"101010", id, "13695962993", "", "1010"}, "|")
	header := "交易id|卡号|金额|流水号|参考号|商户号|终端号|批次号|交易日期|交易时间|身份证号|手机号|推荐人id|产品编号"
	got := maskIDs(header + "\n" + line + "\n")
	want := header + "\n" + strings.Replace(line, id, id[:6]+"********"+id[14:], 1) + "\n"
	if got != want || strings.Contains(got, id) {
		t.Errorf("maskIDs:\n%s\nwant\n%s", got, want)
	}
}
