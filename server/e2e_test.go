package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mapfront/internal/mtls/mtlstest"
	"mapfront/server/internal/config"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
	"mapfront/server/internal/postgres"
	"mapfront/server/internal/secret"
)

// system is a server on a fresh database with the demo data, and the real
// gateway binary in front of it: the POSP's view, over HTTP.
type system struct {
	base string
	ops  string // the server's health and metrics listener
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startSystem starts the server and, unless inProcess, the gateway program
// in front of it; inProcess serves the legacy paths from the server itself
// (the single-binary mode, MAPFRONT_LEGACY_ADDR).
func startSystem(t *testing.T, inProcess bool) *system {
	t.Helper()
	return startSystemAs(t, inProcess, "gateway")
}

// startSystemAs is startSystem whose single-binary legacy listener calls as
// the certificate identity legacyIdentity (the gateway's, role posp, in
// startSystem).
func startSystemAs(t *testing.T, inProcess bool, legacyIdentity string) *system {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test builds the gateway")
	}
	keys, err := secret.Parse(secret.Generate())
	if err != nil {
		t.Fatal(err)
	}
	zone, _ := time.LoadLocation("Asia/Shanghai")
	cfg := &config.Config{GRPCAddr: freeAddr(t), HTTPAddr: freeAddr(t), Zone: zone, Policy: mapfront.DefaultPolicy(),
		MaxConns: 8, StatementTimeout: 5 * time.Second, MaxMessageBytes: 4 << 20, ShutdownTimeout: 5 * time.Second}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	store, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.Options{
		Clock: mapfront.Clock{Zone: zone, Now: time.Now}, Policy: cfg.Policy,
		NewCustomerPassword: mapfront.InitialPasswordHasher(cfg.Policy, keys), SealID: mapfront.IDSealer(keys), Log: log, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := mapfront.NewAdminService(store, keys, cfg.Policy).LoadDemo(ctx, demoTPK); err != nil {
		t.Fatal(err)
	}
	pki := withTestTLS(t, cfg)
	httpAddr := freeAddr(t)
	if inProcess {
		cfg.LegacyAddr = httpAddr
		gw := pki.Client(legacyIdentity)
		cfg.LegacyCert, cfg.LegacyKey = gw.Cert, gw.Key
	}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log, store, keys) }()
	t.Cleanup(func() {
		cancel()
		<-done
		store.Close()
	})
	if !inProcess {
		gw := filepath.Join(t.TempDir(), "gateway")
		build := exec.Command("go", "build", "-o", gw, "mapfront/gateway")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			t.Fatalf("build gateway: %v", err)
		}
		cmd := exec.Command(gw, append([]string{"-addr", httpAddr, "-grpc-addr", cfg.GRPCAddr}, mtlstest.Args(pki.Client("gateway"))...)...)
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	base := "http://" + httpAddr
	ready := base + "/readyz"
	if inProcess {
		ready = "http://" + cfg.HTTPAddr + "/readyz"
	}
	for i := 0; ; i++ {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 100 {
			t.Fatalf("gateway not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &system{base: base, ops: "http://" + cfg.HTTPAddr}
}

// answer is a decoded envelope with its top-level keys in order.
type answer struct {
	raw  []byte
	keys []string
	body map[string]json.RawMessage
}

func (s *system) post(t *testing.T, path, body string) *answer {
	t.Helper()
	resp, err := http.Post(s.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: HTTP %d %s", path, resp.StatusCode, raw)
	}
	a := &answer{raw: raw, keys: objectKeys(t, raw)}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s: %v: %s", path, err, raw)
	}
	var echoed string
	if err := json.Unmarshal(a.body["request"], &echoed); err != nil || echoed != body {
		t.Fatalf("%s: request echo %q, want the body byte for byte", path, a.body["request"])
	}
	return a
}

func (a *answer) errcode(t *testing.T) int {
	t.Helper()
	var c int
	if err := json.Unmarshal(a.body["errcode"], &c); err != nil {
		t.Fatalf("no errcode in %s", a.raw)
	}
	return c
}

func (a *answer) errmsg() string {
	var m string
	_ = json.Unmarshal(a.body["errmsg"], &m)
	return m
}

func (a *answer) object(t *testing.T, name string) (map[string]any, []string) {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(a.body[name]))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s in %s: %v", name, a.raw, err)
	}
	return m, objectKeys(t, a.body[name])
}

func objectKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	var keys []string
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return keys
		}
		if err != nil {
			t.Fatalf("not JSON: %v: %s", err, raw)
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
			} else {
				depth--
			}
		case string:
			if depth == 1 && d.More() {
				keys = append(keys, v)
				// Skip the value.
				var skip json.RawMessage
				if err := d.Decode(&skip); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func wantKeys(t *testing.T, what string, got []string, want string) {
	t.Helper()
	if strings.Join(got, ",") != want {
		t.Errorf("%s keys %v, want %s", what, got, want)
	}
}

// The partner document's examples, verbatim (trailing commas included), are
// golden cases of the whole system (issue 2, shows 1 and 2; issue 3, show 1):
// through the gateway program, and through the server's single-binary mode.
func TestPartnerDocumentExamples(t *testing.T) {
	for _, mode := range []struct {
		name      string
		inProcess bool
	}{{"gateway", false}, {"single-binary", true}} {
		t.Run(mode.name, func(t *testing.T) { partnerExamples(t, startSystem(t, mode.inProcess)) })
	}
}

func partnerExamples(t *testing.T, s *system) {
	// download_product, as written in the document.
	a := s.post(t, "/front/offline/download_product", `{
        "sellerId":"SH01",
        "storeId":"ST01",
        "terminalId":"POS01",
        "batchNo":"1234567",
        "terminalOrderId":"1234567890",
    }`)
	if a.errcode(t) != 0 {
		t.Fatalf("download_product: %s", a.raw)
	}
	wantKeys(t, "download_product", a.keys, "errcode,errmsg,product,request")
	if !bytes.Contains(a.raw, []byte(`{"productId":"1010","productName":"乐驾包5000","productShortName":"乐驾包5000","productPrice":450000,"remark":""}`)) ||
		!bytes.Contains(a.raw, []byte(`"productPrice":350000`)) || !bytes.Contains(a.raw, []byte(`"productPrice":150000`)) {
		t.Errorf("download_product products: %s", a.raw)
	}

	// open_card, as written: its ID has 19 characters.
	openDoc := `{
        "ID":"515411244445444444X", 
        "mobileNum":"13912345678", 
        "referrer":"12345678",
        "sellerId":"SH01",
        "storeId":"ST01",
        "terminalId":"POS01",
        "batchNo":"1234567",
        "operatorId":"zhangsan",
        "terminalOrderId":"1234567890",
        "productId":"1010",
        "paySum":100000
    }`
	a = s.post(t, "/front/offline/open_card", openDoc)
	if a.errcode(t) != 10001 || !strings.Contains(a.errmsg(), "ID") {
		t.Fatalf("open_card example: %s", a.raw)
	}
	// With the demo customer's valid ID it opens.
	a = s.post(t, "/front/offline/open_card", strings.Replace(openDoc, "515411244445444444X", "11010519491231002X", 1))
	if a.errcode(t) != 0 {
		t.Fatalf("open_card: %s", a.raw)
	}
	wantKeys(t, "open_card", a.keys, "errcode,errmsg,order,request")
	order, keys := a.object(t, "order")
	wantKeys(t, "open_card order", keys, "orderId,mobileNum,sellerId,storeId,terminalId,operatorId,batchNo,terminalOrderId,remark")
	if id, _ := order["orderId"].(string); len(id) != 20 || order["remark"] != "已付1000.00元，尚欠3500.00元" {
		t.Errorf("open_card order %v", order)
	}

	// pay, as written: its paymentCodeDES is no PIN block.
	payDoc := `{
        "order":{
            "consumerId":"13912345678",
            "paymentCodeDES":"231EEREWQR",
            "sum":5000,
            "sellerId":"SH12345",
            "storeId":"ST12345",
            "terminalId":"ZJ000001",
            "operatorId":"zhangsan",
            "batchNo":"123123123122132",
            "terminalOrderId":"1234567890123456789",
            "productName":"0号柴油",
            "productPrice":500,
            "productQuantity":"1.55",
            "remark":""
        }
    }`
	if a = s.post(t, "/front/offline/pay", payDoc); a.errcode(t) != 10017 {
		t.Fatalf("pay example: %s", a.raw)
	}
	// Without sum the pay is malformed (10001 naming it), not an amount of 0.
	if a = s.post(t, "/front/offline/pay", strings.Replace(payDoc, `"sum":5000,`, "", 1)); a.errcode(t) != 10001 || !strings.Contains(a.errmsg(), "sum") {
		t.Fatalf("pay without sum: %s", a.raw)
	}
	block := func(consumer string) string {
		var out bytes.Buffer
		cmd := exec.Command("go", "run", ".", "pinblock", "-pin", "123456", "-consumer", consumer)
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("pinblock command: %v", err)
		}
		return strings.TrimSpace(out.String())
	}
	pb := block("13912345678")
	// The decline is the key's stored outcome: the same packet gets it again,
	// and the key with another PIN block is 10003.
	if a = s.post(t, "/front/offline/pay", payDoc); a.errcode(t) != 10017 {
		t.Fatalf("pay example again: %s", a.raw)
	}
	if a = s.post(t, "/front/offline/pay", strings.Replace(payDoc, "231EEREWQR", pb, 1)); a.errcode(t) != 10003 {
		t.Fatalf("pay example's key with a good block: %s", a.raw)
	}
	// A new terminal key with a real PIN block pays.
	payDoc = strings.Replace(payDoc, `"terminalOrderId":"1234567890123456789"`, `"terminalOrderId":"1234567890123456790"`, 1)
	a = s.post(t, "/front/offline/pay", strings.Replace(payDoc, "231EEREWQR", pb, 1))
	if a.errcode(t) != 0 || a.errmsg() != "支付成功" {
		t.Fatalf("pay: %s", a.raw)
	}
	order, keys = a.object(t, "order")
	wantKeys(t, "pay order", keys, "orderId,consumerId,sum,payTime,sellerId,storeId,terminalId,operatorId,batchNo,terminalOrderId,productName,productPrice,productQuantity,remark,status,accountId,balance")
	if order["accountId"] != "1010123412341234" || order["balance"] != json.Number("295000") || order["sum"] != json.Number("5000") || order["status"] != "支付成功" {
		t.Errorf("pay order %v", order)
	}
	// The same packet again: the same answer.
	again := s.post(t, "/front/offline/pay", strings.Replace(payDoc, "231EEREWQR", pb, 1))
	if !bytes.Equal(again.raw, a.raw) {
		t.Errorf("repeat pay answered\n%s\nwant\n%s", again.raw, a.raw)
	}

	// get_account_info by the card.
	queryDoc := `{
        "query":{
            "consumerId":"1010123412341234",
            "paymentCodeDES":"` + block("1010123412341234") + `",
            "sellerId":"GM01",
            "storeId":"ST01",
            "terminalId":"POS12345",
            "operatorId":"zhangsan",
            "terminalOrderId":"1234567890",
            "batchNo":"123123123122132",
            "remark":""
        }
    }`
	a = s.post(t, "/front/offline/get_account_info", queryDoc)
	if a.errcode(t) != 0 {
		t.Fatalf("get_account_info: %s", a.raw)
	}
	card, keys := a.object(t, "card")
	wantKeys(t, "card", keys, "accountId,balance,status,remark")
	if card["balance"] != json.Number("295000") || card["status"] != "正常" {
		t.Errorf("card %v", card)
	}

	// pay_cancel as written: no such order.
	a = s.post(t, "/front/offline/pay_cancel", `{
        "order":{
            "orderId":"12345678900987654321",
            "sellerId":"SH12345",
            "storeId":"ST12345",
            "terminalId":"ZJ000001",
            "operatorId":"zhangsan",
            "batchNo":"123123123122132",
            "terminalOrderId":"1234567890123456789",
            "remark":""
        }
    }`)
	if a.errcode(t) != 10010 {
		t.Fatalf("pay_cancel example: %s", a.raw)
	}

	// pay_undo as written: a key that never paid is a tombstone, errcode 0.
	a = s.post(t, "/front/offline/pay_undo", `{
        "order":{
            "sellerId":"GM01",
            "storeId":"ST01",
            "terminalId":"POS12345",
            "operatorId":"zhangsan",
            "terminalOrderId":"1234567890",
            "batchNo":"123123123122132",
            "remark":""
        }
    }`)
	if a.errcode(t) != 0 {
		t.Fatalf("pay_undo example: %s", a.raw)
	}
	_, keys = a.object(t, "order")
	wantKeys(t, "pay_undo order", keys, "orderId,consumerId,sum,payTime,sellerId,storeId,terminalId,operatorId,batchNo,terminalOrderId,productName,productPrice,productQuantity,remark,status")

	// repeal_card as written: the open_card above used this very key.
	a = s.post(t, "/front/offline/repeal_card", `{
        "sellerId":"SH01",
        "storeId":"ST01",
        "terminalId":"POS01",
        "batchNo":"1234567",
        "operatorId":"zhangsan",
        "terminalOrderId":"1234567890",
    }`)
	if a.errcode(t) != 0 {
		t.Fatalf("repeal_card example: %s", a.raw)
	}
	order, _ = a.object(t, "order")
	if !strings.HasPrefix(fmt.Sprint(order["remark"]), "已撤销1000.00元") {
		t.Errorf("repeal order %v", order)
	}
}
