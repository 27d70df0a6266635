package grpcapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/enumtext"
	"mapfront/server/internal/mapfront"
)

// Settlement is what the SettlementService needs of the store (SPEC
// section 6). Business outcomes are *mapfront.Error; other errors are
// internal failures.
type Settlement interface {
	// SubmitBatch settles a business date's file read chunk by chunk from
	// next until io.EOF. Errors: 10001 (bad header or stream, a date not yet
	// ended; mapfront.ErrSettledDifferentFile), 10018 (mapfront.ErrSettlementRunning
	// or busy), and what next returns.
	SubmitBatch(ctx context.Context, h mapfront.BatchHeader, next func() (*mapfront.BatchChunk, error)) (*mapfront.BatchReport, error)
	// MarkFileMissing records that no file came for a date. Errors: 10001
	// (already settled or not yet ended), 10018.
	MarkFileMissing(ctx context.Context, date time.Time, detail string) (*mapfront.BatchReport, error)
	// GetBatch returns a date's batch report. Errors: 10010.
	GetBatch(ctx context.Context, date time.Time) (*mapfront.BatchReport, error)
	// ListBatches returns the newest batches first.
	ListBatches(ctx context.Context, limit int) ([]mapfront.BatchReport, error)
	// RunDaily releases due installments and files orders past the
	// completion window. Errors: 10018.
	RunDaily(ctx context.Context, window time.Duration) (*mapfront.DailyResult, error)
}

// SettlementServer implements mapfrontv1.SettlementServiceServer.
type SettlementServer struct {
	mapfrontv1.UnimplementedSettlementServiceServer
	Store Settlement
	Log   *slog.Logger
	// CompletionWindow is how long a card order may stay short of its
	// price before RunDaily files it (zero: 7 days, SPEC section 6).
	CompletionWindow time.Duration
	// OnBatch, when set, is told each batch outcome's status (metrics).
	OnBatch func(status string)
}

func (s *SettlementServer) counted(r *mapfront.BatchReport) *mapfront.BatchReport {
	if s.OnBatch != nil && !r.Repeated {
		s.OnBatch(r.Status)
	}
	return r
}

// settlementStatus is errorStatus, except that a different file for a date
// already settled is a failed precondition (the caller must force), still
// carrying errcode 10001.
func settlementStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	var de *mapfront.Error
	if errors.Is(err, mapfront.ErrSettledDifferentFile) && errors.As(err, &de) {
		return detailed(codes.FailedPrecondition, &mapfrontv1.ErrorDetail{Errcode: int32(de.Code), Errmsg: de.Msg})
	}
	return errorStatus(ctx, log, method, err)
}

// SubmitBatch implements the client-streaming RPC: the first message must
// be the header, every later one a chunk. Chunks are translated one at a
// time as the store asks for them, so the server holds one chunk at most.
func (s *SettlementServer) SubmitBatch(stream grpc.ClientStreamingServer[mapfrontv1.SubmitBatchRequest, mapfrontv1.SubmitBatchResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return settlementStatus(ctx, s.Log, "SubmitBatch", mapfront.Missing("header"))
	}
	if err != nil {
		return err
	}
	hd := first.GetHeader()
	if hd == nil {
		return settlementStatus(ctx, s.Log, "SubmitBatch", mapfront.Missing("header"))
	}
	date, err := mapfront.ParseDate(hd.BusinessDate)
	if err != nil {
		return settlementStatus(ctx, s.Log, "SubmitBatch", mapfront.Invalid("business_date", "须为yyyyMMdd"))
	}
	h := mapfront.BatchHeader{BusinessDate: date, FileName: hd.FileName, SHA256: hd.Sha256,
		RecordCount: hd.RecordCount, TotalFen: hd.TotalFen, Force: hd.Force}
	// Unset settings take the defaults of SPEC section 6; a set zero is a
	// site's choice (no tolerance, no look-back, no bad line allowed).
	set := mapfront.DefaultSettings()
	if hd.MaxBadPermille != nil {
		set.MaxBadPermille = int(hd.GetMaxBadPermille())
	}
	if hd.DateToleranceSeconds != nil {
		set.DateTolerance = -1 // out of range: refused by Validate, without overflowing
		if secs := hd.GetDateToleranceSeconds(); secs >= 0 && secs <= 24*3600 {
			set.DateTolerance = time.Duration(secs) * time.Second
		}
	}
	if hd.LookbackDays != nil {
		set.LookbackDays = int(hd.GetLookbackDays())
	}
	h.Settings = &set
	next := func() (*mapfront.BatchChunk, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, err // io.EOF ends the file
		}
		c := m.GetChunk()
		if c == nil {
			return nil, mapfront.Invalid("chunk", "文件头之后只能是记录块")
		}
		return chunkIn(c), nil
	}
	report, err := s.Store.SubmitBatch(ctx, h, next)
	if err != nil {
		return settlementStatus(ctx, s.Log, "SubmitBatch", err)
	}
	return stream.SendAndClose(&mapfrontv1.SubmitBatchResponse{Report: reportOut(s.counted(report))})
}

func chunkIn(c *mapfrontv1.RecordChunk) *mapfront.BatchChunk {
	out := &mapfront.BatchChunk{
		Records:  make([]mapfront.SettlementRecord, len(c.Records)),
		BadLines: make([]mapfront.BadLine, len(c.BadLines)),
	}
	for i, r := range c.Records {
		out.Records[i] = mapfront.SettlementRecord{
			LineNo: r.LineNo, TradeID: r.TradeId, CardNo: r.CardNo, Amount: r.Amount,
			TerminalOrderID: r.TerminalOrderId, ReferenceNo: r.ReferenceNo, SellerID: r.SellerId,
			TerminalID: r.TerminalId, BatchNo: r.BatchNo, TradeDate: r.TradeDate, TradeTime: r.TradeTime,
			IDNumber: r.IdNumber, Mobile: r.MobileNum, Referrer: r.Referrer, ProductID: r.ProductId,
		}
	}
	for i, b := range c.BadLines {
		out.BadLines[i] = mapfront.BadLine{LineNo: b.LineNo, Reason: b.Reason, Text: b.Text}
	}
	return out
}

func reportOut(r *mapfront.BatchReport) *mapfrontv1.BatchReport {
	out := &mapfrontv1.BatchReport{
		BusinessDate: mapfront.DateString(r.BusinessDate), Status: word[mapfrontv1.BatchState](r.Status), FileName: r.FileName, Sha256: r.SHA256,
		Records: r.Records, TotalFen: r.TotalFen, Matched: r.Matched, Opened: r.Opened, Merged: r.Merged,
		Activated: r.Activated, RepeatedSubmission: r.Repeated, BadLines: r.BadLines, AutoResolved: r.AutoResolved,
		Detail: r.Detail,
	}
	for _, e := range r.Exceptions {
		out.Exceptions = append(out.Exceptions, &mapfrontv1.ExceptionCount{Type: exceptionType(e.Type), Count: e.Count, Amount: e.Amount})
	}
	if r.SettledAt != nil {
		out.SettledAt = r.SettledAt.Format(time.RFC3339)
	}
	return out
}

// MarkFileMissing implements the RPC of the same name.
func (s *SettlementServer) MarkFileMissing(ctx context.Context, in *mapfrontv1.MarkFileMissingRequest) (*mapfrontv1.MarkFileMissingResponse, error) {
	date, err := mapfront.ParseDate(in.BusinessDate)
	if err != nil {
		return nil, settlementStatus(ctx, s.Log, "MarkFileMissing", mapfront.Invalid("business_date", "须为yyyyMMdd"))
	}
	r, err := s.Store.MarkFileMissing(ctx, date, in.Detail)
	if err != nil {
		return nil, settlementStatus(ctx, s.Log, "MarkFileMissing", err)
	}
	return &mapfrontv1.MarkFileMissingResponse{Report: reportOut(s.counted(r))}, nil
}

// GetBatch implements the RPC of the same name.
func (s *SettlementServer) GetBatch(ctx context.Context, in *mapfrontv1.GetBatchRequest) (*mapfrontv1.GetBatchResponse, error) {
	date, err := mapfront.ParseDate(in.BusinessDate)
	if err != nil {
		return nil, settlementStatus(ctx, s.Log, "GetBatch", mapfront.Invalid("business_date", "须为yyyyMMdd"))
	}
	r, err := s.Store.GetBatch(ctx, date)
	if err != nil {
		return nil, settlementStatus(ctx, s.Log, "GetBatch", err)
	}
	return &mapfrontv1.GetBatchResponse{Report: reportOut(r)}, nil
}

// ListBatches implements the RPC of the same name.
func (s *SettlementServer) ListBatches(ctx context.Context, in *mapfrontv1.ListBatchesRequest) (*mapfrontv1.ListBatchesResponse, error) {
	rs, err := s.Store.ListBatches(ctx, int(in.Limit))
	if err != nil {
		return nil, settlementStatus(ctx, s.Log, "ListBatches", err)
	}
	out := &mapfrontv1.ListBatchesResponse{}
	for i := range rs {
		out.Reports = append(out.Reports, reportOut(&rs[i]))
	}
	return out, nil
}

// RunDaily implements the RPC of the same name.
func (s *SettlementServer) RunDaily(ctx context.Context, _ *mapfrontv1.RunDailyRequest) (*mapfrontv1.RunDailyResponse, error) {
	r, err := s.Store.RunDaily(ctx, s.CompletionWindow)
	if err != nil {
		return nil, settlementStatus(ctx, s.Log, "RunDaily", err)
	}
	return &mapfrontv1.RunDailyResponse{InstallmentsReleased: r.InstallmentsReleased, IncompleteFlagged: r.IncompleteFlagged}, nil
}

// The manual-handling queue is part of AdminService (SPEC section 6); its
// three RPCs live here, beside the settlement that fills the queue.

func exceptionOut(e *mapfront.Exception) *mapfrontv1.Exception {
	out := &mapfrontv1.Exception{
		Id: e.ID, Type: exceptionType(e.Type), BusinessDate: mapfront.DateString(e.BusinessDate), LineNo: e.LineNo,
		TradeId: e.TradeID, OrderId: e.OrderID, TerminalId: e.TerminalID, BatchNo: e.BatchNo,
		TerminalOrderId: e.TerminalOrderID, Amount: e.Amount, Expected: e.Expected, Detail: e.Detail,
		State: word[mapfrontv1.ExceptionState](e.State), Action: word[mapfrontv1.ExceptionAction](string(e.Action)), Operator: e.Operator, Note: e.Note,
		CreatedAt: e.CreatedAt.Format(time.RFC3339), LinkedOrderId: e.LinkedOrderID,
	}
	if e.ResolvedAt != nil {
		out.ResolvedAt = e.ResolvedAt.Format(time.RFC3339)
	}
	if e.ResolvedByBatch != nil {
		out.ResolvedByBatch = mapfront.DateString(*e.ResolvedByBatch)
	}
	return out
}

// ListExceptions implements the RPC of the same name.
func (s *AdminServer) ListExceptions(ctx context.Context, in *mapfrontv1.ListExceptionsRequest) (*mapfrontv1.ListExceptionsResponse, error) {
	f := mapfront.ExceptionFilter{State: enumtext.Word(in.State), Limit: int(in.Limit)}
	if f.State == "" && in.State != mapfrontv1.ExceptionState_EXCEPTION_STATE_UNSPECIFIED {
		// A state this build does not know must not widen the filter to all.
		return nil, s.fail(ctx, "ListExceptions", mapfront.Invalid("state", "须为open或resolved"))
	}
	if in.BusinessDate != "" {
		d, err := mapfront.ParseDate(in.BusinessDate)
		if err != nil {
			return nil, s.fail(ctx, "ListExceptions", mapfront.Invalid("business_date", "须为yyyyMMdd"))
		}
		f.BusinessDate = d
	}
	es, err := s.Store.ListExceptions(ctx, f)
	if err != nil {
		return nil, s.fail(ctx, "ListExceptions", err)
	}
	out := &mapfrontv1.ListExceptionsResponse{}
	for i := range es {
		out.Exceptions = append(out.Exceptions, exceptionOut(&es[i]))
	}
	return out, nil
}

// GetException implements the RPC of the same name.
func (s *AdminServer) GetException(ctx context.Context, in *mapfrontv1.GetExceptionRequest) (*mapfrontv1.GetExceptionResponse, error) {
	e, err := s.Store.GetException(ctx, in.Id)
	if err != nil {
		return nil, s.fail(ctx, "GetException", err)
	}
	return &mapfrontv1.GetExceptionResponse{Exception: exceptionOut(e)}, nil
}

// ResolveException implements the RPC of the same name; resolving twice is
// once, the second answer says already. activate and refund_owed move money:
// they become a proposal for a supervisor (four eyes) and the item stays open.
func (s *AdminServer) ResolveException(ctx context.Context, in *mapfrontv1.ResolveExceptionRequest) (*mapfrontv1.ResolveExceptionResponse, error) {
	e, already, p, err := s.Store.SubmitResolution(ctx, mapfront.Resolution{ID: in.Id, Action: mapfront.ResolveAction(enumtext.Word(in.Action)),
		Operator: operatorName(ctx, in.Operator), Note: in.Note, OrderID: in.OrderId})
	if err != nil {
		return nil, s.fail(ctx, "ResolveException", err)
	}
	return &mapfrontv1.ResolveExceptionResponse{Exception: exceptionOut(e), Already: already, Proposal: ProposalOut(p, time.Now())}, nil
}
