package identity

import (
	"strings"
	"testing"
)

// Known valid numbers: the demo customer of SPEC section 8 and the standard's
// own example.
func TestCheckCharKnown(t *testing.T) {
	for _, id := range []string{"11010519491231002X", "440524188001010014", "11010219840406970X"} {
		if got := CheckChar(id[:17]); got != id[17] {
			t.Errorf("CheckChar(%s) = %c, want %c", id[:17], got, id[17])
		}
	}
}

// Every derived ID is 18 characters with a correct check character, and
// both derivations are one-to-one over a range of indices.
func TestDerived(t *testing.T) {
	seenM, seenID := map[string]bool{}, map[string]bool{}
	for _, i := range []int{0, 1, 999, 1000, 12345, 99999, 100000, MaxCustomers - 1} {
		m, id := Mobile(i), IDNumber(i)
		if len(m) != 11 || m[0] != '1' || !strings.HasPrefix(m, "150") {
			t.Errorf("Mobile(%d) = %s", i, m)
		}
		if len(id) != 18 || CheckChar(id[:17]) != id[17] {
			t.Errorf("IDNumber(%d) = %s: bad check character", i, id)
		}
		if seenM[m] || seenID[id] {
			t.Errorf("index %d repeats %s / %s", i, m, id)
		}
		seenM[m], seenID[id] = true, true
	}
	if got := Mobile(42); got != "15000000042" {
		t.Errorf("Mobile(42) = %s", got)
	}
	if got := IDNumber(0); got[:14] != "11010519600101" {
		t.Errorf("IDNumber(0) = %s", got)
	}
	// Birth dates stay in the past century's plausible range.
	if y := IDNumber(MaxCustomers - 1)[6:10]; y > "1990" {
		t.Errorf("last birth year %s", y)
	}
}

func TestOutOfRange(t *testing.T) {
	for _, i := range []int{-1, MaxCustomers} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Mobile(%d) did not panic", i)
				}
			}()
			Mobile(i)
		}()
	}
}
