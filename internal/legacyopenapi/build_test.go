package legacyopenapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/gen/openapi"
	"mapfront/internal/legacy"
)

var update = flag.Bool("update", false, "rewrite legacy.swagger.json")

// TestCheckedIn: the checked-in document is what Build makes from the
// descriptors (so it cannot drift from the proto files or the codec's rules).
func TestCheckedIn(t *testing.T) {
	doc, err := Build(openapi.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("legacy.swagger.json", doc, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(doc, Spec) {
		t.Fatal("legacy.swagger.json is not what Build makes: run `go test ./internal/legacyopenapi -update` (make generate) and commit")
	}
}

// v3 validates the document with kin-openapi (Swagger 2.0 loaded, converted
// to OpenAPI 3 and validated, every $ref resolved) and returns it.
func v3(t *testing.T) *openapi3.T {
	t.Helper()
	var doc2 openapi2.T
	if err := json.Unmarshal(Spec, &doc2); err != nil {
		t.Fatalf("not a Swagger 2.0 document: %v", err)
	}
	if doc2.Swagger != "2.0" {
		t.Fatalf("swagger %q", doc2.Swagger)
	}
	doc3, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		t.Fatalf("convert: %v", err)
	}
	if err := openapi3.NewLoader().ResolveRefsIn(doc3, nil); err != nil {
		t.Fatalf("refs: %v", err)
	}
	if err := doc3.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("the document does not validate: %v", err)
	}
	return doc3
}

// TestValidates: a real OpenAPI validator accepts the document; every path
// answers the envelope, documents 200, 400, 403, 404, 405 and 413, and its
// examples fit its schemas.
func TestValidates(t *testing.T) {
	doc := v3(t)
	if got := doc.Paths.Len(); got != 7 {
		t.Errorf("%d paths, want the 7 legacy paths", got)
	}
	for _, p := range Paths {
		op := doc.Paths.Find(p.Path).Post
		if op == nil {
			t.Errorf("%s: no POST", p.Path)
			continue
		}
		for _, status := range []string{"200", "400", "403", "404", "405", "413"} {
			r := op.Responses.Value(status)
			if r == nil {
				t.Errorf("%s: no %s answer", p.Path, status)
				continue
			}
			mt := r.Value.Content.Get("application/json")
			s := mt.Schema.Value
			for _, f := range []string{"errcode", "errmsg", "request"} {
				if s.Properties[f] == nil || !slices.Contains(s.Required, f) {
					t.Errorf("%s %s: the envelope's %s is not a required property", p.Path, status, f)
				}
			}
			if mt.Example != nil {
				if err := s.VisitJSON(mt.Example); err != nil {
					t.Errorf("%s %s: the example does not fit: %v", p.Path, status, err)
				}
			}
		}
		body := op.RequestBody.Value.Content.Get("application/json").Schema.Value
		var ex any
		if err := json.Unmarshal([]byte(examples[p.Method][0]), &ex); err != nil {
			t.Fatal(err)
		}
		if err := body.VisitJSON(ex); err != nil {
			t.Errorf("%s: the partner's request example does not fit the request schema: %v", p.Path, err)
		}
	}
}

// TestPathsAreTheBindings: Paths is what proto/mapfront/v1/offline_http.yaml binds.
func TestPathsAreTheBindings(t *testing.T) {
	f, err := os.Open("../../proto/mapfront/v1/offline_http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sel := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "- "))
		if v, ok := strings.CutPrefix(l, "selector: mapfront.v1.OfflineService."); ok {
			sel = v
		} else if v, ok := strings.CutPrefix(l, "post: "); ok {
			got = append(got, v+" "+sel)
		}
	}
	var want []string
	for _, p := range Paths {
		want = append(want, p.Path+" "+p.Method)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("offline_http.yaml binds %v, the document %v", got, want)
	}
}

// TestCodecAnswersFit: the real legacy handler's answers, with every field
// of every payload set, fit the document: each validates against its path's
// schema, and its keys come in the order of the document's properties.
// HTTP errors too.
func TestCodecAnswersFit(t *testing.T) {
	doc := v3(t)
	h, err := legacy.NewHandler(full{}, legacy.Options{MaxBodyBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	post := func(method, path, body string) (int, []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec.Code, rec.Body.Bytes()
	}
	check := func(name string, op *openapi3.Operation, status int, answer []byte) {
		r := op.Responses.Status(status)
		if r == nil {
			t.Errorf("%s: HTTP %d is not in the document", name, status)
			return
		}
		s := r.Value.Content.Get("application/json").Schema.Value
		var v any
		if err := json.Unmarshal(answer, &v); err != nil {
			t.Fatalf("%s: %v: %s", name, err, answer)
		}
		if err := s.VisitJSON(v, openapi3.MultiErrors()); err != nil {
			t.Errorf("%s: the answer does not fit the document: %v\n%s", name, err, answer)
		}
		if err := sameOrder(json.NewDecoder(bytes.NewReader(answer)), s); err != nil {
			t.Errorf("%s: %v\n%s", name, err, answer)
		}
	}
	for _, p := range Paths {
		op := doc.Paths.Find(p.Path).Post
		code, answer := post(http.MethodPost, p.Path, examples[p.Method][0])
		if code != http.StatusOK || !bytes.HasPrefix(answer, []byte(`{"errcode":0,`)) {
			t.Fatalf("%s: HTTP %d %s", p.Path, code, answer)
		}
		check(p.Path, op, code, answer)
		code, answer = post(http.MethodGet, p.Path, "")
		check(p.Path+" GET", op, code, answer)
		code, answer = post(http.MethodPost, p.Path, strings.Repeat(" ", 5000))
		if code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: a big body got HTTP %d", p.Path, code)
		}
		check(p.Path+" big body", op, code, answer)
	}
	code, answer := post(http.MethodPost, "/front/offline/nope", "{}")
	check("unknown path", doc.Paths.Find(Paths[0].Path).Post, code, answer)
}

// sameOrder reads one JSON value from dec and checks that every object's
// keys come in the order of s's properties, recursively.
func sameOrder(dec *json.Decoder, s *openapi3.Schema) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		order := propertyOrder(s)
		var keys []string
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			keys = append(keys, k.(string))
			var sub *openapi3.Schema
			if p := s.Properties[k.(string)]; p != nil {
				sub = p.Value
			}
			if sub == nil {
				return fmt.Errorf("key %q is not in the document", k)
			}
			if err := sameOrder(dec, sub); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
		var want []string
		for _, k := range order {
			if slices.Contains(keys, k) {
				want = append(want, k)
			}
		}
		if !slices.Equal(keys, want) {
			return fmt.Errorf("keys %v, the document's order %v", keys, want)
		}
	case json.Delim('['):
		for dec.More() {
			if err := sameOrder(dec, s.Items.Value); err != nil {
				return err
			}
		}
		_, err := dec.Token()
		return err
	}
	return nil
}

// propertyOrder is the order of s's properties in the checked-in file
// (openapi3 keeps them in a map): found by the definition whose property
// set is s's.
func propertyOrder(s *openapi3.Schema) []string {
	var doc struct {
		Definitions map[string]json.RawMessage `json:"definitions"`
	}
	_ = json.Unmarshal(Spec, &doc)
	for _, d := range doc.Definitions {
		var def struct {
			Properties json.RawMessage `json:"properties"`
		}
		_ = json.Unmarshal(d, &def)
		keys := objectKeys(def.Properties)
		if len(keys) == len(s.Properties) && !slices.ContainsFunc(keys, func(k string) bool { return s.Properties[k] == nil }) {
			return keys
		}
	}
	return nil
}

func objectKeys(raw json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		_ = dec.Decode(&skip)
	}
	return keys
}

// full is an OfflineService client that answers every call with every field
// of the answer set (lists with two elements, enums at their last value with
// a legacy word, optional fields present), so that the codec writes every
// key it can.
type full struct{}

func fill(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range 2 {
				if fd.Kind() == protoreflect.MessageKind {
					e := l.NewElement()
					fill(e.Message())
					l.Append(e)
				} else {
					l.Append(scalar(fd))
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			fill(m.Mutable(fd).Message())
		default:
			m.Set(fd, scalar(fd))
		}
	}
}

func scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("x")
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(123456)
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(7)
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(vals.Len() - 1).Number())
	}
	panic(fmt.Sprintf("no test value for %s", fd.FullName()))
}

func answer[T proto.Message](m T) (T, error) {
	fill(m.ProtoReflect())
	return m, nil
}

func (full) OpenCard(context.Context, *mapfrontv1.OpenCardRequest, ...grpc.CallOption) (*mapfrontv1.OpenCardResponse, error) {
	return answer(&mapfrontv1.OpenCardResponse{})
}
func (full) RepealCard(context.Context, *mapfrontv1.RepealCardRequest, ...grpc.CallOption) (*mapfrontv1.RepealCardResponse, error) {
	return answer(&mapfrontv1.RepealCardResponse{})
}
func (full) Pay(context.Context, *mapfrontv1.PayRequest, ...grpc.CallOption) (*mapfrontv1.PayResponse, error) {
	return answer(&mapfrontv1.PayResponse{})
}
func (full) CancelPay(context.Context, *mapfrontv1.CancelPayRequest, ...grpc.CallOption) (*mapfrontv1.CancelPayResponse, error) {
	return answer(&mapfrontv1.CancelPayResponse{})
}
func (full) UndoPay(context.Context, *mapfrontv1.UndoPayRequest, ...grpc.CallOption) (*mapfrontv1.UndoPayResponse, error) {
	return answer(&mapfrontv1.UndoPayResponse{})
}
func (full) GetAccountInfo(context.Context, *mapfrontv1.GetAccountInfoRequest, ...grpc.CallOption) (*mapfrontv1.GetAccountInfoResponse, error) {
	return answer(&mapfrontv1.GetAccountInfoResponse{})
}
func (full) DownloadProduct(context.Context, *mapfrontv1.DownloadProductRequest, ...grpc.CallOption) (*mapfrontv1.DownloadProductResponse, error) {
	return answer(&mapfrontv1.DownloadProductResponse{})
}
