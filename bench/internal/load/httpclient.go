package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// HTTPClient drives the gateway's legacy JSON paths, as the POSP does.
type HTTPClient struct {
	base string
	http *http.Client
}

// NewHTTPClient targets gateway (http://host:port, loopback only). The
// transport keeps up to concurrency idle connections to it: with the default
// of 2, most workers would open a new TCP connection for every request and
// the run would measure connection set-up (and exhaust ephemeral ports)
// instead of the gateway.
func NewHTTPClient(gateway string, concurrency int) (*HTTPClient, error) {
	if err := CheckLoopbackURL(gateway); err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               nil, // never through a proxy: loopback only
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &HTTPClient{base: strings.TrimRight(gateway, "/") + "/front/offline/", http: &http.Client{Transport: tr}}, nil
}

// Close drops the idle connections.
func (c *HTTPClient) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// The request bodies, with the fields in the partner document's order.
type payBody struct {
	Order payOrder `json:"order"`
}
type payOrder struct {
	ConsumerID      string `json:"consumerId"`
	PaymentCodeDES  string `json:"paymentCodeDES"`
	Sum             int64  `json:"sum"`
	SellerID        string `json:"sellerId"`
	StoreID         string `json:"storeId"`
	TerminalID      string `json:"terminalId"`
	OperatorID      string `json:"operatorId"`
	BatchNo         string `json:"batchNo"`
	TerminalOrderID string `json:"terminalOrderId"`
	ProductName     string `json:"productName"`
	ProductPrice    int64  `json:"productPrice"`
	ProductQuantity string `json:"productQuantity"`
	Remark          string `json:"remark"`
}
type queryBody struct {
	Query queryFields `json:"query"`
}
type queryFields struct {
	ConsumerID      string `json:"consumerId"`
	PaymentCodeDES  string `json:"paymentCodeDES"`
	SellerID        string `json:"sellerId"`
	StoreID         string `json:"storeId"`
	TerminalID      string `json:"terminalId"`
	OperatorID      string `json:"operatorId"`
	TerminalOrderID string `json:"terminalOrderId"`
	BatchNo         string `json:"batchNo"`
	Remark          string `json:"remark"`
}
type cancelBody struct {
	Order cancelOrder `json:"order"`
}
type cancelOrder struct {
	OrderID         string `json:"orderId"`
	SellerID        string `json:"sellerId"`
	StoreID         string `json:"storeId"`
	TerminalID      string `json:"terminalId"`
	OperatorID      string `json:"operatorId"`
	BatchNo         string `json:"batchNo"`
	TerminalOrderID string `json:"terminalOrderId"`
	Remark          string `json:"remark"`
}
type undoBody struct {
	Order undoOrder `json:"order"`
}
type undoOrder struct {
	SellerID        string `json:"sellerId"`
	StoreID         string `json:"storeId"`
	TerminalID      string `json:"terminalId"`
	OperatorID      string `json:"operatorId"`
	TerminalOrderID string `json:"terminalOrderId"`
	BatchNo         string `json:"batchNo"`
	Remark          string `json:"remark"`
}

// envelope is the part of every answer the load generator reads.
type envelope struct {
	Errcode *int   `json:"errcode"`
	Errmsg  string `json:"errmsg"`
	Order   *struct {
		OrderID string `json:"orderId"`
	} `json:"order"`
}

// productName etc. are recorded only; fixed values keep the requests alike.
const (
	benchProductName = "bench"
	benchQuantity    = "1"
)

// Body returns the JSON body of t (exported for tests).
func Body(t *Txn) ([]byte, error) {
	var v any
	switch t.Op {
	case OpPay:
		v = payBody{payOrder{ConsumerID: t.ConsumerID, PaymentCodeDES: t.PINBlock, Sum: t.Sum,
			SellerID: t.SellerID, StoreID: t.StoreID, TerminalID: t.TerminalID, OperatorID: t.OperatorID,
			BatchNo: t.BatchNo, TerminalOrderID: t.TerminalOrderID,
			ProductName: benchProductName, ProductPrice: t.Sum, ProductQuantity: benchQuantity}}
	case OpQuery:
		v = queryBody{queryFields{ConsumerID: t.ConsumerID, PaymentCodeDES: t.PINBlock,
			SellerID: t.SellerID, StoreID: t.StoreID, TerminalID: t.TerminalID, OperatorID: t.OperatorID,
			TerminalOrderID: t.TerminalOrderID, BatchNo: t.BatchNo}}
	case OpCancel:
		v = cancelBody{cancelOrder{OrderID: t.OrderID, SellerID: t.SellerID, StoreID: t.StoreID,
			TerminalID: t.TerminalID, OperatorID: t.OperatorID, BatchNo: t.BatchNo, TerminalOrderID: t.TerminalOrderID}}
	case OpUndo:
		v = undoBody{undoOrder{SellerID: t.SellerID, StoreID: t.StoreID, TerminalID: t.TerminalID,
			OperatorID: t.OperatorID, TerminalOrderID: t.TerminalOrderID, BatchNo: t.BatchNo}}
	default:
		return nil, fmt.Errorf("unknown op %v", t.Op)
	}
	return json.Marshal(v)
}

// Do posts t to its legacy path and reads the envelope.
func (c *HTTPClient) Do(ctx context.Context, t *Txn) Outcome {
	body, err := Body(t)
	if err != nil {
		return Outcome{Errcode: CodeBadAnswer, Errmsg: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+t.Op.Path(), bytes.NewReader(body))
	if err != nil {
		return Outcome{Errcode: CodeTransport, Errmsg: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return Outcome{Errcode: CodeTransport, Errmsg: err.Error()}
	}
	// Reading to the end and closing returns the connection to the pool.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return Outcome{Errcode: CodeTransport, Errmsg: "reading answer: " + err.Error()}
	}
	return parseAnswer(t.Op, resp.StatusCode, raw)
}

// parseAnswer turns an HTTP answer into an Outcome.
func parseAnswer(op Op, status int, raw []byte) Outcome {
	var env envelope
	jsonErr := json.Unmarshal(raw, &env)
	if status != http.StatusOK {
		msg := fmt.Sprintf("HTTP %d", status)
		if jsonErr == nil && env.Errcode != nil {
			msg += fmt.Sprintf(" errcode %d %s", *env.Errcode, env.Errmsg)
		}
		return Outcome{Errcode: CodeBadAnswer, Errmsg: msg}
	}
	if jsonErr != nil || env.Errcode == nil {
		return Outcome{Errcode: CodeBadAnswer, Errmsg: "not the envelope: " + snippet(raw)}
	}
	out := Outcome{Errcode: *env.Errcode, Errmsg: env.Errmsg}
	if env.Order != nil {
		out.OrderID = env.Order.OrderID
	}
	if out.Errcode == 0 && op == OpPay && out.OrderID == "" {
		return Outcome{Errcode: CodeBadAnswer, Errmsg: "pay approved without orderId: " + snippet(raw)}
	}
	return out
}

func snippet(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
