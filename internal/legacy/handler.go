// Package legacy serves the partner's legacy JSON contract (SPEC section 2)
// in front of the gRPC OfflineService, through grpc-gateway.
//
// The POSP was written against the partner document, not against protojson,
// so three things differ from a stock grpc-gateway: the JSON itself (field
// names by json_name, amounts as JSON numbers, every field always present,
// trailing commas and a BOM tolerated on input), the envelope around every
// answer ({"errcode","errmsg", payload, "request"} with the raw body echoed),
// and the errors (always the envelope, HTTP 200 for business outcomes, the
// errcode taken from the ErrorDetail the server puts in its status).
// NewHandler puts the three together; main and the tests build the same one.
//
// The package is also the POSP edge (SPEC section 7), the same for the
// gateway program and the server's single-binary mode: Listen and NewServer
// give the listener (HTTPS, client certificates, source allowlist, and
// net/http's own refusals rewritten into the envelope), Options.Limits the
// rate limits, and outcome the one rule that says 10018 only when a failed
// call provably had no effect (ClientOptions instruments the connection).
package legacy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// Defaults of Options.
const (
	// DefaultMaxBodyBytes bounds a request body: the largest legacy body is
	// well under 2 KiB, so 64 KiB leaves room without inviting abuse.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultCallTimeout is the deadline of one gRPC call: a POS waits about
	// this long before it gives up and reverses.
	DefaultCallTimeout = 15 * time.Second
)

// Errcodes the gateway decides by itself (SPEC section 3); every other
// errcode comes from the server.
const (
	codeInternal  = 10000
	codeMalformed = 10001
	codeTerminal  = 10002
	codeBusy      = 10018
)

// Messages of the answers the gateway decides by itself.
const (
	msgInternal     = "其它错误"
	msgBusy         = "系统繁忙，请重试"
	msgNotFound     = "接口路径不存在"
	msgMethod       = "请求方法必须是POST"
	msgTooLarge     = "请求报文过长"
	msgReadFailed   = "读取请求报文失败"
	msgBadRequest   = "请求报文格式错误"
	msgFailedAnswer = "交易失败"
)

// Options tunes the handler; the zero value takes the defaults.
type Options struct {
	// MaxBodyBytes bounds a request body (SPEC section 7); over it the answer
	// is HTTP 413. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// CallTimeout is the deadline of each gRPC call. When it passes after
	// the request was sent, the outcome is unknown to the gateway and the
	// answer is 10000 (see outcome). Zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// Logger receives the access log (never a body: bodies hold PIN blocks
	// and ID numbers) and the internal errors. Nil discards.
	Logger *slog.Logger
	// AccessLogEvery thins the access log's successful answers (HTTP 200,
	// errcode 0) to one line in AccessLogEvery, with "sampled" set to it;
	// 0 or 1 logs every one, as does a Logger enabled for debug. Every
	// other answer (refusals, declines, errors) always gets its line. The
	// programs pass EdgeConfig.AccessLogEvery.
	AccessLogEvery int
	// Observe, when set, is told of every answer: its path, errcode and how
	// long it took (the gateway's metrics).
	Observe func(path string, errcode int32, d time.Duration)
	// Limits are the admission limits (SPEC section 7). The zero value
	// limits nothing; the programs pass EdgeConfig.Limits, whose default is
	// DefaultLimits.
	Limits Limits
	// Refused, when set, is told of each request refused by a limit, with
	// its reason (RefusedSourceRate, RefusedTerminalRate,
	// RefusedOpenCardRate): the refusal metrics.
	Refused func(reason string)
	// Now is the clock of the limits; nil means time.Now.
	Now func() time.Time
}

// NewHandler returns the http.Handler of the legacy paths, calling
// OfflineService through client: a gRPC client of a remote server (the
// gateway program), or the server itself in-process (the server's
// single-binary mode). It answers every path: unknown ones get 404 with the
// envelope, so it can be mounted at "/".
func NewHandler(client mapfrontv1.OfflineServiceClient, opts Options) (http.Handler, error) {
	h := &handler{
		maxBody:  opts.MaxBodyBytes,
		timeout:  opts.CallTimeout,
		log:      opts.Logger,
		observe:  opts.Observe,
		sources:  newBuckets(opts.Limits.Source),
		now:      opts.Now,
		refused:  opts.Refused,
		logEvery: uint64(max(opts.AccessLogEvery, 1)),
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.timeout <= 0 {
		h.timeout = DefaultCallTimeout
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	none := func(string) (string, bool) { return "", false }
	h.mux = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, Marshaler{}),
		runtime.WithForwardResponseRewriter(h.wrapAnswer),
		runtime.WithErrorHandler(h.handleError),
		runtime.WithRoutingErrorHandler(h.handleRoutingError),
		// The POSP sends no metadata and must get none back: no HTTP header
		// becomes gRPC metadata, no server header or trailer leaks out.
		runtime.WithIncomingHeaderMatcher(none),
		runtime.WithOutgoingHeaderMatcher(none),
		runtime.WithOutgoingTrailerMatcher(none),
		// Any Content-Type is accepted, so a form Content-Type must not turn
		// a POST into something else.
		runtime.WithDisablePathLengthFallback(),
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithWriteContentLength(),
	)
	limited := &limitedClient{
		next:     client,
		terminal: newBuckets(opts.Limits.Terminal),
		openCard: newBuckets(opts.Limits.OpenCard),
		now:      h.now,
		refused:  opts.Refused,
	}
	if err := mapfrontv1.RegisterOfflineServiceHandlerClient(context.Background(), h.mux, limited); err != nil {
		return nil, fmt.Errorf("legacy: register OfflineService: %w", err)
	}
	return h, nil
}

// PathName names a request path for metrics labels: the legacy path's last
// part (pay, open_card, ...) or "other", so that scanners sending arbitrary
// paths cannot grow the label set.
func PathName(path string) string {
	if _, ok := successMessage(path); ok {
		return path[len("/front/offline/"):]
	}
	return "other"
}

// successMessage is the errmsg of errcode 0 for each legacy path, as the
// partner document writes it; ok is false for a path that is not one of them.
func successMessage(path string) (msg string, ok bool) {
	switch path {
	case "/front/offline/open_card":
		return "用户开卡成功", true
	case "/front/offline/repeal_card":
		return "用户线下开卡撤销成功", true
	case "/front/offline/pay":
		return "支付成功", true
	case "/front/offline/pay_cancel":
		return "交易撤销成功", true
	case "/front/offline/pay_undo":
		return "消费冲正成功", true
	case "/front/offline/get_account_info":
		return "查询余额成功", true
	case "/front/offline/download_product":
		return "产品下载成功", true
	}
	return "", false
}

// handler bounds and keeps the body, then lets grpc-gateway transcode, with
// hooks that turn every outcome into the envelope.
type handler struct {
	mux     *runtime.ServeMux
	maxBody int64
	timeout time.Duration
	log     *slog.Logger
	observe func(path string, errcode int32, d time.Duration)
	sources *buckets
	now     func() time.Time
	refused func(reason string)
	// logEvery and successes thin the access log's successful answers
	// (Options.AccessLogEvery).
	logEvery  uint64
	successes atomic.Uint64
}

// exchange is what one request's hooks share: the raw body (echoed in every
// answer), the decoder's error, what grpc-go did with the call (delivery,
// filled by ClientOptions' stats handler) and what was answered (for the
// access log). It also holds the body handed to grpc-gateway, so that one
// allocation serves the request.
type exchange struct {
	okMsg     string
	raw       []byte
	body      rawBody
	decodeErr error
	delivery  delivery
	answered  bool
	status    int
	errcode   int32
	reference string
}

type exchangeKey struct{}

// exchangeFrom returns the request's exchange. A request that did not come
// through ServeHTTP (which cannot happen with NewHandler) gets an empty one,
// so the hooks never dereference nil.
func exchangeFrom(ctx context.Context) *exchange {
	if ex, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		return ex
	}
	return &exchange{}
}

// rawBody replaces the request body for grpc-gateway: the bytes already read,
// plus a way for the decoder to reach the exchange (see Marshaler.NewDecoder).
type rawBody struct {
	bytes.Reader
	ex *exchange
}

func (*rawBody) Close() error { return nil }

// ServeHTTP checks the path and method, reads the bounded body, and hands
// the request to grpc-gateway with the exchange in its context. Whatever
// happens, the answer is the envelope and one access-log line is written.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ex := &exchange{}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			ex.reference = newReference()
			h.log.Error("panic serving legacy request",
				"path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()), "reference", ex.reference)
			if !ex.answered {
				h.writeEnvelope(w, ex, http.StatusOK, codeInternal, withReference(msgInternal, ex.reference))
			}
		}
		d := time.Since(start)
		h.accessLog(r, ex, d)
		if h.observe != nil {
			h.observe(r.URL.Path, ex.errcode, d)
		}
	}()

	okMsg, known := successMessage(r.URL.Path)
	if !known {
		h.echo(w, r, ex)
		h.writeEnvelope(w, ex, http.StatusNotFound, codeMalformed, msgNotFound)
		return
	}
	if r.Method != http.MethodPost {
		h.echo(w, r, ex)
		w.Header().Set("Allow", http.MethodPost)
		h.writeEnvelope(w, ex, http.StatusMethodNotAllowed, codeMalformed, msgMethod)
		return
	}
	if r.ContentLength > h.maxBody {
		// Announced over the limit: refused at once, rather than after
		// reading up to the limit or waiting for a body never sent.
		h.writeEnvelope(w, ex, http.StatusRequestEntityTooLarge, codeMalformed, msgTooLarge)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		// The body was not received whole, so there is nothing exact to
		// echo: request stays empty.
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.writeEnvelope(w, ex, http.StatusRequestEntityTooLarge, codeMalformed, msgTooLarge)
			return
		}
		h.writeEnvelope(w, ex, http.StatusBadRequest, codeMalformed, msgReadFailed)
		return
	}
	ex.okMsg, ex.raw = okMsg, raw
	if !h.sources.allow(sourceKey(r.RemoteAddr), h.now()) {
		if h.refused != nil {
			h.refused(RefusedSourceRate)
		}
		h.writeEnvelope(w, ex, http.StatusOK, codeBusy, msgRateLimited)
		return
	}

	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), exchangeKey{}, ex), h.timeout)
	defer cancel()
	req := r.WithContext(ctx)
	ex.body.Reset(raw)
	ex.body.ex = ex
	req.Body = &ex.body
	req.ContentLength = int64(len(raw))
	h.mux.ServeHTTP(w, req)
}

// accessLog writes the request's access-log line: always for an answer
// other than HTTP 200 with errcode 0 (a refusal, a decline, an error: what
// security and operations look for), and for a success one in h.logEvery
// (with "sampled": h.logEvery) unless the logger is enabled for debug. The
// successes' own record is the database's.
func (h *handler) accessLog(r *http.Request, ex *exchange, d time.Duration) {
	var sampled slog.Attr
	if ex.status == http.StatusOK && ex.errcode == 0 && ex.reference == "" && h.logEvery > 1 &&
		!h.log.Enabled(r.Context(), slog.LevelDebug) {
		if h.successes.Add(1)%h.logEvery != 1 {
			return
		}
		sampled = slog.Uint64("sampled", h.logEvery)
	}
	attrs := [8]slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("remote", r.RemoteAddr),
		slog.Int("status", ex.status),
		slog.Int("errcode", int(ex.errcode)),
		slog.Int64("duration_ms", d.Milliseconds()),
	}
	n := 6
	if ex.reference != "" {
		attrs[n] = slog.String("reference", ex.reference)
		n++
	}
	if sampled.Key != "" {
		attrs[n] = sampled
		n++
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "legacy request", attrs[:n]...)
}

// sourceKey is the bucket key of a peer: its address without the port, so
// that all connections of one host share the limit.
func sourceKey(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// wrapAnswer puts a successful response into the envelope; grpc-gateway then
// marshals it with Marshaler.
func (h *handler) wrapAnswer(ctx context.Context, resp proto.Message) (any, error) {
	ex := exchangeFrom(ctx)
	ex.answered, ex.status, ex.errcode = true, http.StatusOK, 0
	return &envelope{errmsg: ex.okMsg, payload: resp.ProtoReflect(), request: ex.raw}, nil
}

// handleError turns every failure of a call into the envelope (SPEC section
// 3). Business outcomes are HTTP 200: the POSP reads errcode, not the status.
func (h *handler) handleError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeFrom(r.Context())
	var de *DecodeError
	if errors.As(ex.decodeErr, &de) {
		h.writeEnvelope(w, ex, http.StatusOK, codeMalformed, de.Msg)
		return
	}
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		h.writeEnvelope(w, ex, hse.HTTPStatus, codeMalformed, msgBadRequest)
		return
	}
	v := outcome(err, &ex.delivery)
	if v.internal {
		// The outcome is unknown here: the terminal gets 10000 and a
		// reference that finds this line in the log, and reverses.
		st := status.Convert(err)
		ex.reference = newReference()
		h.log.Error("OfflineService call failed",
			"path", r.URL.Path,
			"grpc_code", st.Code().String(),
			"grpc_message", st.Message(),
			"sent", ex.delivery.sent.Load(),
			"reference", ex.reference,
		)
		v.errmsg = withReference(v.errmsg, ex.reference)
	} else if v.notSent {
		h.log.Warn("OfflineService call not sent", "path", r.URL.Path,
			"grpc_code", status.Code(err).String(), "grpc_message", status.Convert(err).Message())
	}
	h.writeEnvelope(w, ex, http.StatusOK, v.errcode, v.errmsg)
	if ref := serverReference(err); ref != "" {
		ex.reference = ref
	}
}

// serverReference is the reference of the server's ErrorDetail, if any.
func serverReference(err error) string {
	for _, d := range status.Convert(err).Details() {
		if ed, ok := d.(*mapfrontv1.ErrorDetail); ok {
			return ed.GetReference()
		}
	}
	return ""
}

// detailMessage is the errmsg of a server's ErrorDetail, with the reference
// of an internal error quoted if the server did not quote it itself.
func detailMessage(ed *mapfrontv1.ErrorDetail) string {
	msg := ed.GetErrmsg()
	if msg == "" {
		msg = msgFailedAnswer
		if ed.GetErrcode() == codeInternal {
			msg = msgInternal
		}
	}
	if ref := ed.GetReference(); ref != "" && !strings.Contains(msg, ref) {
		msg = withReference(msg, ref)
	}
	return msg
}

// handleRoutingError answers what grpc-gateway's own router refuses. The
// path and method checks of ServeHTTP come first, so this is a safety net.
func (h *handler) handleRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	ex := exchangeFrom(r.Context())
	msg := msgBadRequest
	switch httpStatus {
	case http.StatusNotFound:
		msg = msgNotFound
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
		msg = msgMethod
	}
	h.writeEnvelope(w, ex, httpStatus, codeMalformed, msg)
}

// writeEnvelope writes an answer without payload and notes it in ex.
func (h *handler) writeEnvelope(w http.ResponseWriter, ex *exchange, httpStatus int, errcode int32, errmsg string) {
	ex.answered, ex.status, ex.errcode = true, httpStatus, errcode
	body := (&envelope{errcode: errcode, errmsg: errmsg, request: ex.raw}).appendJSON(nil)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(httpStatus)
	if _, err := w.Write(body); err != nil {
		h.log.Debug("writing legacy answer", "error", err)
	}
}

// echo reads the body of a request that gets no business answer (an
// unknown path, a wrong method) into ex, for the envelope's request: SPEC
// section 2 echoes the exact body in every answer, errors included, so that
// the POSP can tell crossed packets apart. A body over the limit, or one
// that does not arrive whole, is not echoed (nothing exact to echo).
func (h *handler) echo(w http.ResponseWriter, r *http.Request, ex *exchange) {
	if r.ContentLength > h.maxBody {
		return
	}
	if raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody)); err == nil {
		ex.raw = raw
	}
}

// newReference returns a short random reference for an internal error: long
// enough to find one log line, short enough to read off a POS screen.
func newReference() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

func withReference(msg, ref string) string {
	return msg + "（参考号" + ref + "）"
}
