package idmask

import "testing"

func TestDigitRuns(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"11010519491231002X", "110105********002X"},
		{"id 110105194912310038, card 6225380083477614.", "id 110105********0038, card 622538******7614."},
		{"mobile 13912345678 seller 123456789012345", "mobile 13912345678 seller 123456789012345"}, // 11 and 15 digits
		{"trade 1234567890123456789012345678901234567890", "trade 123456******************************7890"},
		// An ID number fused with the mobile number after it (a lost '|'),
		// and an ID number ending in X followed by one.
		{"T1|235959|11010519491231003813912345678|1010", "T1|235959|110105*******************5678|1010"},
		{"11010519491231002X13912345678", "110105********002X13912345678"},
		{"19 digits 1234567890123456789", "19 digits 123456*********6789"},
		{"", ""},
	} {
		if got := DigitRuns(c.in); got != c.want {
			t.Errorf("DigitRuns(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := Value("12345"); got != "*****" {
		t.Errorf("Value of a short number: %q", got)
	}
}
