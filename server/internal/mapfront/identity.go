package mapfront

import "strings"

// NormalizeIDNumber upper-cases the check character: a lower-case x is read
// as X (SPEC section 4).
func NormalizeIDNumber(id string) string { return strings.ToUpper(id) }

// ValidIDNumber reports whether id is an 18-character resident ID number
// whose last character is the GB 11643-1999 (ISO 7064 MOD 11-2) check
// character of the first 17 digits.
func ValidIDNumber(id string) bool {
	if len(id) != 18 {
		return false
	}
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := 0; i < 17; i++ {
		c := id[i]
		if c < '0' || c > '9' {
			return false
		}
		sum += int(c-'0') * weights[i]
	}
	return id[17] == "10X98765432"[sum%11]
}

// ValidMobile reports whether m is a mainland mobile number: 11 digits
// beginning with 1.
func ValidMobile(m string) bool {
	return len(m) == 11 && m[0] == '1' && allDigits(m)
}

// ValidAccountID reports whether a is 16 digits.
func ValidAccountID(a string) bool { return len(a) == 16 && allDigits(a) }

// ValidProductID reports whether p is 4 digits.
func ValidProductID(p string) bool { return len(p) == 4 && allDigits(p) }

// MaskIDNumber keeps the first 6 and last 4 characters (SPEC section 7).
func MaskIDNumber(id string) string {
	if len(id) <= 10 {
		return strings.Repeat("*", len(id))
	}
	return id[:6] + strings.Repeat("*", len(id)-10) + id[len(id)-4:]
}

// MaskMobile keeps the first 3 and last 4 digits of a mobile number.
func MaskMobile(m string) string {
	if len(m) != 11 {
		return strings.Repeat("*", len(m))
	}
	return m[:3] + "****" + m[7:]
}

// DisplayWidth counts display columns as a POS screen does: a character
// outside ASCII (a Chinese character) takes two.
func DisplayWidth(s string) int {
	w := 0
	for _, r := range s {
		if r < 0x80 {
			w++
		} else {
			w += 2
		}
	}
	return w
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
