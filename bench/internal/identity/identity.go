// Package identity derives the bench customers from their index: a mobile
// number and a resident ID number with a correct GB 11643 check character.
// Everything is a pure function of the index, so provisioning can be re-run
// and the load generator finds the same customers without a list.
package identity

import (
	"fmt"
	"time"
)

// MaxCustomers bounds the index: the mobile numbers have 8 free digits, and
// the birth dates of the ID numbers must stay plausible (see IDNumber).
const MaxCustomers = 10_000_000

// mobilePrefix puts every bench customer in one recognisable range (150...),
// away from the demo customer 13912345678.
const mobilePrefix = "150"

// Mobile is the mobile number of customer i (0 <= i < MaxCustomers):
// 150 followed by i in 8 digits.
func Mobile(i int) string {
	if i < 0 || i >= MaxCustomers {
		panic(fmt.Sprintf("identity: customer index %d out of range", i))
	}
	return fmt.Sprintf("%s%08d", mobilePrefix, i)
}

// region is the administrative division code of the ID numbers (北京市朝阳区).
const region = "110105"

// birthBase is the birth date of customer 0; each thousand customers are born
// one day later, so MaxCustomers ends in 1987.
var birthBase = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)

// IDNumber is the 18-character resident ID number of customer i: region,
// birth date (yyyyMMdd), a 3-digit sequence (i mod 1000), check character.
func IDNumber(i int) string {
	if i < 0 || i >= MaxCustomers {
		panic(fmt.Sprintf("identity: customer index %d out of range", i))
	}
	birth := birthBase.AddDate(0, 0, i/1000).Format("20060102")
	body := fmt.Sprintf("%s%s%03d", region, birth, i%1000)
	return body + string(CheckChar(body))
}

// weights of ISO 7064 MOD 11-2 over the 17 body digits (2^(17-k) mod 11).
var weights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// CheckChar is the GB 11643-1999 check character of the 17-digit body: the
// weighted sum mod 11 indexes "10X98765432". It panics on a body that is not
// 17 digits, which only a programming error can produce here.
func CheckChar(body string) byte {
	if len(body) != 17 {
		panic("identity: ID body must be 17 digits")
	}
	sum := 0
	for i := 0; i < 17; i++ {
		c := body[i]
		if c < '0' || c > '9' {
			panic("identity: ID body must be 17 digits")
		}
		sum += int(c-'0') * weights[i]
	}
	return "10X98765432"[sum%11]
}
