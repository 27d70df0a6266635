// Package legacyopenapi builds and embeds the OpenAPI (Swagger 2.0) document
// of the seven legacy paths as the POSP sees them on the wire (SPEC section
// 2; the partner's document /front/offline/*): every answer in its envelope
// (errcode, errmsg, the payload, request), keys in the order the codec writes
// them (internal/legacy: proto field number order, json_name keys), amounts
// as JSON integers in fen, status fields as the partner's Chinese strings
// (the legacy_text of each enum value), the fields the partner's document
// marks 必须 as required, its examples, and the HTTP error answers (400, 403,
// 404, 405, 413), which carry the envelope without a payload.
//
// protoc-gen-openapiv2 (gen/openapi) describes the gRPC messages, not this
// wire form, so the document is built here from the same descriptors the
// codec reads, taking only the field descriptions from the generated one.
// The result is checked in (legacy.swagger.json) and served by the gateway
// at GET /openapi.json; TestCheckedIn fails when it is not what Build makes
// (go test ./internal/legacyopenapi -update rewrites it; make generate does).
package legacyopenapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// Spec is the checked-in document, as JSON. Callers must treat it as read-only.
//
//go:embed legacy.swagger.json
var Spec []byte

// Path is one legacy path and the OfflineService method behind it
// (proto/mapfront/v1/offline_http.yaml binds them; a test checks the two agree).
type Path struct {
	Path    string
	Method  string // OfflineService method name
	Summary string // the partner document's name of the call
	OK      string // errmsg of errcode 0 (internal/legacy)
}

// Paths are the seven legacy paths, in the partner document's order.
var Paths = []Path{
	{"/front/offline/open_card", "OpenCard", "线下开卡接口 (card sale; split payments 拆单付款 with paySum)", "用户开卡成功"},
	{"/front/offline/repeal_card", "RepealCard", "线下开卡撤销接口 (withdraw one open_card payment)", "用户线下开卡撤销成功"},
	{"/front/offline/pay", "Pay", "线下支付接口 (pay from a card or cash account)", "支付成功"},
	{"/front/offline/pay_cancel", "CancelPay", "线下交易撤销接口 (void a pay, same terminal, same business day)", "交易撤销成功"},
	{"/front/offline/pay_undo", "UndoPay", "线下交易冲正接口 (reverse a pay by its own terminal key)", "消费冲正成功"},
	{"/front/offline/get_account_info", "GetAccountInfo", "线下查询余额接口 (balance query)", "查询余额成功"},
	{"/front/offline/download_product", "DownloadProduct", "线下产品下载接口 (product list)", "产品下载成功"},
}

// required lists, by message, the fields the partner's document marks 必须
// (是). Request wrappers (order, query) are required as a whole. For answers
// the envelope's errcode, errmsg and request are required on every answer;
// the payload only on success.
var required = map[protoreflect.FullName][]string{
	"mapfront.v1.OpenCardRequest":        {"ID", "mobileNum", "sellerId", "storeId", "terminalId", "operatorId", "batchNo", "terminalOrderId", "productId"},
	"mapfront.v1.CardOrder":              {"orderId", "mobileNum", "sellerId", "storeId", "terminalId", "operatorId", "batchNo", "terminalOrderId", "remark"},
	"mapfront.v1.RepealCardRequest":      {"sellerId", "storeId", "terminalId", "operatorId", "batchNo", "terminalOrderId"},
	"mapfront.v1.PayRequest":             {"order"},
	"mapfront.v1.PayOrderInput":          {"consumerId", "paymentCodeDES", "sum", "sellerId", "storeId", "terminalId", "operatorId", "batchNo", "terminalOrderId"},
	"mapfront.v1.PaymentOrder":           {"orderId", "consumerId", "sum", "payTime", "status", "sellerId", "storeId", "terminalId", "operatorId", "batchNo", "terminalOrderId"},
	"mapfront.v1.CancelPayRequest":       {"order"},
	"mapfront.v1.CancelOrderInput":       {"orderId", "sellerId", "storeId", "terminalId", "operatorId", "batchNo", "terminalOrderId"},
	"mapfront.v1.CancelOrder":            {"orderId", "payTime", "sellerId", "storeId", "terminalId", "operatorId", "batchNo", "terminalOrderId", "status"},
	"mapfront.v1.UndoPayRequest":         {"order"},
	"mapfront.v1.UndoOrderInput":         {"sellerId", "storeId", "terminalId", "operatorId", "batchNo", "terminalOrderId"},
	"mapfront.v1.GetAccountInfoRequest":  {"query"},
	"mapfront.v1.AccountQuery":           {"paymentCodeDES", "sellerId", "storeId", "terminalId", "operatorId", "batchNo", "terminalOrderId"},
	"mapfront.v1.Card":                   {"accountId", "balance", "status", "remark"},
	"mapfront.v1.DownloadProductRequest": {"sellerId", "storeId", "terminalId", "batchNo", "terminalOrderId"},
	"mapfront.v1.ProductItem":            {"productId", "productName", "productShortName", "productPrice", "remark"},
}

// examples are the partner document's request and success examples, made
// valid JSON (its samples miss commas) and with the envelope completed
// where the document leaves errcode and errmsg out (download_product).
var examples = map[string][2]string{
	"OpenCard": {
		`{"ID":"515411244445444444X","mobileNum":"13912345678","referrer":"12345678","sellerId":"SH01","storeId":"ST01","terminalId":"POS01","batchNo":"1234567","operatorId":"zhangsan","terminalOrderId":"1234567890","productId":"1010","paySum":100000}`,
		`{"errcode":0,"errmsg":"用户开卡成功","order":{"orderId":"12345678901234567890","mobileNum":"13912345678","sellerId":"SH01","storeId":"ST01","terminalId":"POS01","operatorId":"001","batchNo":"1234567","terminalOrderId":"1234567890","remark":""},"request":"RESQUEST"}`},
	"RepealCard": {
		`{"sellerId":"SH01","storeId":"ST01","terminalId":"POS01","batchNo":"1234567","operatorId":"zhangsan","terminalOrderId":"1234567890"}`,
		`{"errcode":0,"errmsg":"用户线下开卡撤销成功","order":{"orderId":"12345678901234567890","mobileNum":"13912345678","sellerId":"SH01","storeId":"ST01","terminalId":"POS01","operatorId":"001","batchNo":"1234567","terminalOrderId":"1234567890","remark":""},"request":"RESQUEST"}`},
	"Pay": {
		`{"order":{"consumerId":"13912345678","paymentCodeDES":"231EEREWQR","sum":5000,"sellerId":"SH12345","storeId":"ST12345","terminalId":"ZJ000001","operatorId":"zhangsan","batchNo":"123123123122132","terminalOrderId":"1234567890123456789","productName":"0号柴油","productPrice":500,"productQuantity":"1.55","remark":""}}`,
		`{"errcode":0,"errmsg":"支付成功","order":{"orderId":"ud12345678901234567890","consumerId":"13912345678","sum":5000,"payTime":"2015-01-02 12:12:00","sellerId":"SH12345","storeId":"ST12345","terminalId":"ZJ000001","operatorId":"zhangsan","batchNo":"123123123122132","terminalOrderId":"1234567890123456789","productName":"0号柴油","productPrice":500,"productQuantity":"1.55","remark":"","status":"支付成功"},"request":"RESQUEST"}`},
	"CancelPay": {
		`{"order":{"orderId":"12345678900987654321","sellerId":"SH12345","storeId":"ST12345","terminalId":"ZJ000001","operatorId":"zhangsan","batchNo":"123123123122132","terminalOrderId":"1234567890123456789","remark":""}}`,
		`{"errcode":0,"errmsg":"交易撤销成功","order":{"orderId":"ud12345678901234567890","payTime":"2015-01-02 12:12:00","sellerId":"SH12345","storeId":"ST12345","terminalId":"ZJ000001","operatorId":"zhangsan","batchNo":"123123123122132","terminalOrderId":"1234567890123456789","remark":"","status":"消费撤销成功"},"request":"RESQUEST"}`},
	"UndoPay": {
		`{"order":{"sellerId":"GM01","storeId":"ST01","terminalId":"POS12345","operatorId":"zhangsan","terminalOrderId":"1234567890","batchNo":"123123123122132","remark":""}}`,
		`{"errcode":0,"errmsg":"消费冲正成功","order":{"orderId":"ud12345678901234567890","consumerId":"13912345678","sum":5000,"payTime":"2015-01-02 12:12:00","sellerId":"SH12345","storeId":"ST12345","terminalId":"ZJ000001","operatorId":"zhangsan","batchNo":"123123123122132","terminalOrderId":"1234567890123456789","productName":"0号柴油","productPrice":500,"productQuantity":"1.55","remark":"","status":"支付失败，冲正成功"},"request":"RESQUEST"}`},
	"GetAccountInfo": {
		`{"query":{"consumerId":"13912345678","paymentCodeDES":"231EEREWQR","sellerId":"GM01","storeId":"ST01","terminalId":"POS12345","operatorId":"zhangsan","terminalOrderId":"1234567890","batchNo":"123123123122132","remark":""}}`,
		`{"errcode":0,"errmsg":"查询余额成功","card":{"accountId":"1010123412341234","balance":300000,"status":"正常","remark":""},"request":"RESQUEST"}`},
	"DownloadProduct": {
		`{"sellerId":"SH01","storeId":"ST01","terminalId":"POS01","batchNo":"1234567","terminalOrderId":"1234567890"}`,
		`{"errcode":0,"errmsg":"产品下载成功","product":[{"productId":"1010","productName":"乐驾包5000","productShortName":"乐驾包5000","productPrice":450000,"remark":""},{"productId":"1011","productName":"乐驾包4000","productShortName":"乐驾包5000","productPrice":350000,"remark":""},{"productId":"1012","productName":"乐驾包2000","productShortName":"乐驾包5000","productPrice":150000,"remark":""}],"request":"RESQUEST"}`},
}

// errorAnswers are the HTTP statuses other than 200, each with the envelope
// and no payload (internal/legacy; 403 is the POSP edge's source allowlist of
// SPEC section 7).
var errorAnswers = []struct {
	status, description, example string
}{
	{"400", "the request body could not be read", `{"errcode":10001,"errmsg":"读取请求报文失败","request":""}`},
	{"403", "the source is not allowed (POSP edge allowlist, SPEC section 7): errcode 10002", `{"errcode":10002,"errmsg":"来源地址未授权","request":""}`},
	{"404", "no such legacy path: errcode 10001; request echoes the body (within the size limit)", `{"errcode":10001,"errmsg":"接口路径不存在","request":"{}"}`},
	{"405", "a method other than POST: errcode 10001; request echoes the body (within the size limit)", `{"errcode":10001,"errmsg":"请求方法必须是POST","request":""}`},
	{"413", "the body is over the size limit: errcode 10001, the body is not echoed", `{"errcode":10001,"errmsg":"请求报文过长","request":""}`},
}

// kv and obj keep the keys of a JSON object in the order given.
type kv struct {
	k string
	v any
}
type obj []kv

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping (the document holds < and >).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// raw is an example: JSON text placed as it is.
type raw string

func (r raw) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// Build returns the document. generated is gen/openapi/offline.swagger.json,
// read for the fields' descriptions only.
func Build(generated []byte) ([]byte, error) {
	var gen struct {
		Definitions map[string]struct {
			Description string `json:"description"`
			Properties  map[string]struct {
				Description string `json:"description"`
				Title       string `json:"title"`
			} `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(generated, &gen); err != nil {
		return nil, fmt.Errorf("generated document: %w", err)
	}
	b := &builder{defs: obj{}, describe: func(msg protoreflect.MessageDescriptor, field string) string {
		d := gen.Definitions["v1"+string(msg.Name())]
		if field == "" {
			return d.Description
		}
		p := d.Properties[field]
		if p.Description != "" {
			return p.Description
		}
		return p.Title
	}}
	svc := mapfrontv1.File_mapfront_v1_offline_proto.Services().ByName("OfflineService")
	if svc == nil {
		return nil, fmt.Errorf("OfflineService not found")
	}
	b.defs = append(b.defs, kv{"Envelope", envelopeSchema("")})
	paths := obj{}
	for _, p := range Paths {
		m := svc.Methods().ByName(protoreflect.Name(p.Method))
		if m == nil {
			return nil, fmt.Errorf("OfflineService.%s not found", p.Method)
		}
		in, out := b.message(m.Input()), m.Output()
		if out.Fields().Len() != 1 {
			return nil, fmt.Errorf("%s: the answer has %d fields, want its one payload", out.FullName(), out.Fields().Len())
		}
		payload := out.Fields().Get(0)
		answer := string(out.Name())
		b.defs = append(b.defs, kv{answer, envelopeSchema(payload.JSONName(), kv{payload.JSONName(), b.field(out, payload)})})
		ex := examples[p.Method]
		responses := obj{{"200", obj{
			{"description", "HTTP 200 for every business outcome: errcode 0 (errmsg " + p.OK + ") with " +
				"`" + payload.JSONName() + "`, or another errcode (SPEC section 3) without it."},
			{"schema", obj{{"$ref", "#/definitions/" + answer}}},
			{"examples", obj{{"application/json", raw(ex[1])}}},
		}}}
		for _, e := range errorAnswers {
			responses = append(responses, kv{e.status, obj{
				{"description", e.description},
				{"schema", obj{{"$ref", "#/definitions/Envelope"}}},
				{"examples", obj{{"application/json", raw(e.example)}}},
			}})
		}
		paths = append(paths, kv{p.Path, obj{{"post", obj{
			{"summary", p.Summary},
			{"operationId", p.Method},
			{"consumes", []string{"application/json"}},
			{"produces", []string{"application/json"}},
			{"parameters", []obj{{
				{"name", "body"}, {"in", "body"}, {"required", true},
				{"description", "Any Content-Type is accepted; the body is JSON. Unknown fields are ignored."},
				{"schema", obj{{"$ref", "#/definitions/" + in}}},
				{"x-example", raw(ex[0])},
			}}},
			{"responses", responses},
		}}}})
	}
	doc := obj{
		{"swagger", "2.0"},
		{"info", obj{
			{"title", "mapfront legacy offline API (线下前置接口)"},
			{"version", "1.0"},
			{"description", "The partner's legacy paths as the gateway answers them (SPEC section 2). Every answer is the " +
				"envelope {\"errcode\":N,\"errmsg\":\"...\",<payload>,\"request\":\"<the request body as received, as a string>\"}, " +
				"keys in that order; the payload (order, card or product) only with errcode 0. Business outcomes are HTTP 200 " +
				"and are told by errcode (SPEC section 3, docs/posp-integration.zh.md). Amounts are integers in fen (分). " +
				"Every field of a payload is present, at its zero value when empty, except accountId and balance of an order, " +
				"which are absent when no account was charged. status fields are the partner's Chinese words."},
		}},
		{"schemes", []string{"http"}},
		{"consumes", []string{"application/json"}},
		{"produces", []string{"application/json"}},
		{"paths", paths},
		{"definitions", b.defs},
	}
	out, err := marshal(doc)
	if err != nil {
		return nil, err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "  "); err != nil {
		return nil, err
	}
	pretty.WriteByte('\n')
	return pretty.Bytes(), nil
}

// envelopeSchema is the answer's object: errcode, errmsg, the payload
// property when there is one, request.
func envelopeSchema(payload string, props ...kv) obj {
	p := obj{{"errcode", obj{{"type", "integer"}, {"format", "int32"}, {"description", "0 success; else SPEC section 3"}}},
		{"errmsg", obj{{"type", "string"}, {"description", "the outcome in Chinese"}}}}
	p = append(p, props...)
	p = append(p, kv{"request", obj{{"type", "string"}, {"description", "原请求报文: the request body as received, echoed as a JSON string"}}})
	desc := "The envelope of an answer without a payload: a refusal (errcode other than 0) or an HTTP error."
	if payload != "" {
		desc = "The envelope; " + payload + " is present only when errcode is 0."
	}
	return obj{{"type", "object"}, {"description", desc}, {"required", []string{"errcode", "errmsg", "request"}}, {"properties", p}}
}

type builder struct {
	defs     obj
	describe func(msg protoreflect.MessageDescriptor, field string) string
}

// message adds md's schema to the definitions (once) and returns its name.
func (b *builder) message(md protoreflect.MessageDescriptor) string {
	name := string(md.Name())
	if slices.ContainsFunc(b.defs, func(e kv) bool { return e.k == name }) {
		return name
	}
	b.defs = append(b.defs, kv{name, nil}) // reserve the place (and stop recursion)
	i := len(b.defs) - 1
	fields := md.Fields()
	ordered := make([]protoreflect.FieldDescriptor, fields.Len())
	for i := range ordered {
		ordered[i] = fields.Get(i)
	}
	// The codec writes fields in number order (internal/legacy appendFields).
	slices.SortFunc(ordered, func(x, y protoreflect.FieldDescriptor) int { return int(x.Number()) - int(y.Number()) })
	props := obj{}
	for _, fd := range ordered {
		props = append(props, kv{fd.JSONName(), b.field(md, fd)})
	}
	s := obj{{"type", "object"}}
	if d := b.describe(md, ""); d != "" {
		s = append(s, kv{"description", d})
	}
	if r := required[md.FullName()]; len(r) > 0 {
		s = append(s, kv{"required", r})
	}
	b.defs[i].v = append(s, kv{"properties", props})
	return name
}

// field is one field's schema, as the codec writes it.
func (b *builder) field(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor) obj {
	s := b.scalar(fd)
	if fd.IsList() {
		s = obj{{"type", "array"}, {"items", s}}
	}
	if d := b.describe(md, fd.JSONName()); d != "" && fd.Kind() != protoreflect.MessageKind {
		s = append(s, kv{"description", d})
	}
	return s
}

func (b *builder) scalar(fd protoreflect.FieldDescriptor) obj {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		return obj{{"$ref", "#/definitions/" + b.message(fd.Message())}}
	case protoreflect.StringKind:
		return obj{{"type", "string"}}
	case protoreflect.BoolKind:
		return obj{{"type", "boolean"}}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return obj{{"type", "integer"}, {"format", "int32"}}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		// A JSON number, not protojson's string; amounts are fen.
		return obj{{"type", "integer"}, {"format", "int64"}}
	case protoreflect.EnumKind:
		// The partner's Chinese word of each value (legacy_text), as the
		// codec writes it; values without one are never sent.
		var words []string
		vals := fd.Enum().Values()
		for i := 0; i < vals.Len(); i++ {
			if w, _ := proto.GetExtension(vals.Get(i).Options(), mapfrontv1.E_LegacyText).(string); w != "" {
				words = append(words, w)
			}
		}
		return obj{{"type", "string"}, {"enum", words}}
	}
	return obj{{"type", "string"}}
}
