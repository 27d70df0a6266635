package idmask

import "testing"

func TestDigitRuns(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"11010519491231002X", "110105********002X"},
		{"id 110105194912310038, card 6225380083477614.", "id 110105********0038, card 622538******7614."},
		{"mobile 13912345678 seller 123456789012345", "mobile 13912345678 seller 123456789012345"}, // 11 and 15 digits
		{"trade 1234567890123456789012345678901234567890", "trade 1234567890123456789012345678901234567890"},
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
