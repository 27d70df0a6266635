package legacy

import (
	"fmt"
	"io"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
)

// contentType is what every answer declares, whatever the request said.
const contentType = "application/json; charset=utf-8"

// Marshaler is the runtime.Marshaler of the legacy contract: liberal
// decoding of request bodies (see unmarshal) and strict encoding of answers
// (see appendFields). NewHandler registers it for runtime.MIMEWildcard only,
// so grpc-gateway uses it whatever Content-Type or Accept the POSP sends
// (SPEC section 2: any Content-Type).
//
// It is stateless; the zero value is ready to use.
type Marshaler struct{}

var _ runtime.Marshaler = Marshaler{}

// Marshal encodes an answer: the envelope built by the handler, or a bare
// proto message (its fields only, no envelope).
func (Marshaler) Marshal(v any) ([]byte, error) {
	switch t := v.(type) {
	case *envelope:
		return t.appendJSON(nil), nil
	case proto.Message:
		return appendMessage(nil, t.ProtoReflect()), nil
	}
	return nil, fmt.Errorf("legacy: cannot marshal %T", v)
}

// Unmarshal decodes a legacy request body into v, which must be a proto
// message. Its errors are *DecodeError.
func (Marshaler) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("legacy: cannot unmarshal into %T", v)
	}
	return unmarshal(data, m)
}

// NewDecoder returns a decoder of one request body read from r.
//
// grpc-gateway turns a decoder's error into a bare InvalidArgument status,
// which would lose the field name the terminal must see. So when r is the
// body the handler installed, the decoder also leaves its error in that
// request's exchange, where the error handler finds it.
// Bounding the body is the handler's job; r is read to its end.
func (m Marshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		var data []byte
		body, ours := r.(*rawBody)
		if ours {
			data = body.ex.raw
		} else {
			var err error
			if data, err = io.ReadAll(r); err != nil {
				return err
			}
		}
		err := m.Unmarshal(data, v)
		if ours && err != nil {
			body.ex.decodeErr = err
		}
		return err
	})
}

// NewEncoder returns an encoder that writes each value as Marshal does.
func (m Marshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := m.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}

// ContentType is application/json in UTF-8 for every answer.
func (Marshaler) ContentType(any) string { return contentType }
