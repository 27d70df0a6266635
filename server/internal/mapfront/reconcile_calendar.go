package mapfront

import (
	"fmt"
	"time"

	"mapfront/internal/businessday"
)

// This file holds the settlement rules that look at the calendar and at the
// file as a whole (SPEC section 6, Dates; issue 13 and 15): whether a file
// is readable enough to settle, whether a record's time lies within its
// batch's business day, and which earlier payments a record may confirm.

// Defaults of the settlement settings a submission carries.
const (
	// DefaultMaxBadPermille: a file with more than half its lines bad is
	// not a settled day.
	DefaultMaxBadPermille = 500
	// DefaultDateTolerance widens a business day on both sides for the
	// POSP's clock and cutover, which are not ours.
	DefaultDateTolerance = 15 * time.Minute
	// DefaultLookbackDays is how many business days back a record may
	// confirm a payment left missing_from_file.
	DefaultLookbackDays = 7
)

// SettleSettings are a site's settlement settings (SPEC section 6), sent
// by the settlement command with each submission.
type SettleSettings struct {
	// MaxBadPermille: above this share of bad lines, in thousandths of the
	// file's lines, the file is rejected (RejectFile).
	MaxBadPermille int
	// DateTolerance widens the batch's business day on both sides for the
	// record times (CheckRecordDate).
	DateTolerance time.Duration
	// LookbackDays: how many business days back a record may confirm a
	// payment left missing_from_file (CrossDay).
	LookbackDays int
}

// DefaultSettings returns the defaults of SettleSettings.
func DefaultSettings() SettleSettings {
	return SettleSettings{MaxBadPermille: DefaultMaxBadPermille, DateTolerance: DefaultDateTolerance, LookbackDays: DefaultLookbackDays}
}

// Validate checks the settings' ranges. Errors: 10001.
func (s SettleSettings) Validate() error {
	switch {
	case s.MaxBadPermille < 0 || s.MaxBadPermille > 1000:
		return Invalid("max_bad_permille", "须在0到1000之间")
	case s.DateTolerance < 0 || s.DateTolerance > 12*time.Hour:
		return Invalid("date_tolerance_seconds", "须在0到12小时之间")
	case s.LookbackDays < 0 || s.LookbackDays > 366:
		return Invalid("lookback_days", "须在0到366之间")
	}
	return nil
}

// SystemOperator is the operator of the items settlement resolves itself.
const SystemOperator = "system"

// RejectFile decides whether a file of lines data lines, bad of them
// unreadable, is rejected as mostly unreadable (SPEC section 6, issue 15):
// always when it has lines and none is a record, and when bad lines are
// more than maxBadPermille thousandths of the lines. An empty file is a day
// without sales, not a rejected one. The reason says both figures.
func RejectFile(lines, bad int64, maxBadPermille int) (bool, string) {
	switch {
	case lines == 0:
		return false, ""
	case bad >= lines:
		return true, fmt.Sprintf("文件%d行全部无法识别，没有一条记录", lines)
	case bad*1000 > int64(maxBadPermille)*lines:
		return true, fmt.Sprintf("文件%d行中%d行无法识别，超过上限千分之%d", lines, bad, maxBadPermille)
	}
	return false, ""
}

// RecordTime reads a record's 交易日期 (yyyyMMdd) and 交易时间 (HHmmss) in
// the business zone.
func RecordTime(zone *time.Location, date, clock string) (time.Time, error) {
	t, err := time.ParseInLocation("20060102150405", date+clock, zone)
	if err != nil {
		return time.Time{}, fmt.Errorf("交易日期时间%s %s无效", date, clock)
	}
	return t, nil
}

// CheckRecordDate is the date rule of SPEC section 6: the record's time must
// fall within the batch's business day widened by tolerance around both
// cutovers; otherwise the record is a date_mismatch item, applied to
// nothing. batch is a business date at midnight UTC.
func CheckRecordDate(rule businessday.Rule, batch time.Time, tradeDate, tradeTime string, tolerance time.Duration) (Decision, bool) {
	t, err := RecordTime(rule.Zone, tradeDate, tradeTime)
	if err != nil {
		return queue(ExDateMismatch, 0, "%v", err), false
	}
	d := businessday.DateOfTime(batch)
	if rule.Contains(d, t, tolerance) {
		return Decision{}, true
	}
	return queue(ExDateMismatch, 0, "交易时间%s属于营业日%s，不在批次营业日%s（容差%v）内",
		t.Format("2006-01-02 15:04:05"), rule.DateOf(t), d, tolerance), false
}

// CrossDay decides whether a record of batch date batch may confirm a
// payment of business date paid (SPEC section 6, Dates): a payment of the
// same day, or of the day before or after (the POSP's cutover is not ours:
// a sale at 23:59 of our D-1 can be in the POSP's file for D), or one left
// missing_from_file within lookbackDays business days before the batch.
// Otherwise the record is a date_mismatch item naming the payment's date.
func CrossDay(batch, paid time.Time, missingOpen bool, lookbackDays int) (Decision, bool) {
	days := int(batch.Sub(paid).Hours() / 24)
	switch {
	case days >= -1 && days <= 1:
		return Decision{}, true
	case days > 1 && days <= lookbackDays && missingOpen:
		return Decision{}, true
	}
	return queue(ExDateMismatch, 0, "对应的开卡付款属于营业日%s，距批次营业日%s超过%d个营业日回溯期且未记为缺失",
		DateString(paid), DateString(batch), lookbackDays), false
}

// AutoResolveNote is the note the system leaves on a missing_from_file item
// that a later batch's record confirmed.
func AutoResolveNote(batch time.Time, runID, lineNo int64, tradeID string) string {
	return fmt.Sprintf("已由%s日切批次（运行%d，第%d行，交易id %s）对账确认，系统自动处理", DateString(batch), runID, lineNo, tradeID)
}
