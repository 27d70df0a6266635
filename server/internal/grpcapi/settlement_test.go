package grpcapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/server/internal/mapfront"
)

// fakeSettlement records what SubmitBatch was given.
type fakeSettlement struct {
	header  mapfront.BatchHeader
	records []mapfront.SettlementRecord
	bad     []mapfront.BadLine
	err     error
}

func (f *fakeSettlement) SubmitBatch(_ context.Context, h mapfront.BatchHeader, next func() (*mapfront.BatchChunk, error)) (*mapfront.BatchReport, error) {
	f.header = h
	for {
		c, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		f.records = append(f.records, c.Records...)
		f.bad = append(f.bad, c.BadLines...)
	}
	if f.err != nil {
		return nil, f.err
	}
	return &mapfront.BatchReport{BusinessDate: h.BusinessDate, Status: "settled", Records: int64(len(f.records) + len(f.bad)),
		Exceptions: []mapfront.ExceptionCount{{Type: mapfront.ExBadLine, Count: int64(len(f.bad))}}}, nil
}

func (f *fakeSettlement) MarkFileMissing(context.Context, time.Time, string) (*mapfront.BatchReport, error) {
	return nil, errors.New("unused")
}
func (f *fakeSettlement) GetBatch(context.Context, time.Time) (*mapfront.BatchReport, error) {
	return nil, mapfront.Errorf(mapfront.CodeNoOriginal, "日切批次不存在")
}
func (f *fakeSettlement) ListBatches(context.Context, int) ([]mapfront.BatchReport, error) {
	return nil, nil
}
func (f *fakeSettlement) RunDaily(context.Context, time.Duration) (*mapfront.DailyResult, error) {
	return &mapfront.DailyResult{InstallmentsReleased: 2}, nil
}

func settlementClient(t *testing.T, f Settlement) mapfrontv1.SettlementServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	mapfrontv1.RegisterSettlementServiceServer(srv, &SettlementServer{Store: f, Log: slog.New(slog.DiscardHandler)})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return mapfrontv1.NewSettlementServiceClient(conn)
}

func errcodeOf(err error) (codes.Code, int32) {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if e, ok := d.(*mapfrontv1.ErrorDetail); ok {
			return st.Code(), e.Errcode
		}
	}
	return st.Code(), 0
}

func TestSubmitBatchStream(t *testing.T) {
	f := &fakeSettlement{}
	c := settlementClient(t, f)
	ctx := context.Background()
	stream, err := c.SubmitBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []*mapfrontv1.SubmitBatchRequest{
		{Part: &mapfrontv1.SubmitBatchRequest_Header{Header: &mapfrontv1.BatchHeader{BusinessDate: "20261126",
			FileName: "20261126.txt", Sha256: "00", RecordCount: 3, TotalFen: 3, Force: true}}},
		{Part: &mapfrontv1.SubmitBatchRequest_Chunk{Chunk: &mapfrontv1.RecordChunk{
			Records: []*mapfrontv1.SettlementRecord{{LineNo: 1, TradeId: "T1", Amount: 1, SellerId: "SH01", TerminalId: "POS01",
				BatchNo: "1", TerminalOrderId: "1", IdNumber: "11010519491231002X", MobileNum: "13912345678", ProductId: "1010"}}}}},
		{Part: &mapfrontv1.SubmitBatchRequest_Chunk{Chunk: &mapfrontv1.RecordChunk{
			Records:  []*mapfrontv1.SettlementRecord{{LineNo: 2, TradeId: "T2", Amount: 2}},
			BadLines: []*mapfrontv1.BadLine{{LineNo: 3, Reason: "field_count", Text: "x|y"}}}}},
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.Report.BusinessDate != "20261126" || resp.Report.Records != 3 || resp.Report.Exceptions[0].Type != mapfrontv1.ExceptionType_EXCEPTION_TYPE_BAD_LINE {
		t.Fatalf("report %+v", resp.Report)
	}
	h := f.header
	if mapfront.DateString(h.BusinessDate) != "20261126" || !h.Force || h.RecordCount != 3 || h.FileName != "20261126.txt" {
		t.Fatalf("header %+v", h)
	}
	if h.Settings == nil || *h.Settings != mapfront.DefaultSettings() {
		t.Fatalf("unset settings %+v, want the defaults", h.Settings)
	}
	if len(f.records) != 2 || f.records[0].IDNumber != "11010519491231002X" || f.records[0].ProductID != "1010" ||
		len(f.bad) != 1 || f.bad[0].LineNo != 3 {
		t.Fatalf("records %+v bad %+v", f.records, f.bad)
	}
}

// The site's settlement settings travel in the header; a set zero stays
// zero, and an out-of-range tolerance cannot overflow into range.
func TestSubmitBatchSettings(t *testing.T) {
	for _, c := range []struct {
		hd   *mapfrontv1.BatchHeader
		want mapfront.SettleSettings
	}{
		{&mapfrontv1.BatchHeader{MaxBadPermille: ptr32(200), DateToleranceSeconds: ptr64(0), LookbackDays: ptr32(0)},
			mapfront.SettleSettings{MaxBadPermille: 200}},
		{&mapfrontv1.BatchHeader{DateToleranceSeconds: ptr64(300)},
			mapfront.SettleSettings{MaxBadPermille: 500, DateTolerance: 5 * time.Minute, LookbackDays: 7}},
		{&mapfrontv1.BatchHeader{DateToleranceSeconds: ptr64(1 << 62)},
			mapfront.SettleSettings{MaxBadPermille: 500, DateTolerance: -1, LookbackDays: 7}},
	} {
		f := &fakeSettlement{}
		stream, err := settlementClient(t, f).SubmitBatch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		c.hd.BusinessDate = "20261126"
		if err := stream.Send(&mapfrontv1.SubmitBatchRequest{Part: &mapfrontv1.SubmitBatchRequest_Header{Header: c.hd}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.CloseAndRecv(); err != nil {
			t.Fatal(err)
		}
		if got := f.header.Settings; got == nil || *got != c.want {
			t.Errorf("%v: settings %+v, want %+v", c.hd, got, c.want)
		}
		if c.want.DateTolerance < 0 && f.header.Validate() == nil {
			t.Errorf("%v: out-of-range tolerance accepted", c.hd)
		}
	}
}

func ptr32(n int32) *int32 { return &n }
func ptr64(n int64) *int64 { return &n }

func TestSubmitBatchErrors(t *testing.T) {
	ctx := context.Background()
	send := func(c mapfrontv1.SettlementServiceClient, msgs ...*mapfrontv1.SubmitBatchRequest) error {
		stream, err := c.SubmitBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if err := stream.Send(m); err != nil {
				break // the server answered early; CloseAndRecv has it
			}
		}
		_, err = stream.CloseAndRecv()
		return err
	}
	header := &mapfrontv1.SubmitBatchRequest{Part: &mapfrontv1.SubmitBatchRequest_Header{
		Header: &mapfrontv1.BatchHeader{BusinessDate: "20261126"}}}
	chunk := &mapfrontv1.SubmitBatchRequest{Part: &mapfrontv1.SubmitBatchRequest_Chunk{Chunk: &mapfrontv1.RecordChunk{}}}

	c := settlementClient(t, &fakeSettlement{})
	if code, errcode := errcodeOf(send(c, chunk)); code != codes.InvalidArgument || errcode != 10001 {
		t.Errorf("chunk first: %v %d", code, errcode)
	}
	if code, errcode := errcodeOf(send(c, header, header)); code != codes.InvalidArgument || errcode != 10001 {
		t.Errorf("two headers: %v %d", code, errcode)
	}
	bad := &mapfrontv1.SubmitBatchRequest{Part: &mapfrontv1.SubmitBatchRequest_Header{
		Header: &mapfrontv1.BatchHeader{BusinessDate: "2026-11-26"}}}
	if code, errcode := errcodeOf(send(c, bad)); code != codes.InvalidArgument || errcode != 10001 {
		t.Errorf("bad date: %v %d", code, errcode)
	}
	c = settlementClient(t, &fakeSettlement{err: mapfront.ErrSettledDifferentFile})
	if code, errcode := errcodeOf(send(c, header, chunk)); code != codes.FailedPrecondition || errcode != 10001 {
		t.Errorf("settled with another file: %v %d", code, errcode)
	}
	c = settlementClient(t, &fakeSettlement{err: mapfront.ErrSettlementRunning})
	if code, errcode := errcodeOf(send(c, header)); code != codes.Unavailable || errcode != 10018 {
		t.Errorf("running: %v %d", code, errcode)
	}
	if _, err := c.GetBatch(ctx, &mapfrontv1.GetBatchRequest{BusinessDate: "20261126"}); status.Code(err) != codes.NotFound {
		t.Errorf("get batch: %v", err)
	}
	r, err := c.RunDaily(ctx, &mapfrontv1.RunDailyRequest{})
	if err != nil || r.InstallmentsReleased != 2 {
		t.Errorf("run daily: %v %+v", err, r)
	}
}

func TestRecoverAnswers10000(t *testing.T) {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	_, err := Recover(log)(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x"},
		func(context.Context, any) (any, error) { panic("boom") })
	st := status.Convert(err)
	if st.Code() != codes.Internal || len(st.Details()) != 1 {
		t.Fatalf("status %v", st)
	}
	d := st.Details()[0].(*mapfrontv1.ErrorDetail)
	if d.Errcode != 10000 || !strings.Contains(logged.String(), d.Reference) || strings.Contains(d.Errmsg, "boom") {
		t.Fatalf("detail %+v, log %s", d, logged.String())
	}
}
