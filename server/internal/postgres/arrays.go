package postgres

import (
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// Array parameters without a heap allocation per element.
//
// pgx encodes a Go slice parameter ([]string for text[], []int64 for
// bigint[], ...) through pgtype.FlatArray, whose Index boxes each element
// into an interface: one allocation per element of every array (a pay
// batch's write passes some twenty arrays of a row per pay; measured: 30 of
// the server's 340 allocations per pay). The flat arrays here hand pgx a
// pointer to each element instead, of a type that implements the value
// interface the element's codec already accepts (TextValuer, Int64Valuer,
// BytesValuer, the time valuers), so the element needs no allocation. The
// bytes on the wire are the same as pgx's own (TestFlatArraysEncodeAsPgx):
// a nil slice is NULL, a nil []byte element is a NULL element. A slice of any
// other type, or for a column type whose codec does not accept these
// valuers, is left to pgx as before.

// registerFlatArrays puts the flat arrays ahead of pgx's own slice
// encoding in m (a connection's type map: pgxpool's AfterConnect).
func registerFlatArrays(m *pgtype.Map) {
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapFlatArray}, m.TryWrapEncodePlanFuncs...)
}

// tryWrapFlatArray is a pgtype.TryWrapEncodePlanFunc for the slices above.
func tryWrapFlatArray(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	if a := flat(value); a != nil {
		return &wrapFlat{}, a, true
	}
	return nil, nil, false
}

// flat is value as its flat array, or nil for any other type.
func flat(value any) pgtype.ArrayGetter {
	switch v := value.(type) {
	case []string:
		return textArray(v)
	case []int64:
		return int8Array(v)
	case [][]byte:
		return byteaArray(v)
	case []time.Time:
		return timeArray(v)
	}
	return nil
}

// wrapFlat encodes a slice as its flat array with the next plan.
type wrapFlat struct{ next pgtype.EncodePlan }

func (p *wrapFlat) SetNext(next pgtype.EncodePlan) { p.next = next }

func (p *wrapFlat) Encode(value any, buf []byte) ([]byte, error) {
	return p.next.Encode(flat(value), buf)
}

// dims is the one dimension of a flat array of n elements; nil (NULL) for
// a nil slice, as pgtype.FlatArray has it.
func dims(n int, isNil bool) []pgtype.ArrayDimension {
	if isNil {
		return nil
	}
	return []pgtype.ArrayDimension{{Length: int32(n), LowerBound: 1}}
}

// The flat arrays: one-dimensional pgtype.ArrayGetters whose Index points
// at the element instead of copying it into an interface.
type (
	textArray  []string
	int8Array  []int64
	byteaArray [][]byte
	timeArray  []time.Time
)

func (a textArray) Dimensions() []pgtype.ArrayDimension  { return dims(len(a), a == nil) }
func (a textArray) Index(i int) any                      { return (*textElem)(&a[i]) }
func (a textArray) IndexType() any                       { return (*textElem)(nil) }
func (a int8Array) Dimensions() []pgtype.ArrayDimension  { return dims(len(a), a == nil) }
func (a int8Array) Index(i int) any                      { return (*int8Elem)(&a[i]) }
func (a int8Array) IndexType() any                       { return (*int8Elem)(nil) }
func (a byteaArray) Dimensions() []pgtype.ArrayDimension { return dims(len(a), a == nil) }
func (a byteaArray) Index(i int) any                     { return (*byteaElem)(&a[i]) }
func (a byteaArray) IndexType() any                      { return (*byteaElem)(nil) }
func (a timeArray) Dimensions() []pgtype.ArrayDimension  { return dims(len(a), a == nil) }
func (a timeArray) Index(i int) any                      { return (*timeElem)(&a[i]) }
func (a timeArray) IndexType() any                       { return (*timeElem)(nil) }

// textElem is a string element (text, varchar).
type textElem string

func (t *textElem) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(*t), Valid: true}, nil
}

// int8Elem is an int64 element (bigint, and the narrower integers with
// pgx's range check).
type int8Elem int64

func (n *int8Elem) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: int64(*n), Valid: true}, nil
}

// byteaElem is a []byte element; nil is NULL, as pgx encodes a nil []byte.
type byteaElem []byte

func (b *byteaElem) BytesValue() ([]byte, error) { return []byte(*b), nil }

// timeElem is a time.Time element of timestamptz, timestamp or date, valued
// as pgx values a time.Time (its timeWrapper).
type timeElem time.Time

func (t *timeElem) TimestamptzValue() (pgtype.Timestamptz, error) {
	return pgtype.Timestamptz{Time: time.Time(*t), Valid: true}, nil
}

func (t *timeElem) TimestampValue() (pgtype.Timestamp, error) {
	return pgtype.Timestamp{Time: time.Time(*t), Valid: true}, nil
}

func (t *timeElem) DateValue() (pgtype.Date, error) {
	return pgtype.Date{Time: time.Time(*t), Valid: true}, nil
}
