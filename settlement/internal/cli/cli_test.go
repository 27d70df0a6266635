package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/mtls"
	"mapfront/internal/mtls/mtlstest"
)

// fakeServer stands in for the mapfront server's SettlementService and
// AdminService over a real gRPC connection on the loopback.
type fakeServer struct {
	mu         sync.Mutex
	header     *mapfrontv1.BatchHeader
	records    int
	badLines   int
	status     mapfrontv1.BatchState // the status SubmitBatch answers
	refuse     error                 // SubmitBatch's error, if set
	missing    []string
	dailies    int
	batches    map[string]*mapfrontv1.BatchReport
	listReq    *mapfrontv1.ListExceptionsRequest
	resolveReq *mapfrontv1.ResolveExceptionRequest
	already    bool
	decideErr  error // ApproveProposal's and RejectProposal's error, if set
}

type fakeSettlement struct {
	mapfrontv1.UnimplementedSettlementServiceServer
	*fakeServer
}

type fakeAdmin struct {
	mapfrontv1.UnimplementedAdminServiceServer
	*fakeServer
}

func (f fakeSettlement) SubmitBatch(stream grpc.ClientStreamingServer[mapfrontv1.SubmitBatchRequest, mapfrontv1.SubmitBatchResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.header = first.GetHeader()
	f.mu.Unlock()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.records += len(msg.GetChunk().GetRecords())
		f.badLines += len(msg.GetChunk().GetBadLines())
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return f.refuse
	}
	st := f.status
	if st == mapfrontv1.BatchState_BATCH_STATE_UNSPECIFIED {
		st = mapfrontv1.BatchState_BATCH_STATE_SETTLED
	}
	h := f.header
	return stream.SendAndClose(&mapfrontv1.SubmitBatchResponse{Report: &mapfrontv1.BatchReport{
		BusinessDate: h.BusinessDate, Status: st, FileName: h.FileName, Sha256: h.Sha256,
		Records: h.RecordCount, TotalFen: h.TotalFen, Matched: int64(f.records),
		Exceptions: []*mapfrontv1.ExceptionCount{{Type: mapfrontv1.ExceptionType_EXCEPTION_TYPE_BAD_LINE, Count: int64(f.badLines)}},
	}})
}

func (f fakeSettlement) MarkFileMissing(_ context.Context, req *mapfrontv1.MarkFileMissingRequest) (*mapfrontv1.MarkFileMissingResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.missing = append(f.missing, req.BusinessDate)
	return &mapfrontv1.MarkFileMissingResponse{Report: &mapfrontv1.BatchReport{BusinessDate: req.BusinessDate, Status: mapfrontv1.BatchState_BATCH_STATE_FILE_MISSING}}, nil
}

func (f fakeSettlement) GetBatch(_ context.Context, req *mapfrontv1.GetBatchRequest) (*mapfrontv1.GetBatchResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.batches[req.BusinessDate]; ok {
		return &mapfrontv1.GetBatchResponse{Report: r}, nil
	}
	return nil, status.Errorf(codes.NotFound, "no batch for %s", req.BusinessDate)
}

func (f fakeSettlement) RunDaily(context.Context, *mapfrontv1.RunDailyRequest) (*mapfrontv1.RunDailyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dailies++
	return &mapfrontv1.RunDailyResponse{InstallmentsReleased: 2}, nil
}

var sampleException = &mapfrontv1.Exception{
	Id: 42, Type: mapfrontv1.ExceptionType_EXCEPTION_TYPE_AMOUNT_MISMATCH, BusinessDate: "20141211", LineNo: 3, TradeId: "T1",
	TerminalId: "POS01", BatchNo: "000001", TerminalOrderId: "000540", Amount: 450000, Expected: 350000, State: mapfrontv1.ExceptionState_EXCEPTION_STATE_OPEN,
}

func (f fakeAdmin) ListExceptions(_ context.Context, req *mapfrontv1.ListExceptionsRequest) (*mapfrontv1.ListExceptionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listReq = req
	return &mapfrontv1.ListExceptionsResponse{Exceptions: []*mapfrontv1.Exception{sampleException}}, nil
}

func (f fakeAdmin) GetException(_ context.Context, req *mapfrontv1.GetExceptionRequest) (*mapfrontv1.GetExceptionResponse, error) {
	if req.Id != 42 {
		return nil, status.Error(codes.NotFound, "no such exception")
	}
	return &mapfrontv1.GetExceptionResponse{Exception: sampleException}, nil
}

func (f fakeAdmin) ResolveException(_ context.Context, req *mapfrontv1.ResolveExceptionRequest) (*mapfrontv1.ResolveExceptionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resolveReq = req
	e := &mapfrontv1.Exception{Id: req.Id, Type: mapfrontv1.ExceptionType_EXCEPTION_TYPE_AMOUNT_MISMATCH, State: mapfrontv1.ExceptionState_EXCEPTION_STATE_RESOLVED, Action: req.Action, Operator: req.Operator, Note: req.Note, LinkedOrderId: req.OrderId}
	return &mapfrontv1.ResolveExceptionResponse{Exception: e, Already: f.already}, nil
}

func (f fakeAdmin) ApproveProposal(_ context.Context, req *mapfrontv1.ApproveProposalRequest) (*mapfrontv1.ApproveProposalResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.decideErr != nil {
		return nil, f.decideErr
	}
	return &mapfrontv1.ApproveProposalResponse{Proposal: &mapfrontv1.Proposal{Id: req.Id, State: "approved", Decider: "supervisor", Proposer: "admin"}}, nil
}

func (f fakeAdmin) RejectProposal(_ context.Context, req *mapfrontv1.RejectProposalRequest) (*mapfrontv1.RejectProposalResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.decideErr != nil {
		return nil, f.decideErr
	}
	return &mapfrontv1.RejectProposalResponse{Proposal: &mapfrontv1.Proposal{Id: req.Id, State: "rejected", Decider: "supervisor", Proposer: "admin"}}, nil
}

// clientEnv holds, by server address, the MAPFRONT_GRPC_*_FILE variables
// of a client certificate that server trusts; runCmd adds them to the
// command's environment.
var clientEnv sync.Map

func startServer(t *testing.T, f *fakeServer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := mtlstest.New(t)
	creds, err := mtls.ServerCredentials(l.Addr().String(), p.Server(), false)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(creds)
	clientEnv.Store(l.Addr().String(), mtlstest.Env(p.Client("settlement")))
	mapfrontv1.RegisterSettlementServiceServer(srv, fakeSettlement{fakeServer: f})
	mapfrontv1.RegisterAdminServiceServer(srv, fakeAdmin{fakeServer: f})
	go srv.Serve(l) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

// now is 2014-12-12 09:00 in Shanghai: business date 20141211 has ended.
var now = time.Date(2014, 12, 12, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))

type result struct {
	code           int
	stdout, stderr string
}

func runCmd(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	return runCmdCtx(t, context.Background(), nil, vars, args...)
}

func runCmdCtx(t *testing.T, ctx context.Context, sleep func(context.Context, time.Duration) error, vars map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if sleep == nil {
		sleep = func(context.Context, time.Duration) error { t.Error("slept"); return nil }
	}
	env := Env{
		Stdout: &stdout,
		Stderr: &stderr,
		Getenv: func(k string) string {
			if v, ok := vars[k]; ok {
				return v
			}
			addr := vars["MAPFRONT_GRPC_ADDR"]
			if _, ok := clientEnv.Load(addr); !ok { // no server there: any certificate
				clientEnv.Store(addr, mtlstest.Env(mtlstest.New(t).Client("settlement")))
			}
			e, _ := clientEnv.Load(addr)
			return e.(map[string]string)[k]
		},
		Now:   func() time.Time { return now },
		Sleep: sleep,
	}
	code := Main(ctx, args, env)
	return result{code, stdout.String(), stderr.String()}
}

func TestRunFile(t *testing.T) {
	f := &fakeServer{}
	vars := map[string]string{"MAPFRONT_GRPC_ADDR": startServer(t, f)}
	r := runCmd(t, vars, "run", "--file", "testdata/20141211.txt")
	if r.code != ExitOK {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	h := f.header
	if h.BusinessDate != "20141211" || h.FileName != "20141211.txt" || h.RecordCount != 3 || h.TotalFen != 450001 || h.Force {
		t.Errorf("header %+v", h)
	}
	if f.records != 2 || f.badLines != 1 {
		t.Errorf("records %d bad lines %d", f.records, f.badLines)
	}
	for _, want := range []string{"20141211", "settled", "4,500.01", "bad_line"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}

	// --force and an explicit --date travel in the header.
	r = runCmd(t, vars, "run", "--file", "testdata/20141211.txt", "--date", "20141210", "--force")
	if r.code != ExitOK || f.header.BusinessDate != "20141210" || !f.header.Force {
		t.Errorf("exit %d header %+v stderr %s", r.code, f.header, r.stderr)
	}
}

func TestRunNotSettled(t *testing.T) {
	f := &fakeServer{status: mapfrontv1.BatchState_BATCH_STATE_RUNNING}
	r := runCmd(t, map[string]string{"MAPFRONT_GRPC_ADDR": startServer(t, f)}, "run", "--file", "testdata/20141211.txt")
	if r.code != ExitFailed || !strings.Contains(r.stderr, `status "running"`) || !strings.Contains(r.stdout, "running") {
		t.Errorf("exit %d stdout %s stderr %s", r.code, r.stdout, r.stderr)
	}
}

func TestRunRefused(t *testing.T) {
	f := &fakeServer{refuse: status.Error(codes.FailedPrecondition, "a different file is settled for 20141211")}
	r := runCmd(t, map[string]string{"MAPFRONT_GRPC_ADDR": startServer(t, f)}, "run", "--file", "testdata/20141211.txt")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "--force") {
		t.Errorf("exit %d stderr %s", r.code, r.stderr)
	}
}

// refusal is a status as the server answers a domain error: the gRPC code
// with an ErrorDetail carrying the errcode and message.
func refusal(t *testing.T, c codes.Code, errcode int32, msg string) error {
	t.Helper()
	st, err := status.New(c, msg).WithDetails(&mapfrontv1.ErrorDetail{Errcode: errcode, Errmsg: msg})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// A refused approval is said with its errcode and the server's message,
// and what to do next (reject it, then handle the item otherwise); the hint
// about a refused batch and --force belongs to run only (it was printed for
// a proposal whose payment had been repealed meanwhile).
func TestProposalRefused(t *testing.T) {
	f := &fakeServer{decideErr: refusal(t, codes.FailedPrecondition, 10011, "该笔开卡付款已撤销，无需退款")}
	vars := map[string]string{"MAPFRONT_GRPC_ADDR": startServer(t, f)}
	r := runCmd(t, vars, "proposals", "approve", "7")
	if r.code != ExitFailed || strings.Contains(r.stderr, "--force") || strings.Contains(r.stderr, "batch") ||
		!strings.Contains(r.stderr, "ApproveProposal 7: refused: errcode 10011: 该笔开卡付款已撤销，无需退款") ||
		!strings.Contains(r.stderr, "settlement proposals reject 7 --note") || !strings.Contains(r.stderr, "settlement exceptions resolve ID --action") {
		t.Errorf("approve: exit %d stderr %s", r.code, r.stderr)
	}
	// Rejecting, and an approval refused otherwise (expired; the proposer's
	// own), get the errcode without that hint.
	for _, c := range []struct {
		err  error
		args []string
		want string
	}{
		{refusal(t, codes.FailedPrecondition, 10011, "该笔开卡付款已撤销，无需退款"), []string{"proposals", "reject", "7"}, "RejectProposal 7: refused: errcode 10011"},
		{refusal(t, codes.FailedPrecondition, 10006, "提案7已于2014-12-12 09:00过期，须重新提出"), []string{"proposals", "approve", "7"}, "errcode 10006: 提案7已于"},
		{refusal(t, codes.PermissionDenied, 10002, "四眼原则：提案人不能复核自己的提案"), []string{"proposals", "approve", "7"}, "errcode 10002"},
	} {
		f.mu.Lock()
		f.decideErr = c.err
		f.mu.Unlock()
		r := runCmd(t, vars, c.args...)
		if r.code != ExitFailed || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "--force") ||
			strings.Contains(r.stderr, "proposals reject") {
			t.Errorf("%v: exit %d stderr %s", c.args, r.code, r.stderr)
		}
	}
	// A status without an ErrorDetail (the authorization's refusal) is said
	// by its code.
	f.mu.Lock()
	f.decideErr = status.Error(codes.PermissionDenied, "settlement may not call /mapfront.v1.AdminService/ApproveProposal")
	f.mu.Unlock()
	if r := runCmd(t, vars, "proposals", "approve", "7"); !strings.Contains(r.stderr, "ApproveProposal 7: PermissionDenied: settlement may not call") {
		t.Errorf("stderr %s", r.stderr)
	}
}

func TestRunServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := runCmd(t, map[string]string{"MAPFRONT_GRPC_ADDR": addr, "MAPFRONT_GRPC_TIMEOUT": "2s"}, "run", "--file", "testdata/20141211.txt")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "MAPFRONT_GRPC_ADDR") {
		t.Errorf("exit %d stderr %s", r.code, r.stderr)
	}
}

func TestRunFromLocalDir(t *testing.T) {
	f := &fakeServer{}
	dir := t.TempDir()
	body, err := os.ReadFile("testdata/20141211.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "POSP_20141211.txt"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"MAPFRONT_GRPC_ADDR":   startServer(t, f),
		"MAPFRONT_SETTLE_DIR":  dir,
		"MAPFRONT_FTP_PATTERN": "POSP_{yyyyMMdd}.txt",
		// The stability check's two looks, short for the test.
		"MAPFRONT_SETTLE_STABLE_INTERVAL": "10ms",
	}
	// No --date: the business date that last ended, 20141211.
	r := runCmd(t, vars, "run")
	if r.code != ExitOK || f.header.BusinessDate != "20141211" || f.header.FileName != "POSP_20141211.txt" {
		t.Errorf("exit %d header %+v stderr %s", r.code, f.header, r.stderr)
	}
}

func TestRunFileMissing(t *testing.T) {
	f := &fakeServer{}
	vars := map[string]string{
		"MAPFRONT_GRPC_ADDR":             startServer(t, f),
		"MAPFRONT_SETTLE_DIR":            t.TempDir(),
		"MAPFRONT_SETTLE_DEADLINE":       "6h",
		"MAPFRONT_SETTLE_RETRY_INTERVAL": "1h",
	}
	// 20141210's deadline (2014-12-11 06:00) is past: one try, then missing.
	r := runCmd(t, vars, "run", "--date", "20141210")
	if r.code != ExitFileMissing || !strings.Contains(r.stderr, "FILE MISSING") || !strings.Contains(r.stderr, "file-missing") {
		t.Errorf("exit %d stderr %s", r.code, r.stderr)
	}
	if len(f.missing) != 1 || f.missing[0] != "20141210" || !strings.Contains(r.stdout, "file_missing") {
		t.Errorf("MarkFileMissing %v stdout %s", f.missing, r.stdout)
	}

	// Before the deadline it waits: 20141211's runs to 2014-12-12 06:00,
	// but now is 09:00, so only with a later deadline.
	vars["MAPFRONT_SETTLE_DEADLINE"] = "12h" // 2014-12-12 12:00
	slept := 0
	r = runCmdCtx(t, context.Background(), func(ctx context.Context, d time.Duration) error {
		slept++
		if d != time.Hour {
			t.Errorf("slept %v", d)
		}
		return context.Canceled // as if interrupted
	}, vars, "run", "--date", "20141211")
	if slept != 1 || r.code != ExitFailed {
		t.Errorf("slept %d exit %d stderr %s", slept, r.code, r.stderr)
	}
}

func TestRunUsage(t *testing.T) {
	addr := startServer(t, &fakeServer{})
	cases := []struct {
		args []string
		vars map[string]string
		want string
	}{
		{[]string{"run", "--file", "testdata/nodate.txt"}, nil, "give --date"},
		{[]string{"run", "--date", "20141212"}, nil, "has not ended"},
		{[]string{"run", "--date", "20141332"}, nil, "--date"},
		{[]string{"run"}, nil, "no file source"},
		{[]string{"run", "extra"}, nil, "unexpected argument"},
		{[]string{"run", "--nope"}, nil, "flag provided but not defined"},
		{[]string{"run", "--ftp-pattern", "{x}.txt"}, nil, "unknown placeholder"},
		{[]string{"run"}, map[string]string{"MAPFRONT_CUTOVER": "25:00"}, "MAPFRONT_CUTOVER"},
		{[]string{"run", "--ftp-addr", "h"}, nil, "MAPFRONT_FTP_USER"},
		{[]string{"bogus"}, nil, "unknown command"},
		{[]string{}, nil, "usage"},
		{[]string{"report"}, nil, "--date is required"},
		{[]string{"exceptions"}, nil, "want list"},
		{[]string{"exceptions", "list", "--state", "closed"}, nil, "--state"},
		{[]string{"exceptions", "show"}, nil, "one exception ID"},
		{[]string{"exceptions", "show", "x"}, nil, "positive number"},
		{[]string{"exceptions", "resolve", "42", "--action", "delete", "--operator", "a"}, nil, "--action"},
		{[]string{"exceptions", "resolve", "42", "--action", "link_order", "--operator", "a"}, nil, "needs --order"},
		{[]string{"exceptions", "resolve", "42", "--action", "ignore", "--operator", "a", "--order", "1"}, nil, "--order goes with"},
	}
	for _, c := range cases {
		vars := map[string]string{"MAPFRONT_GRPC_ADDR": addr}
		for k, v := range c.vars {
			vars[k] = v
		}
		r := runCmd(t, vars, c.args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if r := runCmd(t, nil, "run", "-h"); r.code != ExitOK || !strings.Contains(r.stderr, "-ftp-pattern") {
		t.Errorf("run -h: exit %d stderr %s", r.code, r.stderr)
	}
}

func TestExceptions(t *testing.T) {
	f := &fakeServer{}
	vars := map[string]string{"MAPFRONT_GRPC_ADDR": startServer(t, f)}

	r := runCmd(t, vars, "exceptions", "list", "--date", "20141211")
	if r.code != ExitOK || !strings.Contains(r.stdout, "amount_mismatch") || !strings.Contains(r.stdout, "POS01/000001/000540") {
		t.Errorf("list: exit %d stdout %s stderr %s", r.code, r.stdout, r.stderr)
	}
	if f.listReq.State != mapfrontv1.ExceptionState_EXCEPTION_STATE_OPEN || f.listReq.BusinessDate != "20141211" || f.listReq.Limit != 100 {
		t.Errorf("list request %+v", f.listReq)
	}
	r = runCmd(t, vars, "exceptions", "list", "--state", "all")
	if r.code != ExitOK || f.listReq.State != mapfrontv1.ExceptionState_EXCEPTION_STATE_UNSPECIFIED {
		t.Errorf("list all: exit %d request %+v", r.code, f.listReq)
	}

	r = runCmd(t, vars, "exceptions", "show", "42")
	if r.code != ExitOK || !strings.Contains(r.stdout, "3,500.00") {
		t.Errorf("show: exit %d stdout %s", r.code, r.stdout)
	}
	r = runCmd(t, vars, "exceptions", "show", "7")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "no such exception") {
		t.Errorf("show 7: exit %d stderr %s", r.code, r.stderr)
	}

	// Flags after the ID, as people type them.
	r = runCmd(t, vars, "exceptions", "resolve", "42", "--action", "link_order", "--operator", " alice ", "--note", "paid twice", "--order", "ud20141211000000000001")
	if r.code != ExitOK || !strings.Contains(r.stdout, "resolved.") {
		t.Errorf("resolve: exit %d stdout %s stderr %s", r.code, r.stdout, r.stderr)
	}
	q := f.resolveReq
	if q.Id != 42 || q.Action != mapfrontv1.ExceptionAction_EXCEPTION_ACTION_LINK_ORDER || q.Operator != "alice" || q.Note != "paid twice" || q.OrderId != "ud20141211000000000001" {
		t.Errorf("resolve request %+v", q)
	}
	f.already = true
	r = runCmd(t, vars, "exceptions", "resolve", "--action", "ignore", "--operator", "bob", "42")
	if r.code != ExitOK || !strings.Contains(r.stdout, "already been resolved") {
		t.Errorf("resolve again: exit %d stdout %s", r.code, r.stdout)
	}
}

func TestReport(t *testing.T) {
	f := &fakeServer{batches: map[string]*mapfrontv1.BatchReport{"20141211": {
		BusinessDate: "20141211", Status: mapfrontv1.BatchState_BATCH_STATE_SETTLED, Records: 3, TotalFen: 450001, Matched: 1, Opened: 1, Activated: 2,
		Exceptions: []*mapfrontv1.ExceptionCount{{Type: mapfrontv1.ExceptionType_EXCEPTION_TYPE_BAD_LINE, Count: 1}, {Type: mapfrontv1.ExceptionType_EXCEPTION_TYPE_AMOUNT_MISMATCH, Count: 1, Amount: 100}},
	}}}
	vars := map[string]string{"MAPFRONT_GRPC_ADDR": startServer(t, f)}
	r := runCmd(t, vars, "report", "--date", "20141211")
	if r.code != ExitOK || !strings.Contains(r.stdout, "4,500.01") {
		t.Errorf("report: exit %d stdout %s stderr %s", r.code, r.stdout, r.stderr)
	}
	path := filepath.Join(t.TempDir(), "r.csv")
	r = runCmd(t, vars, "report", "--date", "20141211", "--csv", path)
	if r.code != ExitOK {
		t.Fatalf("report --csv: exit %d stderr %s", r.code, r.stderr)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "business_date,kind,name,count,amount_fen,amount_yuan\n" +
		"20141211,metric,records,3,450001,4500.01\n" +
		"20141211,metric,matched,1,,\n" +
		"20141211,metric,opened,1,,\n" +
		"20141211,metric,merged,0,,\n" +
		"20141211,metric,activated,2,,\n" +
		"20141211,metric,bad_lines,0,,\n" +
		"20141211,metric,auto_resolved,0,,\n" +
		"20141211,exception,bad_line,1,0,0.00\n" +
		"20141211,exception,amount_mismatch,1,100,1.00\n"
	if string(got) != want {
		t.Errorf("CSV\n%s\nwant\n%s", got, want)
	}
	r = runCmd(t, vars, "report", "--date", "20141211", "--csv", "-")
	if r.code != ExitOK || r.stdout != want {
		t.Errorf("CSV to stdout: exit %d\n%s", r.code, r.stdout)
	}
	r = runCmd(t, vars, "report", "--date", "20141210")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "no batch") {
		t.Errorf("report of no batch: exit %d stderr %s", r.code, r.stderr)
	}
}

func TestDaemonCatchesUpAndStops(t *testing.T) {
	f := &fakeServer{}
	dir := t.TempDir()
	body, err := os.ReadFile("testdata/20141211.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "20141211.txt"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"MAPFRONT_GRPC_ADDR": startServer(t, f), "MAPFRONT_SETTLE_DIR": dir,
		"MAPFRONT_SETTLE_STABLE_INTERVAL": "10ms"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first sleep is the wait for the next day's job: stop there, as
	// SIGTERM would.
	r := runCmdCtx(t, ctx, func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	}, vars, "daemon")
	if r.code != ExitOK {
		t.Fatalf("exit %d stderr %s", r.code, r.stderr)
	}
	if f.header == nil || f.header.BusinessDate != "20141211" || f.dailies != 1 {
		t.Errorf("header %+v dailies %d", f.header, f.dailies)
	}
	if !strings.Contains(r.stdout, "--- settlement 20141211") || !strings.Contains(r.stderr, "daemon stopped") {
		t.Errorf("stdout %s\nstderr %s", r.stdout, r.stderr)
	}
}

func TestParseArgs(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a := fs.String("a", "", "")
	b := fs.Bool("b", false, "")
	pos, err := parseArgs(fs, []string{"1", "-a", "x", "2", "-b", "--", "-c"})
	if err != nil || strings.Join(pos, ",") != "1,2,-c" || *a != "x" || !*b {
		t.Errorf("pos %v a %q b %v err %v", pos, *a, *b, err)
	}
}

func TestDateFromName(t *testing.T) {
	good := map[string]string{
		"20141211.txt":             "20141211",
		"/in/JS_20141211_01.txt":   "20141211",
		"settle-20240229.dat":      "20240229",
		"1234567820141211999.txt":  "",
		"20141211-20141212.txt":    "",
		"20141311.txt":             "",
		"report.txt":               "",
		"batch0020141211.txt":      "",
		"POSP20141211.txt":         "20141211",
		"20141211":                 "20141211",
		"x_123_20141211_456_.txt":  "20141211",
		"x_20141211_2014121.txt":   "20141211",
		"x_20141211_201412111.txt": "20141211",
	}
	for name, want := range good {
		d, err := dateFromName(name)
		if want == "" {
			if err == nil {
				t.Errorf("dateFromName(%q) = %s, want an error", name, d)
			}
			continue
		}
		if err != nil || d.String() != want {
			t.Errorf("dateFromName(%q) = %s, %v; want %s", name, d, err, want)
		}
	}
}

// Issue 13: a file named for another business date than --date is refused
// without --force, naming both dates.
func TestRunFileNamedForAnotherDate(t *testing.T) {
	f := &fakeServer{}
	r := runCmd(t, map[string]string{"MAPFRONT_GRPC_ADDR": startServer(t, f)}, "run", "--file", "testdata/20141211.txt", "--date", "20141210")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "20141211") || !strings.Contains(r.stderr, "20141210") ||
		!strings.Contains(r.stderr, "--force") || f.header != nil {
		t.Errorf("exit %d header %+v stderr %s", r.code, f.header, r.stderr)
	}
}

// Issue 15: a rejected batch is an alert with an exit code of its own; the
// site's rules travel in the header.
func TestRunRejected(t *testing.T) {
	f := &fakeServer{status: mapfrontv1.BatchState_BATCH_STATE_REJECTED}
	vars := map[string]string{"MAPFRONT_GRPC_ADDR": startServer(t, f), "MAPFRONT_SETTLE_MAX_BAD_PERCENT": "20",
		"MAPFRONT_SETTLE_DATE_TOLERANCE": "5m", "MAPFRONT_SETTLE_LOOKBACK_DAYS": "3"}
	r := runCmd(t, vars, "run", "--file", "testdata/20141211.txt")
	if r.code != ExitRejected || !strings.Contains(r.stderr, "ALERT") || !strings.Contains(r.stderr, "no --force needed") {
		t.Errorf("exit %d stderr %s", r.code, r.stderr)
	}
	h := f.header
	if h.GetMaxBadPermille() != 200 || h.GetDateToleranceSeconds() != 300 || h.GetLookbackDays() != 3 {
		t.Errorf("header %+v", h)
	}
}

// Issue 15: another run holding the date is said as such, not as a server
// that is down.
func TestRunDateHeldByAnotherRun(t *testing.T) {
	st, _ := status.New(codes.Unavailable, "busy").WithDetails(&mapfrontv1.ErrorDetail{Errcode: 10018, Errmsg: "该日日切正在进行，请稍后重试"})
	f := &fakeServer{refuse: st.Err()}
	r := runCmd(t, map[string]string{"MAPFRONT_GRPC_ADDR": startServer(t, f)}, "run", "--file", "testdata/20141211.txt")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "another settlement run") || strings.Contains(r.stderr, "is the mapfront server running") {
		t.Errorf("exit %d stderr %s", r.code, r.stderr)
	}
}
