package load

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"

	"mapfront/bench/internal/pinblock"
)

func TestWriteBodies(t *testing.T) {
	pins, err := pinblock.NewBuilderHex("0123456789ABCDEFFEDCBA9876543210")
	if err != nil {
		t.Fatal(err)
	}
	cfg := BodiesConfig{Customers: 10, Files: 2, PerFile: 50, Password: "258036", PINs: pins,
		Terminals: 5, BatchNo: "B1", Seed: 7, MaxSum: 9}
	dir := t.TempDir()
	if err := WriteBodies(cfg, dir); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	wantTerminals := []map[string]bool{
		{"BENCH0001": true, "BENCH0003": true, "BENCH0005": true},
		{"BENCH0002": true, "BENCH0004": true},
	}
	for i := 0; i < cfg.Files; i++ {
		f, err := os.Open(BodyFile(dir, i))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		n := 0
		seen := map[string]bool{}
		for sc.Scan() {
			n++
			var b payBody
			if err := json.Unmarshal(sc.Bytes(), &b); err != nil {
				t.Fatalf("file %d line %d: %v", i, n, err)
			}
			o := b.Order
			key := o.TerminalID + "/" + o.BatchNo + "/" + o.TerminalOrderID
			if keys[key] {
				t.Errorf("terminal key %s twice", key)
			}
			keys[key] = true
			if !wantTerminals[i][o.TerminalID] {
				t.Errorf("file %d has terminal %s", i, o.TerminalID)
			}
			seen[o.TerminalID] = true
			want, _ := pins.Build("258036", o.ConsumerID)
			if o.PaymentCodeDES != want || o.BatchNo != "B1" || o.Sum < 1 || o.Sum > 9 || o.ProductPrice != o.Sum ||
				o.SellerID != BenchSeller || o.StoreID != BenchStore {
				t.Errorf("file %d line %d: %+v", i, n, o)
			}
		}
		f.Close()
		if n != cfg.PerFile || len(seen) != len(wantTerminals[i]) {
			t.Errorf("file %d: %d bodies on %d terminals, want %d on %d", i, n, len(seen), cfg.PerFile, len(wantTerminals[i]))
		}
	}

	bad := cfg
	bad.Files = 6 // more files than terminals: two threads would share a terminal
	if err := WriteBodies(bad, dir); err == nil {
		t.Error("6 files on 5 terminals accepted")
	}
}
