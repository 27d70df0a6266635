package postgres

import (
	"bytes"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// TestFlatArraysEncodeAsPgx: the flat arrays put the same bytes on the wire
// as pgx's own slice encoding, for each element type and the column types
// they are passed for, in both formats: nil slices (NULL), empty slices, nil
// []byte elements (NULL elements), escapes, zones; and they allocate a
// constant number of times, not one per element.
func TestFlatArraysEncodeAsPgx(t *testing.T) {
	zone := time.FixedZone("CST", 8*3600)
	at := time.Date(2026, 11, 29, 23, 59, 59, 123456000, zone)
	cases := []struct {
		oid   uint32
		value any
	}{
		{pgtype.TextArrayOID, []string{"a", "", `quo"te`, `back\slash`, "{brace}", "NULL", "中文", "with space,comma"}},
		{pgtype.TextArrayOID, []string{}},
		{pgtype.TextArrayOID, []string(nil)},
		{pgtype.VarcharArrayOID, []string{"x", "y"}},
		{pgtype.Int8ArrayOID, []int64{0, -1, 1 << 40, -(1 << 62), 255, 256}},
		{pgtype.Int8ArrayOID, []int64(nil)},
		{pgtype.Int4ArrayOID, []int64{0, 7, -7}},
		{pgtype.ByteaArrayOID, [][]byte{{1, 2, 3}, nil, {}, []byte("x")}},
		{pgtype.ByteaArrayOID, [][]byte(nil)},
		{pgtype.TimestamptzArrayOID, []time.Time{at, at.UTC(), {}}},
		{pgtype.TimestampArrayOID, []time.Time{at}},
		{pgtype.DateArrayOID, []time.Time{at, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{pgtype.TimestamptzArrayOID, []time.Time(nil)},
	}
	flatMap, pgxMap := pgtype.NewMap(), pgtype.NewMap()
	registerFlatArrays(flatMap)
	for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
		for _, c := range cases {
			want, werr := pgxMap.Encode(c.oid, format, c.value, nil)
			got, gerr := flatMap.Encode(c.oid, format, c.value, nil)
			if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Errorf("oid %d format %d %#v:\n got %q (%v)\nwant %q (%v)", c.oid, format, c.value, got, gerr, want, werr)
			}
		}
	}
	long := make([]string, 64)
	for i := range long {
		long[i] = "element"
	}
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := flatMap.Encode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, long, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 4 {
		t.Errorf("%v allocations to encode 64 strings, want a few (not one per element)", allocs)
	}
	if pgxAllocs := testing.AllocsPerRun(100, func() {
		_, _ = pgxMap.Encode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, long, buf)
	}); pgxAllocs < 64 {
		t.Errorf("pgx's own encoding took %v allocations for 64 strings: the comparison above no longer shows what it did", pgxAllocs)
	}
}
