// Package enumtext spells the API's typed contracts (the enums of
// proto/mapfront/v1/states.proto) as words: the proto name without the
// enum's prefix, in lower case (BATCH_STATE_FILE_MISSING is "file_missing",
// EXCEPTION_ACTION_REFUND_OWED is "refund_owed"). The words are what the
// server's domain and database store and what the settlement command prints,
// reads from its flags and writes to CSV, so the proto file stays the one
// table and nobody keeps a second list.
//
// The partner's Chinese spelling of the values the POSP sees is the
// legacy_text option, written by mapfront/internal/legacy, not here.
package enumtext

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Enum is a generated enum type of the API.
type Enum interface {
	~int32
	protoreflect.Enum
}

// Word returns e's word, or "" for the zero value (*_UNSPECIFIED) and for a
// number the enum does not define.
func Word(e protoreflect.Enum) string {
	if e.Number() == 0 {
		return ""
	}
	v := e.Descriptor().Values().ByNumber(e.Number())
	if v == nil {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(string(v.Name()), prefix(e.Descriptor())))
}

// Parse returns the value of E whose word is word; ok is false (and the value
// zero) for "" and for a word that names no value.
func Parse[E Enum](word string) (e E, ok bool) {
	if word == "" || strings.ToLower(word) != word {
		return 0, false
	}
	d := e.Descriptor()
	v := d.Values().ByName(protoreflect.Name(prefix(d) + strings.ToUpper(word)))
	if v == nil || v.Number() == 0 {
		return 0, false
	}
	return E(v.Number()), true
}

// Words lists the words of E's values in declaration order, the zero value left
// out: for usage messages.
func Words[E Enum]() []string {
	var zero E
	values := zero.Descriptor().Values()
	words := make([]string, 0, values.Len())
	for i := range values.Len() {
		if n := values.Get(i).Number(); n != 0 {
			words = append(words, Word(E(n)))
		}
	}
	return words
}

// prefix is what every value name of d starts with: the name of its zero
// value without UNSPECIFIED (buf's ENUM_ZERO_VALUE_SUFFIX and
// ENUM_VALUE_PREFIX lint rules hold for every enum of the API).
func prefix(d protoreflect.EnumDescriptor) string {
	zero := d.Values().ByNumber(0)
	if zero == nil {
		return ""
	}
	return strings.TrimSuffix(string(zero.Name()), "UNSPECIFIED")
}
