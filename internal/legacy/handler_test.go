package legacy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// backend is a fake OfflineService: the gateway is what is under test, so it
// only records the request it got and answers a canned response or error.
type backend struct {
	mapfrontv1.UnimplementedOfflineServiceServer

	mu    sync.Mutex
	got   proto.Message
	calls int
	resp  proto.Message
	err   error
	delay time.Duration
}

func (b *backend) set(resp proto.Message, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.resp, b.err = resp, err
}

// last returns the last request received and the number of calls.
func (b *backend) last() (proto.Message, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got, b.calls
}

func (b *backend) answer(ctx context.Context, req proto.Message) (proto.Message, error) {
	b.mu.Lock()
	b.got, b.calls = proto.Clone(req), b.calls+1
	resp, err, delay := b.resp, b.err, b.delay
	b.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return resp, err
}

// reply converts a canned answer to the method's response type; a canned
// response of another type is an Internal error rather than a panic.
func reply[T proto.Message](m proto.Message, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	if m == nil {
		return zero.ProtoReflect().New().Interface().(T), nil
	}
	t, ok := m.(T)
	if !ok {
		return zero, status.Errorf(codes.Internal, "canned response is %T", m)
	}
	return t, nil
}

func (b *backend) OpenCard(ctx context.Context, r *mapfrontv1.OpenCardRequest) (*mapfrontv1.OpenCardResponse, error) {
	return reply[*mapfrontv1.OpenCardResponse](b.answer(ctx, r))
}

func (b *backend) RepealCard(ctx context.Context, r *mapfrontv1.RepealCardRequest) (*mapfrontv1.RepealCardResponse, error) {
	return reply[*mapfrontv1.RepealCardResponse](b.answer(ctx, r))
}

func (b *backend) Pay(ctx context.Context, r *mapfrontv1.PayRequest) (*mapfrontv1.PayResponse, error) {
	return reply[*mapfrontv1.PayResponse](b.answer(ctx, r))
}

func (b *backend) CancelPay(ctx context.Context, r *mapfrontv1.CancelPayRequest) (*mapfrontv1.CancelPayResponse, error) {
	return reply[*mapfrontv1.CancelPayResponse](b.answer(ctx, r))
}

func (b *backend) UndoPay(ctx context.Context, r *mapfrontv1.UndoPayRequest) (*mapfrontv1.UndoPayResponse, error) {
	return reply[*mapfrontv1.UndoPayResponse](b.answer(ctx, r))
}

func (b *backend) GetAccountInfo(ctx context.Context, r *mapfrontv1.GetAccountInfoRequest) (*mapfrontv1.GetAccountInfoResponse, error) {
	return reply[*mapfrontv1.GetAccountInfoResponse](b.answer(ctx, r))
}

func (b *backend) DownloadProduct(ctx context.Context, r *mapfrontv1.DownloadProductRequest) (*mapfrontv1.DownloadProductResponse, error) {
	return reply[*mapfrontv1.DownloadProductResponse](b.answer(ctx, r))
}

// newGateway starts the fake backend on a loopback gRPC server and returns
// the real handler connected to it.
func newGateway(t testing.TB, opts Options) (http.Handler, *backend) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{}
	srv := grpc.NewServer()
	mapfrontv1.RegisterOfflineServiceServer(srv, b)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return handlerFor(t, lis.Addr().String(), opts), b
}

// handlerFor connects the handler to addr as the gateway program does, with
// ClientOptions.
func handlerFor(t testing.TB, addr string, opts Options) http.Handler {
	t.Helper()
	conn, err := grpc.NewClient(addr, append(ClientOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h, err := NewHandler(mapfrontv1.NewOfflineServiceClient(conn), opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// do sends one request through the handler; headers are name, value pairs.
func do(h http.Handler, method, path, body string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func post(h http.Handler, path, body string) *httptest.ResponseRecorder {
	return do(h, http.MethodPost, path, body, "Content-Type", "application/json")
}

// answer is the envelope as a reader sees it.
type answer struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
	Request string `json:"request"`
}

// readAnswer checks what every answer must be (valid JSON, UTF-8, the
// envelope's keys first and last, the request echoed exactly) and returns it.
func readAnswer(t *testing.T, rec *httptest.ResponseRecorder, sent string) answer {
	t.Helper()
	body := rec.Body.Bytes()
	if got := rec.Header().Get("Content-Type"); got != contentType {
		t.Errorf("Content-Type = %q, want %q", got, contentType)
	}
	if !json.Valid(body) {
		t.Fatalf("answer is not valid JSON: %s", body)
	}
	keys := topKeys(t, body)
	if len(keys) < 3 || keys[0] != "errcode" || keys[1] != "errmsg" || keys[len(keys)-1] != "request" {
		t.Errorf("envelope keys = %v, want errcode, errmsg, ..., request", keys)
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	if a.Request != sent {
		t.Errorf("request echo = %q, want %q", a.Request, sent)
	}
	return a
}

// topKeys lists the keys of a JSON object in the order they were written.
func topKeys(t *testing.T, body []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("answer is not an object: %s", body)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func readExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocumentExamples sends every example request of the partner document,
// verbatim (testdata/*.json: trailing commas, trailing spaces and all), and
// checks the proto the server receives and the exact answer it produces.
func TestDocumentExamples(t *testing.T) {
	h, b := newGateway(t, Options{})
	paymentOrder := func(status mapfrontv1.PaymentStatus) *mapfrontv1.PaymentOrder {
		return &mapfrontv1.PaymentOrder{
			OrderId: "ud12345678901234567890", ConsumerId: "13912345678", Sum: 5000,
			PayTime: "2015-01-02 12:12:00", SellerId: "SH12345", StoreId: "ST12345",
			TerminalId: "ZJ000001", OperatorId: "zhangsan", BatchNo: "123123123122132",
			TerminalOrderId: "1234567890123456789", ProductName: "0号柴油", ProductPrice: 500,
			ProductQuantity: "1.55", Status: status,
		}
	}
	paid := paymentOrder(mapfrontv1.PaymentStatus_PAYMENT_STATUS_PAID)
	paid.AccountId, paid.Balance = proto.String("1010123412341234"), proto.Int64(295000)
	cardOrder := &mapfrontv1.CardOrder{
		OrderId: "12345678901234567890", MobileNum: "13912345678", SellerId: "SH01", StoreId: "ST01",
		TerminalId: "POS01", OperatorId: "001", BatchNo: "1234567", TerminalOrderId: "1234567890",
	}
	const cardOrderJSON = `"order":{"orderId":"12345678901234567890","mobileNum":"13912345678","sellerId":"SH01","storeId":"ST01","terminalId":"POS01","operatorId":"001","batchNo":"1234567","terminalOrderId":"1234567890","remark":""}`
	const paymentOrderJSON = `"orderId":"ud12345678901234567890","consumerId":"13912345678","sum":5000,"payTime":"2015-01-02 12:12:00","sellerId":"SH12345","storeId":"ST12345","terminalId":"ZJ000001","operatorId":"zhangsan","batchNo":"123123123122132","terminalOrderId":"1234567890123456789","productName":"0号柴油","productPrice":500,"productQuantity":"1.55","remark":"",`

	tests := []struct {
		name string
		want proto.Message // what the server must receive
		resp proto.Message // what it answers
		// wantAnswer is the exact answer up to (not including) ,"request":
		wantAnswer string
	}{{
		name: "open_card",
		want: &mapfrontv1.OpenCardRequest{
			IdNumber: "515411244445444444X", MobileNum: "13912345678", Referrer: "12345678",
			SellerId: "SH01", StoreId: "ST01", TerminalId: "POS01", BatchNo: "1234567",
			OperatorId: "zhangsan", TerminalOrderId: "1234567890", ProductId: "1010",
			PaySum: proto.Int64(100000),
		},
		resp:       &mapfrontv1.OpenCardResponse{Order: cardOrder},
		wantAnswer: `{"errcode":0,"errmsg":"用户开卡成功",` + cardOrderJSON,
	}, {
		name: "repeal_card",
		want: &mapfrontv1.RepealCardRequest{
			SellerId: "SH01", StoreId: "ST01", TerminalId: "POS01", BatchNo: "1234567",
			OperatorId: "zhangsan", TerminalOrderId: "1234567890",
		},
		resp:       &mapfrontv1.RepealCardResponse{Order: cardOrder},
		wantAnswer: `{"errcode":0,"errmsg":"用户线下开卡撤销成功",` + cardOrderJSON,
	}, {
		name: "pay",
		want: &mapfrontv1.PayRequest{Order: &mapfrontv1.PayOrderInput{
			ConsumerId: "13912345678", PaymentCodeDes: "231EEREWQR", Sum: proto.Int64(5000),
			SellerId: "SH12345", StoreId: "ST12345", TerminalId: "ZJ000001", OperatorId: "zhangsan",
			BatchNo: "123123123122132", TerminalOrderId: "1234567890123456789",
			ProductName: "0号柴油", ProductPrice: 500, ProductQuantity: "1.55",
		}},
		resp: &mapfrontv1.PayResponse{Order: paid},
		wantAnswer: `{"errcode":0,"errmsg":"支付成功","order":{` + paymentOrderJSON +
			`"status":"支付成功","accountId":"1010123412341234","balance":295000}`,
	}, {
		name: "pay_cancel",
		want: &mapfrontv1.CancelPayRequest{Order: &mapfrontv1.CancelOrderInput{
			OrderId: "12345678900987654321", SellerId: "SH12345", StoreId: "ST12345",
			TerminalId: "ZJ000001", OperatorId: "zhangsan", BatchNo: "123123123122132",
			TerminalOrderId: "1234567890123456789",
		}},
		resp: &mapfrontv1.CancelPayResponse{Order: &mapfrontv1.CancelOrder{
			OrderId: "ud12345678901234567891", PayTime: "2015-01-02 12:12:00", SellerId: "SH12345",
			StoreId: "ST12345", TerminalId: "ZJ000001", OperatorId: "zhangsan",
			BatchNo: "123123123122132", TerminalOrderId: "1234567890123456789", Status: mapfrontv1.PaymentStatus_PAYMENT_STATUS_CANCELLED,
		}},
		// accountId and balance unset: left out, not written as "" and 0.
		wantAnswer: `{"errcode":0,"errmsg":"交易撤销成功","order":{"orderId":"ud12345678901234567891","payTime":"2015-01-02 12:12:00","sellerId":"SH12345","storeId":"ST12345","terminalId":"ZJ000001","operatorId":"zhangsan","batchNo":"123123123122132","terminalOrderId":"1234567890123456789","remark":"","status":"消费撤销成功"}`,
	}, {
		name: "pay_undo",
		want: &mapfrontv1.UndoPayRequest{Order: &mapfrontv1.UndoOrderInput{
			SellerId: "GM01", StoreId: "ST01", TerminalId: "POS12345", OperatorId: "zhangsan",
			TerminalOrderId: "1234567890", BatchNo: "123123123122132",
		}},
		resp:       &mapfrontv1.UndoPayResponse{Order: paymentOrder(mapfrontv1.PaymentStatus_PAYMENT_STATUS_REVERSED)},
		wantAnswer: `{"errcode":0,"errmsg":"消费冲正成功","order":{` + paymentOrderJSON + `"status":"支付失败，冲正成功"}`,
	}, {
		name: "get_account_info",
		want: &mapfrontv1.GetAccountInfoRequest{Query: &mapfrontv1.AccountQuery{
			ConsumerId: "13912345678", PaymentCodeDes: "231EEREWQR", SellerId: "GM01", StoreId: "ST01",
			TerminalId: "POS12345", OperatorId: "zhangsan", TerminalOrderId: "1234567890",
			BatchNo: "123123123122132",
		}},
		resp: &mapfrontv1.GetAccountInfoResponse{Card: &mapfrontv1.Card{
			AccountId: "1010123412341234", Balance: 300000, Status: mapfrontv1.AccountStatus_ACCOUNT_STATUS_ACTIVE,
		}},
		wantAnswer: `{"errcode":0,"errmsg":"查询余额成功","card":{"accountId":"1010123412341234","balance":300000,"status":"正常","remark":""}`,
	}, {
		name: "download_product",
		want: &mapfrontv1.DownloadProductRequest{
			SellerId: "SH01", StoreId: "ST01", TerminalId: "POS01", BatchNo: "1234567",
			TerminalOrderId: "1234567890",
		},
		resp: &mapfrontv1.DownloadProductResponse{Product: []*mapfrontv1.ProductItem{
			{ProductId: "1010", ProductName: "乐驾包5000", ProductShortName: "乐驾包5000", ProductPrice: 450000},
			{ProductId: "1011", ProductName: "乐驾包4000", ProductShortName: "乐驾包4000", ProductPrice: 350000},
		}},
		wantAnswer: `{"errcode":0,"errmsg":"产品下载成功","product":[{"productId":"1010","productName":"乐驾包5000","productShortName":"乐驾包5000","productPrice":450000,"remark":""},{"productId":"1011","productName":"乐驾包4000","productShortName":"乐驾包4000","productPrice":350000,"remark":""}]`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := readExample(t, tt.name)
			b.set(tt.resp, nil)
			rec := post(h, "/front/offline/"+tt.name, body)
			if rec.Code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
			}
			got, _ := b.last()
			if !proto.Equal(got, tt.want) {
				t.Errorf("server received\n%v\nwant\n%v", got, tt.want)
			}
			readAnswer(t, rec, body)
			if !strings.HasPrefix(rec.Body.String(), tt.wantAnswer+`,"request":`) {
				t.Errorf("answer\n%s\nwant prefix\n%s", rec.Body, tt.wantAnswer)
			}
		})
	}
}

// TestExactAnswer checks a whole answer byte for byte: compact, no HTML
// escaping, the body echoed as a JSON string, an empty list as [].
func TestExactAnswer(t *testing.T) {
	h, b := newGateway(t, Options{})
	b.set(&mapfrontv1.DownloadProductResponse{}, nil)
	body := "{\"sellerId\":\"SH01\",\n\t\"remark\":\"<a&b>\"}"
	rec := post(h, "/front/offline/download_product", body)
	want := `{"errcode":0,"errmsg":"产品下载成功","product":[],"request":"{\"sellerId\":\"SH01\",\n\t\"remark\":\"<a&b>\"}"}`
	if got := rec.Body.String(); got != want {
		t.Errorf("answer\n%s\nwant\n%s", got, want)
	}
	if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(len(want)) {
		t.Errorf("Content-Length = %s, want %d", got, len(want))
	}
}

// TestUnsetPayload checks that a response without its message still has the
// documented shape: an object of zero values, never null.
func TestUnsetPayload(t *testing.T) {
	h, b := newGateway(t, Options{})
	b.set(&mapfrontv1.GetAccountInfoResponse{}, nil)
	body := `{"query":{}}`
	rec := post(h, "/front/offline/get_account_info", body)
	want := `{"errcode":0,"errmsg":"查询余额成功","card":{"accountId":"","balance":0,"status":"","remark":""},"request":"{\"query\":{}}"}`
	if got := rec.Body.String(); got != want {
		t.Errorf("answer\n%s\nwant\n%s", got, want)
	}
}

// TestAmounts covers SPEC section 2 on amounts: integer fen as a JSON number
// or a digit string; fractions, negatives, overflow and non-digits refused
// with 10001 naming the field, before the server is called.
func TestAmounts(t *testing.T) {
	h, b := newGateway(t, Options{})
	tests := []struct {
		paySum  string // the JSON text of paySum; "" leaves it out
		want    *int64 // the value received; nil for absent
		wantErr string
	}{
		{paySum: "", want: nil},
		{paySum: "null", want: nil},
		{paySum: "0", want: proto.Int64(0)},
		{paySum: "100000", want: proto.Int64(100000)},
		{paySum: `"100000"`, want: proto.Int64(100000)},
		{paySum: `"007"`, want: proto.Int64(7)},
		{paySum: "9223372036854775807", want: proto.Int64(9223372036854775807)},
		{paySum: "1.5", wantErr: "字段paySum格式错误：金额必须是非负整数（分）"},
		{paySum: "100.00", wantErr: "字段paySum格式错误：金额必须是非负整数（分）"},
		{paySum: "1e3", wantErr: "字段paySum格式错误：金额必须是非负整数（分）"},
		{paySum: "-1", wantErr: "字段paySum格式错误：金额必须是非负整数（分）"},
		{paySum: `"-1"`, wantErr: "字段paySum格式错误：金额必须是非负整数（分）"},
		{paySum: `"12a"`, wantErr: "字段paySum格式错误：金额必须是非负整数（分）"},
		{paySum: `""`, wantErr: "字段paySum格式错误：金额必须是非负整数（分）"},
		{paySum: `" 1"`, wantErr: "字段paySum格式错误：金额必须是非负整数（分）"},
		{paySum: "true", wantErr: "字段paySum格式错误：金额必须是非负整数（分）"},
		{paySum: "[1]", wantErr: "字段paySum格式错误：金额必须是非负整数（分）"},
		{paySum: "99999999999999999999", wantErr: "字段paySum格式错误：金额超出范围"},
		{paySum: `"9223372036854775808"`, wantErr: "字段paySum格式错误：金额超出范围"},
	}
	for _, tt := range tests {
		t.Run(tt.paySum, func(t *testing.T) {
			body := `{"ID":"515411244445444444X","productId":"1010"`
			if tt.paySum != "" {
				body += `,"paySum":` + tt.paySum
			}
			body += "}"
			b.set(&mapfrontv1.OpenCardResponse{}, nil)
			_, before := b.last()
			rec := post(h, "/front/offline/open_card", body)
			a := readAnswer(t, rec, body)
			got, after := b.last()
			if tt.wantErr != "" {
				if rec.Code != http.StatusOK || a.Errcode != codeMalformed || a.Errmsg != tt.wantErr {
					t.Errorf("HTTP %d errcode %d errmsg %q, want 200 10001 %q", rec.Code, a.Errcode, a.Errmsg, tt.wantErr)
				}
				if after != before {
					t.Error("the server was called with a refused amount")
				}
				return
			}
			if a.Errcode != 0 {
				t.Fatalf("errcode %d %s", a.Errcode, a.Errmsg)
			}
			req := got.(*mapfrontv1.OpenCardRequest)
			if (req.PaySum == nil) != (tt.want == nil) || (tt.want != nil && *req.PaySum != *tt.want) {
				t.Errorf("paySum received = %v, want %v", req.PaySum, tt.want)
			}
		})
	}

	t.Run("nested digit string", func(t *testing.T) {
		b.set(&mapfrontv1.PayResponse{}, nil)
		body := `{"order":{"sum":"5000","productPrice":"500"}}`
		if a := readAnswer(t, post(h, "/front/offline/pay", body), body); a.Errcode != 0 {
			t.Fatalf("errcode %d %s", a.Errcode, a.Errmsg)
		}
		got, _ := b.last()
		if o := got.(*mapfrontv1.PayRequest).GetOrder(); o.GetSum() != 5000 || o.GetProductPrice() != 500 {
			t.Errorf("received %v", o)
		}
	})
	t.Run("nested refusal names the field", func(t *testing.T) {
		body := `{"order":{"sum":50.5}}`
		a := readAnswer(t, post(h, "/front/offline/pay", body), body)
		if a.Errcode != codeMalformed || a.Errmsg != "字段sum格式错误：金额必须是非负整数（分）" {
			t.Errorf("errcode %d errmsg %q", a.Errcode, a.Errmsg)
		}
	})
}

// TestLiberalInput covers what SPEC section 2 accepts from the partner.
func TestLiberalInput(t *testing.T) {
	h, b := newGateway(t, Options{})
	b.set(&mapfrontv1.PayResponse{}, nil)
	want := &mapfrontv1.PayRequest{Order: &mapfrontv1.PayOrderInput{
		ConsumerId: "13912345678", Sum: proto.Int64(5000), BatchNo: "123123", Remark: "",
	}}
	tests := []struct {
		name    string
		body    string
		headers []string
	}{
		{"BOM", "\ufeff" + `{"order":{"consumerId":"13912345678","sum":5000,"batchNo":"123123"}}`, nil},
		{"trailing commas", `{"order":{"consumerId":"13912345678","sum":5000,"batchNo":"123123",},}`, nil},
		{"unknown fields", `{"version":2,"order":{"consumerId":"13912345678","extra":{"a":[1,{"b":null}]},"sum":5000,"batchNo":"123123"},"sign":"x"}`, nil},
		{"number for a string", `{"order":{"consumerId":13912345678,"sum":5000,"batchNo":123123}}`, nil},
		{"null is absent", `{"order":{"consumerId":"13912345678","sum":5000,"batchNo":"123123","remark":null,"productPrice":null}}`, nil},
		{"any content type", `{"order":{"consumerId":"13912345678","sum":5000,"batchNo":"123123"}}`,
			[]string{"Content-Type", "text/plain;charset=GBK", "Accept", "application/xml"}},
		{"form content type", `{"order":{"consumerId":"13912345678","sum":5000,"batchNo":"123123"}}`,
			[]string{"Content-Type", "application/x-www-form-urlencoded", "X-HTTP-Method-Override", "GET"}},
		{"no content type", `{"order":{"consumerId":"13912345678","sum":5000,"batchNo":"123123"}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(h, http.MethodPost, "/front/offline/pay", tt.body, tt.headers...)
			a := readAnswer(t, rec, tt.body)
			if rec.Code != http.StatusOK || a.Errcode != 0 {
				t.Fatalf("HTTP %d errcode %d %s", rec.Code, a.Errcode, a.Errmsg)
			}
			got, _ := b.last()
			if !proto.Equal(got, want) {
				t.Errorf("received %v, want %v", got, want)
			}
		})
	}
}

// TestMalformed covers bodies that are refused with 10001 and HTTP 200.
func TestMalformed(t *testing.T) {
	h, b := newGateway(t, Options{})
	tests := []struct{ body, errmsg string }{
		{"", msgNotJSON},
		{"   ", msgNotJSON},
		{"hello", msgNotJSON},
		{"{", msgNotJSON},
		{`{"ID":"1"`, msgNotJSON},
		{`{"ID":"1"}}`, msgNotJSON},
		{`{"ID":"1"} {}`, msgNotJSON},
		{`{"ID":"1",,}`, msgNotJSON},
		{`{'ID':'1'}`, msgNotJSON},
		{`[{"ID":"1"}]`, msgNotObject},
		{`null`, msgNotObject},
		{`"x"`, msgNotObject},
		{"{\"ID\":\"\xff\"}", msgNotUTF8},
		{`{"ID":"1","ID":"2"}`, "字段ID重复"},
		{`{"ID":{"a":1}}`, "字段ID格式错误：应为字符串"},
		{`{"mobileNum":true}`, "字段mobileNum格式错误：应为字符串"},
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), msgTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			rec := post(h, "/front/offline/open_card", tt.body)
			sent := strings.ToValidUTF8(tt.body, "\ufffd")
			a := readAnswer(t, rec, sent)
			if rec.Code != http.StatusOK || a.Errcode != codeMalformed || a.Errmsg != tt.errmsg {
				t.Errorf("HTTP %d errcode %d errmsg %q, want 200 10001 %q", rec.Code, a.Errcode, a.Errmsg, tt.errmsg)
			}
		})
	}
	t.Run("nested shape", func(t *testing.T) {
		body := `{"order":"x"}`
		a := readAnswer(t, post(h, "/front/offline/pay", body), body)
		if a.Errcode != codeMalformed || a.Errmsg != "字段order格式错误：应为JSON对象" {
			t.Errorf("errcode %d errmsg %q", a.Errcode, a.Errmsg)
		}
	})
	if _, calls := b.last(); calls != 0 {
		t.Errorf("the server was called %d times for malformed bodies", calls)
	}
}

// errorStatus is a business error the way the server sends it.
func errorStatus(t *testing.T, code codes.Code, detail *mapfrontv1.ErrorDetail) error {
	t.Helper()
	st, err := status.New(code, "business error").WithDetails(detail)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// TestBusinessErrors: the ErrorDetail's errcode and errmsg, HTTP 200, no payload.
func TestBusinessErrors(t *testing.T) {
	h, b := newGateway(t, Options{})
	body := readExample(t, "pay")
	tests := []struct {
		name   string
		detail *mapfrontv1.ErrorDetail
		want   string // errmsg
	}{
		{"insufficient", &mapfrontv1.ErrorDetail{Errcode: 10009, Errmsg: "余额不足"}, "余额不足"},
		{"wrong password", &mapfrontv1.ErrorDetail{Errcode: 10007, Errmsg: "支付密码错误，还可尝试4次"}, "支付密码错误，还可尝试4次"},
		{"internal quoted", &mapfrontv1.ErrorDetail{Errcode: 10000, Errmsg: "其它错误（参考号AB12）", Reference: "AB12"}, "其它错误（参考号AB12）"},
		{"internal unquoted", &mapfrontv1.ErrorDetail{Errcode: 10000, Reference: "AB12"}, "其它错误（参考号AB12）"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.set(nil, errorStatus(t, codes.FailedPrecondition, tt.detail))
			rec := post(h, "/front/offline/pay", body)
			a := readAnswer(t, rec, body)
			if rec.Code != http.StatusOK || a.Errcode != int(tt.detail.Errcode) || a.Errmsg != tt.want {
				t.Errorf("HTTP %d errcode %d errmsg %q, want 200 %d %q", rec.Code, a.Errcode, a.Errmsg, tt.detail.Errcode, tt.want)
			}
			if keys := topKeys(t, rec.Body.Bytes()); len(keys) != 3 {
				t.Errorf("error answer keys = %v, want errcode, errmsg, request", keys)
			}
		})
	}
}

var referenced = regexp.MustCompile(`^其它错误（参考号[0-9A-F]{8}）$`)

// TestTransportErrors: a status without ErrorDetail. Unreachable server: 10018
// (nothing happened, try again); anything else: 10000 with a reference, and
// never the server's internal message.
func TestTransportErrors(t *testing.T) {
	body := readExample(t, "pay")

	t.Run("server down", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		_ = lis.Close()
		h := handlerFor(t, addr, Options{})
		rec := post(h, "/front/offline/pay", body)
		a := readAnswer(t, rec, body)
		if rec.Code != http.StatusOK || a.Errcode != codeBusy || a.Errmsg != "系统繁忙，请重试" {
			t.Errorf("HTTP %d errcode %d errmsg %q, want 200 10018", rec.Code, a.Errcode, a.Errmsg)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		h, b := newGateway(t, Options{CallTimeout: 50 * time.Millisecond})
		b.mu.Lock()
		b.delay = 5 * time.Second
		b.mu.Unlock()
		start := time.Now()
		rec := post(h, "/front/offline/pay", body)
		a := readAnswer(t, rec, body)
		if rec.Code != http.StatusOK || a.Errcode != codeInternal || !referenced.MatchString(a.Errmsg) {
			t.Errorf("HTTP %d errcode %d errmsg %q, want 200 10000 with a reference", rec.Code, a.Errcode, a.Errmsg)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v despite a 50ms call timeout", d)
		}
	})
	t.Run("status without detail", func(t *testing.T) {
		var logs bytes.Buffer
		h, b := newGateway(t, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		b.set(nil, status.Error(codes.Internal, "pq: relation accounts does not exist"))
		rec := post(h, "/front/offline/pay", body)
		a := readAnswer(t, rec, body)
		if rec.Code != http.StatusOK || a.Errcode != codeInternal || !referenced.MatchString(a.Errmsg) {
			t.Errorf("HTTP %d errcode %d errmsg %q, want 200 10000 with a reference", rec.Code, a.Errcode, a.Errmsg)
		}
		ref := strings.TrimSuffix(strings.TrimPrefix(a.Errmsg, "其它错误（参考号"), "）")
		if !strings.Contains(logs.String(), `"reference":"`+ref+`"`) {
			t.Errorf("reference %s not in the log:\n%s", ref, logs.String())
		}
	})
}

// TestHTTPErrors: where no business answer is possible, a 4xx with the envelope.
func TestHTTPErrors(t *testing.T) {
	h, b := newGateway(t, Options{})
	b.set(&mapfrontv1.DownloadProductResponse{}, nil)
	tests := []struct {
		name, method, path, body string
		status                   int
		errmsg                   string
		echo                     string
	}{
		// The body is echoed in these too (SPEC section 2: every answer,
		// errors included), when it is within the limit.
		{"unknown path", http.MethodPost, "/front/offline/refund", `{"a":1}`, http.StatusNotFound, msgNotFound, `{"a":1}`},
		{"outside the prefix", http.MethodPost, "/", "{}", http.StatusNotFound, msgNotFound, "{}"},
		{"trailing slash", http.MethodPost, "/front/offline/pay/", "{}", http.StatusNotFound, msgNotFound, "{}"},
		{"unknown path over the limit", http.MethodPost, "/front/offline/refund",
			`{"remark":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`, http.StatusNotFound, msgNotFound, ""},
		{"GET", http.MethodGet, "/front/offline/pay", "", http.StatusMethodNotAllowed, msgMethod, ""},
		{"PUT", http.MethodPut, "/front/offline/pay", "{}", http.StatusMethodNotAllowed, msgMethod, "{}"},
		{"over the limit", http.MethodPost, "/front/offline/download_product",
			`{"remark":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`,
			http.StatusRequestEntityTooLarge, msgTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(h, tt.method, tt.path, tt.body)
			a := readAnswer(t, rec, tt.echo)
			if rec.Code != tt.status || a.Errcode != codeMalformed || a.Errmsg != tt.errmsg {
				t.Errorf("HTTP %d errcode %d errmsg %q, want %d 10001 %q", rec.Code, a.Errcode, a.Errmsg, tt.status, tt.errmsg)
			}
			if tt.status == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q, want POST", rec.Header().Get("Allow"))
			}
		})
	}
	t.Run("at the limit", func(t *testing.T) {
		body := `{"sellerId":"SH01"}`
		body += strings.Repeat(" ", DefaultMaxBodyBytes-len(body))
		rec := post(h, "/front/offline/download_product", body)
		if a := readAnswer(t, rec, body); rec.Code != http.StatusOK || a.Errcode != 0 {
			t.Errorf("HTTP %d errcode %d %s", rec.Code, a.Errcode, a.Errmsg)
		}
	})
	t.Run("configured limit", func(t *testing.T) {
		h, _ := newGateway(t, Options{MaxBodyBytes: 16})
		rec := post(h, "/front/offline/download_product", `{"sellerId":"SH01"}`)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("HTTP %d, want 413", rec.Code)
		}
	})
}

// TestNoBodyInLogs: logs carry the path and errcode, never the body (SPEC
// section 7: PIN blocks and ID numbers).
func TestNoBodyInLogs(t *testing.T) {
	var logs bytes.Buffer
	h, b := newGateway(t, Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	body := `{"order":{"consumerId":"13912345678","paymentCodeDES":"ABC5E23474210DAC","sum":5000}}`
	b.set(nil, errorStatus(t, codes.FailedPrecondition, &mapfrontv1.ErrorDetail{Errcode: 10007, Errmsg: "支付密码错误"}))
	post(h, "/front/offline/pay", body)
	b.set(nil, status.Error(codes.Internal, "x"))
	post(h, "/front/offline/pay", body)
	post(h, "/front/offline/pay", `{"order":{"paymentCodeDES":"ABC5E23474210DAC","sum":1.5}}`)
	out := logs.String()
	for _, secret := range []string{"ABC5E23474210DAC", "13912345678"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %s:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, `"errcode":10007`) {
		t.Errorf("access log lacks the errcode:\n%s", out)
	}
}

// TestAccessLogEvery: with AccessLogEvery N the access log keeps one line in
// N successful answers (marked "sampled"), every decline, error and refusal,
// and every success again at log level debug.
func TestAccessLogEvery(t *testing.T) {
	lines := func(logs *bytes.Buffer, want string) int { return strings.Count(logs.String(), want) }
	body := readExample(t, "download_product")
	var logs bytes.Buffer
	h, b := newGateway(t, Options{AccessLogEvery: 10, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	b.set(&mapfrontv1.DownloadProductResponse{}, nil)
	for range 25 {
		post(h, "/front/offline/download_product", body)
	}
	if n := lines(&logs, `"errcode":0,`); n != 3 {
		t.Errorf("%d lines of 25 successes, want 3 (the 1st, 11th, 21st):\n%s", n, logs.String())
	}
	if n := lines(&logs, `"sampled":10`); n != 3 {
		t.Errorf("%d lines marked sampled, want 3:\n%s", n, logs.String())
	}
	logs.Reset()
	b.set(nil, errorStatus(t, codes.FailedPrecondition, &mapfrontv1.ErrorDetail{Errcode: 10007, Errmsg: "支付密码错误"}))
	for range 5 {
		post(h, "/front/offline/download_product", body)
	}
	post(h, "/front/offline/refund", "{}")
	if n := lines(&logs, `"errcode":10007,`); n != 5 {
		t.Errorf("%d lines of 5 declines, want 5:\n%s", n, logs.String())
	}
	if n := lines(&logs, `"status":404,"errcode":10001,`); n != 1 {
		t.Errorf("%d lines of 1 refusal, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "sampled") {
		t.Errorf("a decline or refusal marked sampled:\n%s", logs.String())
	}

	logs.Reset()
	h, b = newGateway(t, Options{AccessLogEvery: 10, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	b.set(&mapfrontv1.DownloadProductResponse{}, nil)
	for range 5 {
		post(h, "/front/offline/download_product", body)
	}
	if n := lines(&logs, `"errcode":0,`); n != 5 || strings.Contains(logs.String(), "sampled") {
		t.Errorf("at debug: %d lines of 5 successes, want 5 unmarked:\n%s", n, logs.String())
	}
}

// TestConcurrent runs requests in parallel under -race.
func TestConcurrent(t *testing.T) {
	h, b := newGateway(t, Options{})
	b.set(&mapfrontv1.DownloadProductResponse{}, nil)
	body := readExample(t, "download_product")
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := post(h, "/front/offline/download_product", body)
			if rec.Code != http.StatusOK {
				t.Errorf("HTTP %d", rec.Code)
			}
			_, _ = io.Copy(io.Discard, rec.Body)
		}()
	}
	wg.Wait()
}
