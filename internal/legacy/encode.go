package legacy

import (
	"cmp"
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// envelope is every answer of the legacy contract (SPEC section 2):
// errcode, errmsg, the payload's fields, and the request body echoed back so
// that the POSP can detect crossed packets (原请求报文).
type envelope struct {
	errcode int32
	errmsg  string
	payload protoreflect.Message // nil for errors: they carry no payload
	request []byte
}

// appendJSON writes the envelope as compact JSON, in the document's order.
func (e *envelope) appendJSON(b []byte) []byte {
	if b == nil {
		// The echoed request and a payload: one allocation mostly.
		b = make([]byte, 0, 2*len(e.request)+512)
	}
	b = append(b, `{"errcode":`...)
	b = strconv.AppendInt(b, int64(e.errcode), 10)
	b = append(b, `,"errmsg":`...)
	b = appendString(b, e.errmsg)
	if e.payload != nil {
		b = appendFields(b, e.payload, true)
	}
	b = append(b, `,"request":`...)
	b = appendText(b, e.request)
	return append(b, '}')
}

// appendMessage writes m as a JSON object (see appendFields).
func appendMessage(b []byte, m protoreflect.Message) []byte {
	b = append(b, '{')
	b = appendFields(b, m, false)
	return append(b, '}')
}

// appendFields writes the fields of m as `"name":value` pairs, separated by
// commas (and preceded by one if comma is set). The rules are the legacy
// contract's, not protojson's: fields in number order (the proto files number
// them in the document's order), keys by json_name, 64-bit integers as JSON
// numbers (amounts in fen; protojson would quote them), every field present
// even at its zero value (the POSP's parser expects the documented shape),
// an unset message as an object of zero values rather than null, an empty
// list as [], and only unset proto3 optional (or oneof) fields left out,
// since for them absence is the information.
func appendFields(b []byte, m protoreflect.Message, comma bool) []byte {
	for _, f := range fieldOrder(m.Descriptor()) {
		if f.fd.ContainingOneof() != nil && !m.Has(f.fd) {
			continue
		}
		if comma {
			b = append(b, ',')
		}
		comma = true
		b = append(b, f.key...)
		b = appendValue(b, f.fd, m.Get(f.fd))
	}
	return b
}

// orderedField is a field of a message type with its `"json_name":` key
// already encoded.
type orderedField struct {
	fd  protoreflect.FieldDescriptor
	key []byte
}

// fieldOrders caches fieldOrder per message descriptor: a message type's
// fields never change, and sorting them and encoding their keys for every
// answer was a share of the encoder's CPU and allocations per pay.
var fieldOrders sync.Map // protoreflect.MessageDescriptor -> []orderedField

// fieldOrder is md's fields in number order, each with its encoded key.
func fieldOrder(md protoreflect.MessageDescriptor) []orderedField {
	if v, ok := fieldOrders.Load(md); ok {
		return v.([]orderedField)
	}
	fields := md.Fields()
	ordered := make([]orderedField, fields.Len())
	for i := range ordered {
		fd := fields.Get(i)
		ordered[i] = orderedField{fd: fd, key: append(appendString(nil, fd.JSONName()), ':')}
	}
	slices.SortFunc(ordered, func(x, y orderedField) int {
		return int(x.fd.Number()) - int(y.fd.Number())
	})
	v, _ := fieldOrders.LoadOrStore(md, ordered)
	return v.([]orderedField)
}

func appendValue(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) []byte {
	switch {
	case fd.IsList():
		list := v.List()
		b = append(b, '[')
		for i := 0; i < list.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendScalar(b, fd, list.Get(i))
		}
		return append(b, ']')
	case fd.IsMap():
		mp := v.Map()
		keys := make([]protoreflect.MapKey, 0, mp.Len())
		mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k)
			return true
		})
		// Sorted keys keep the output deterministic.
		slices.SortFunc(keys, func(x, y protoreflect.MapKey) int {
			return cmp.Compare(x.String(), y.String())
		})
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k.String())
			b = append(b, ':')
			b = appendScalar(b, fd.MapValue(), mp.Get(k))
		}
		return append(b, '}')
	}
	return appendScalar(b, fd, v)
}

// appendScalar writes one value of fd's kind (for a list, one element).
func appendScalar(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) []byte {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return appendMessage(b, v.Message())
	case protoreflect.StringKind:
		return appendString(b, v.String())
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.AppendInt(b, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.AppendUint(b, v.Uint(), 10)
	case protoreflect.EnumKind:
		return appendString(b, LegacyText(fd.Enum().Values().ByNumber(v.Enum())))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		switch {
		case math.IsNaN(f):
			return appendString(b, "NaN")
		case math.IsInf(f, 1):
			return appendString(b, "Infinity")
		case math.IsInf(f, -1):
			return appendString(b, "-Infinity")
		}
		bits := 64
		if fd.Kind() == protoreflect.FloatKind {
			bits = 32
		}
		return strconv.AppendFloat(b, f, 'g', -1, bits)
	case protoreflect.BytesKind:
		return appendString(b, base64.StdEncoding.EncodeToString(v.Bytes()))
	}
	return append(b, "null"...)
}

// LegacyText is an enum value as the legacy contract writes it: the
// partner's Chinese of its legacy_text option (proto/mapfront/v1/states.proto:
// 支付成功, 正常, ...), never the proto name, which the POSP cannot read. A
// value without the option (the zero value, or nil for a number this build
// does not know) is "", so that the field keeps its documented shape.
func LegacyText(ev protoreflect.EnumValueDescriptor) string {
	if ev == nil {
		return ""
	}
	if v, ok := legacyTexts.Load(ev); ok {
		return v.(string)
	}
	text, _ := proto.GetExtension(ev.Options(), mapfrontv1.E_LegacyText).(string)
	legacyTexts.Store(ev, text)
	return text
}

// legacyTexts caches LegacyText per enum value: an option never changes,
// and reading the extension allocated on every answer.
var legacyTexts sync.Map // protoreflect.EnumValueDescriptor -> string

// appendString writes s as a JSON string. Unlike encoding/json it leaves <, >
// and & alone (the POSP reads the text, not a browser), and it replaces
// invalid UTF-8 with U+FFFD so that the answer is always valid UTF-8 (SPEC
// section 2). U+2028 and U+2029 are escaped for JavaScript-based readers.
func appendString(b []byte, s string) []byte { return appendText(b, s) }

// appendText is appendString for a string or for bytes (the echoed request,
// written without a copy of it as a string). Runs of characters that need no
// escape are copied at once.
func appendText[T string | []byte](b []byte, s T) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // s[start:i] is still to be copied as it is
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		// At most utf8.UTFMax bytes: converting them to a string does
		// not allocate.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028':
			b = append(b, s[start:i]...)
			b = append(b, `\u2028`...)
		case r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, `\u2029`...)
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
