// Command demosettle is `make demo-settle`: the nightly flow (SPEC section 6)
// on a running `make run`, in about two minutes.
//
//  1. It makes three card sales through the gateway's legacy JSON path
//     (POST /front/offline/open_card, as a POS terminal would): one card
//     paid in full and one paid in two parts (拆单付款).
//  2. It asks the server (AdminService.GetOrder) on which business date the
//     payments fell: the server's own answer, so the file and the settlement
//     name the same day the server does.
//  3. It writes that day's settlement file (yyyyMMdd.txt, the POSP's
//     '|'-separated format) to a local directory.
//  4. It waits until the business day has ended (the server's cutover, read
//     from .data/run.env where `make run` wrote it), runs `bin/settlement run
//     --file` with the settlement identity's certificate and the same zone
//     and cutover, which prints the batch report, and shows the new cards:
//     active, with their face value.
//
// The server refuses to settle a day that has not ended, and under the
// default cutover (00:00) that is hours away, so the demo wants a server
// whose cutover comes a few minutes after it starts: `make run-demo-day`.
// Against a server whose day ends later than -max-wait it stops before making
// any sale and says so.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/enumtext"
	"mapfront/internal/idmask"
	"mapfront/internal/mtls"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-settle:", err)
		os.Exit(1)
	}
}

func run() error {
	gateway := flag.String("gateway", "http://127.0.0.1:8080", "the gateway's base URL")
	grpcAddr := flag.String("grpc-addr", "127.0.0.1:9090", "the server's gRPC address")
	data := flag.String("data", ".data", "make run's data directory (pki/, run.env)")
	bin := flag.String("bin", "bin", "directory of the settlement command")
	maxWait := flag.Duration("max-wait", 10*time.Minute, "longest wait for the business day to end")
	flag.Parse()

	env, err := readEnv(filepath.Join(*data, "run.env"))
	if err != nil {
		return fmt.Errorf("%w (is `make run` up?)", err)
	}
	zone, err := time.LoadLocation(env["MAPFRONT_ZONE"])
	if err != nil {
		return fmt.Errorf("MAPFRONT_ZONE in run.env: %w", err)
	}
	cut, err := time.Parse("15:04", env["MAPFRONT_CUTOVER"])
	if err != nil {
		return fmt.Errorf("MAPFRONT_CUTOVER in run.env: %w", err)
	}
	// Whatever the naming rule, a business day runs from one cutover to the
	// next, so the day of a sale made now ends at the next cutover.
	now := time.Now()
	end := nextCutover(now.In(zone), cut.Hour(), cut.Minute())
	if wait := end.Sub(now); wait > *maxWait || wait < 20*time.Second {
		return fmt.Errorf("the running server's business day ends at its cutover %s %s, in %v: too far for a demo.\n"+
			"Stop `make run` and start `make run-demo-day` (cutover 3 minutes after start), then `make demo-settle` at once",
			env["MAPFRONT_CUTOVER"], zone, wait.Round(time.Second))
	}

	pki := filepath.Join(*data, "pki")
	dial, err := mtls.DialCredentials(*grpcAddr, mtls.Files{CA: filepath.Join(pki, "ca.crt"),
		Cert: filepath.Join(pki, "operator.crt"), Key: filepath.Join(pki, "operator.key")}, false)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(*grpcAddr, dial)
	if err != nil {
		return err
	}
	defer conn.Close()
	admin := mapfrontv1.NewAdminServiceClient(conn)

	// Fresh customers and terminal keys on every run: the batch number is
	// the time of day, the customers are numbered by the seconds since 2020.
	batch := now.In(zone).Format("150405")
	serial := now.Unix() % 100_000_000
	buyers := []struct{ id, mobile, product string }{
		{gbID(fmt.Sprintf("110105199001%05d", serial%100_000)), fmt.Sprintf("137%08d", serial), "1012"},
		{gbID(fmt.Sprintf("310101198502%05d", serial%100_000)), fmt.Sprintf("136%08d", serial), "1010"},
	}
	sales := []struct {
		buyer  int
		serial string
		sum    int64 // fen; 0: the full price (no paySum)
	}{
		{0, "000001", 0},      // 1012 乐驾包2000 in full: 1500.00 yuan
		{1, "000002", 200000}, // 1010 乐驾包5000, first part: 2000.00
		{1, "000003", 250000}, // the rest: 2500.00
	}
	fmt.Printf("== 1. card sales through %s/front/offline/open_card (terminal SH01/ST01/POS01, batch %s)\n", *gateway, batch)
	var lines []string
	var orderIDs []string
	for _, s := range sales {
		b := buyers[s.buyer]
		req := map[string]any{"ID": b.id, "mobileNum": b.mobile, "sellerId": "SH01", "storeId": "ST01", "terminalId": "POS01",
			"batchNo": batch, "operatorId": "op01", "terminalOrderId": s.serial, "productId": b.product}
		if s.sum > 0 {
			req["paySum"] = s.sum
		}
		var ans struct {
			Errcode int    `json:"errcode"`
			Errmsg  string `json:"errmsg"`
			Order   struct {
				OrderID string `json:"orderId"`
				Remark  string `json:"remark"`
			} `json:"order"`
		}
		if err := post(*gateway+"/front/offline/open_card", req, &ans); err != nil {
			return err
		}
		if ans.Errcode != 0 {
			return fmt.Errorf("open_card %s: errcode %d %s", s.serial, ans.Errcode, ans.Errmsg)
		}
		fmt.Printf("   open_card %s product %s mobile %s: errcode 0 %s, order %s, %s\n", s.serial, b.product, b.mobile, ans.Errmsg, ans.Order.OrderID, ans.Order.Remark)
		orderIDs = append(orderIDs, ans.Order.OrderID)
		lines = append(lines, strings.Join([]string{"", "", "", s.serial, "", "SH01", "POS01", batch, "", "", b.id, b.mobile, "", b.product}, "|"))
	}

	// The business date and amount of each payment, as the server recorded them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var date string
	for i, id := range orderIDs {
		o, err := admin.GetOrder(ctx, &mapfrontv1.GetOrderRequest{OrderId: id})
		if err != nil {
			return fmt.Errorf("GetOrder %s: %w", id, err)
		}
		for _, p := range o.GetOrder().GetPayments() {
			if p.GetTerminalOrderId() != sales[i].serial || p.GetBatchNo() != batch {
				continue
			}
			if date != "" && p.GetBusinessDate() != date {
				return fmt.Errorf("the sales fell on business dates %s and %s (a cutover passed between them): run again", date, p.GetBusinessDate())
			}
			date = p.GetBusinessDate()
			lines[i] = fileLine(lines[i], date, i+1, p.GetPaySum(), now.In(zone))
		}
	}
	if date == "" {
		return errors.New("the server shows no payment of the sales")
	}

	// The POSP's file of that business date: a header line, then one record
	// per payment, CRLF, amounts in yuan with two decimals.
	dir := filepath.Join(*data, "demo-settle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	file := filepath.Join(dir, date+".txt")
	body := "交易id|卡号|金额|流水号|参考号|商户号|终端号|批次号|交易日期|交易时间|身份证号|手机号|推荐人id|产品编号\r\n" + strings.Join(lines, "\r\n") + "\r\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		return err
	}
	fmt.Printf("\n== 2. the POSP's settlement file of business date %s: %s (身份证号 masked here; the file holds them whole)\n%s",
		date, file, maskIDs(strings.ReplaceAll(body, "\r\n", "\n")))

	fmt.Printf("\n== 3. business date %s ends at the server's cutover %s (%s); waiting %v\n",
		date, end.Format("15:04"), zone, time.Until(end).Round(time.Second))
	time.Sleep(time.Until(end) + 2*time.Second)

	fmt.Printf("\n== 4. %s/settlement run --file %s (identity settlement)\n", *bin, file)
	cmd := exec.Command(filepath.Join(*bin, "settlement"), "run", "--file", file, "--date", date)
	cmd.Env = append(os.Environ(),
		"MAPFRONT_GRPC_ADDR="+*grpcAddr,
		"MAPFRONT_GRPC_CA_FILE="+filepath.Join(pki, "ca.crt"),
		"MAPFRONT_GRPC_CERT_FILE="+filepath.Join(pki, "settlement.crt"),
		"MAPFRONT_GRPC_KEY_FILE="+filepath.Join(pki, "settlement.key"),
		"MAPFRONT_ZONE="+env["MAPFRONT_ZONE"], "MAPFRONT_CUTOVER="+env["MAPFRONT_CUTOVER"])
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("settlement run: %w", err)
	}

	fmt.Printf("\n== 5. the new cards (AdminService.GetCustomer)\n")
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range buyers {
		c, err := admin.GetCustomer(ctx, &mapfrontv1.GetCustomerRequest{MobileNum: b.mobile})
		if err != nil {
			return fmt.Errorf("GetCustomer %s: %w", b.mobile, err)
		}
		for _, a := range c.GetCustomer().GetAccounts() {
			if a.GetKind() == "card" {
				fmt.Printf("   mobile %s card %s product %s: %s, balance %d fen, activated %s\n", b.mobile, a.GetAccountId(),
					a.GetProductId(), enumtext.Word(a.GetStatus()), a.GetBalance(), a.GetActivatedAt())
			}
		}
	}
	return nil
}

// fileLine fills a record's 交易id, 金额, 参考号, 交易日期 and 交易时间.
func fileLine(line, date string, n int, fen int64, t time.Time) string {
	f := strings.Split(line, "|")
	f[0] = fmt.Sprintf("%s%s%04d", date, f[7], n) // 交易id: unique per record
	f[1] = "6225380083477614"
	f[2] = fmt.Sprintf("%d.%02d", fen/100, fen%100)
	f[4] = fmt.Sprintf("%012d", t.Unix()%1_000_000_000_000)
	f[8] = date
	f[9] = t.Format("150405")
	return strings.Join(f, "|")
}

// maskIDs shows the file's records with each 身份证号 (field 11) masked as
// the server masks one (idmask.Value, SPEC section 7): a whole ID number is
// never printed, even a made-up one.
func maskIDs(body string) string {
	lines := strings.Split(body, "\n")
	for i, l := range lines {
		f := strings.Split(l, "|")
		if i == 0 || len(f) < 11 {
			continue
		}
		f[10] = idmask.Value(f[10])
		lines[i] = strings.Join(f, "|")
	}
	return strings.Join(lines, "\n")
}

// nextCutover is the first instant after t at hh:mm in t's zone.
func nextCutover(t time.Time, hh, mm int) time.Time {
	c := time.Date(t.Year(), t.Month(), t.Day(), hh, mm, 0, 0, t.Location())
	for !c.After(t) {
		c = time.Date(c.Year(), c.Month(), c.Day()+1, hh, mm, 0, 0, t.Location())
	}
	return c
}

// gbID completes a 17-digit body with its GB 11643 check character.
func gbID(body string) string {
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := range 17 {
		sum += int(body[i]-'0') * weights[i]
	}
	return body + string("10X98765432"[sum%11])
}

func post(url string, req, ans any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, ans); err != nil {
		return fmt.Errorf("%s: HTTP %d %.200s", url, resp.StatusCode, body)
	}
	return nil
}

// readEnv reads KEY=VALUE lines.
func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env, sc.Err()
}
