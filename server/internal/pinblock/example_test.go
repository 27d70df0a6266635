package pinblock_test

import (
	"encoding/hex"
	"fmt"

	"mapfront/server/internal/pinblock"
)

// The known answer of SPEC section 5, as the pay flow uses the package: the
// terminal's TPK (opened from the registry) and its legacy flag choose the
// keying; the consumerId of the request is the PAN.
func ExampleOpen() {
	tpk, _ := hex.DecodeString("E8DD93B8AF13999C7644C0FE11F5D2A7")
	pin, err := pinblock.Open("ABC5E23474210DAC", "4451234567890129", tpk, pinblock.DoubleLength)
	fmt.Println(pin, err)
	// Output: 123456 <nil>
}

func ExampleKCV() {
	tpk, _ := hex.DecodeString("0123456789ABCDEFFEDCBA9876543210")
	kcv, err := pinblock.KCV(tpk, pinblock.DoubleLength)
	fmt.Println(kcv, err)
	// Output: 08D7B4 <nil>
}
