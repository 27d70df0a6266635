package mapfront

import (
	"strconv"
	"time"
)

// OrderID is the one order-id formatter (SPEC section 4): 20 digits, the
// local date-time of t (14 digits) and the last 6 digits of seq, unique
// unless a million orders share a second. Card orders use it as it is; pay,
// cancel and undo orders carry the prefix "ud" (PayOrderID).
func OrderID(c Clock, t time.Time, seq int64) string {
	b := make([]byte, 0, 20)
	b = t.In(c.Zone).AppendFormat(b, "20060102150405")
	return string(appendPadded(b, seq%1_000_000, 6))
}

// PayOrderID is OrderID with the "ud" prefix of pay, cancel and undo orders.
func PayOrderID(c Clock, t time.Time, seq int64) string { return "ud" + OrderID(c, t, seq) }

// AccountID is a 16-digit account id (SPEC section 4): the 4-digit prefix (a
// product id, or CashPrefix), 11 digits of seq and a Luhn check digit.
func AccountID(prefix string, seq int64) string {
	b := append(make([]byte, 0, 16), prefix...)
	b = appendPadded(b, seq%100_000_000_000, 11)
	return string(append(b, luhn(b)))
}

func appendPadded(b []byte, n int64, width int) []byte {
	s := strconv.FormatInt(n, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// luhn returns the Luhn check digit of digits.
func luhn(digits []byte) byte {
	sum := 0
	double := true
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}
