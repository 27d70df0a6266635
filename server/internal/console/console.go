// Package console is the operations console (运营控制台, SPEC section 7): a
// server-rendered web UI in Chinese on a listener of its own (never the
// POSP's). Operators sign in with console accounts (argon2id passwords,
// sessions with an idle timeout, CSRF tokens on every POST, lockout after
// failed sign-ins). Every page and action names the AdminService or
// SettlementService RPC it stands for: the signed-in role must be allowed
// that RPC by the one authorization table (authz.Allowed), and the action runs
// through the same application service with an audit.Actor in the context,
// so it is audited and four-eyes approved exactly as over gRPC.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/authz"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/postgres"
)

//go:embed templates/*.html
var templateFiles embed.FS

// Users is what the console needs of the account table.
type Users interface {
	ConsoleUser(ctx context.Context, name string) (*postgres.ConsoleUser, error)
	ConsoleSignInReserve(ctx context.Context, name string, lockAfter int, lockFor time.Duration) (*postgres.ConsoleUser, bool, error)
	ConsoleSignInOK(ctx context.Context, name string) error
}

// Batches reads settlement batch reports (SettlementService's reads).
type Batches interface {
	GetBatch(ctx context.Context, date time.Time) (*mapfront.BatchReport, error)
	ListBatches(ctx context.Context, limit int) ([]mapfront.BatchReport, error)
}

// Refusals records a change refused before it reached the store
// (postgres.Store.AuditRefusal), as the gRPC edge records one.
type Refusals interface {
	AuditRefusal(ctx context.Context, c audit.Change, cause error)
}

// Options configure the console.
type Options struct {
	Admin   *mapfront.AdminService
	Batches Batches
	Users   Users
	// Refusals, when set, records a change the console itself refuses
	// (refuseBadText) in the audit trail, refused with its errcode.
	Refusals Refusals
	Log      *slog.Logger
	// Idle ends a session after this long without a request (default 15m).
	Idle time.Duration
	// LockAfter sign-in attempts in a row without a success lock an account
	// for LockFor (defaults 5 and 15m): each attempt is counted before its
	// password is checked, so no more than LockAfter are ever checked in a
	// run, however many arrive at once.
	LockAfter int
	LockFor   time.Duration
	// SignIns is how many sign-ins may check a password (argon2id, 19 MiB
	// each) at once (default 2); a sign-in that finds none free within
	// SignInWait (default 2s) is answered 503 "busy, try again" and is not
	// counted against the account.
	SignIns    int
	SignInWait time.Duration
	// Zone shows times in the business zone.
	Zone *time.Location
	// Secure marks the cookies Secure (a TLS listener).
	Secure bool
	// Now is the store's clock, for the proposals' expiry and the
	// accounts' lockout (default time.Now).
	Now func() time.Time
}

// Server is the console's http.Handler. Create it with New.
type Server struct {
	o     Options
	pages map[string]*template.Template
	mux   *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session

	// signIns holds a token for each sign-in checking a password (Options.SignIns).
	signIns chan struct{}
	// verify checks a password (VerifyPassword; tests wrap it).
	verify func(hash, password string) (bool, error)
}

type session struct {
	user string
	role authz.Role
	// account is the account's password hash at sign-in: a session whose
	// account has since been given another role or password ends (guard).
	account  string
	csrf     string
	lastSeen time.Time
	flash    string
}

const cookieName = "mapfront_console"

// IdentityPrefix is prepended to console account names to make the
// identity recorded in the audit trail and compared by four eyes: a console
// account is never the same identity as a client certificate.
const IdentityPrefix = "console/"

// New returns the console. Errors: templates that do not parse.
func New(o Options) (*Server, error) {
	if o.Idle <= 0 {
		o.Idle = 15 * time.Minute
	}
	if o.LockAfter <= 0 {
		o.LockAfter = 5
	}
	if o.LockFor <= 0 {
		o.LockFor = 15 * time.Minute
	}
	if o.Zone == nil {
		o.Zone = time.Local
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SignIns <= 0 {
		o.SignIns = 2
	}
	if o.SignInWait <= 0 {
		o.SignInWait = 2 * time.Second
	}
	s := &Server{o: o, pages: map[string]*template.Template{}, mux: http.NewServeMux(), sessions: map[string]*session{},
		signIns: make(chan struct{}, o.SignIns), verify: VerifyPassword}
	funcs := template.FuncMap{
		"yuan": mapfront.FormatYuan,
		"when": func(t any) string {
			switch v := t.(type) {
			case time.Time:
				if v.IsZero() {
					return ""
				}
				return v.In(o.Zone).Format("2006-01-02 15:04:05")
			case *time.Time:
				if v == nil {
					return ""
				}
				return v.In(o.Zone).Format("2006-01-02 15:04:05")
			}
			return ""
		},
		"date":  mapfront.DateString,
		"event": func(e string) string { return eventNames[e] },
		"typename": func(t mapfront.ExceptionType) string {
			l, _ := labelText("exception_type", t)
			return l + "（" + string(t) + "）"
		},
		"label":     label,
		"labeltext": labelText,
		"method":    auditMethod,
	}
	names, err := templateFiles.ReadDir("templates")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if n.Name() == "layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+n.Name())
		if err != nil {
			return nil, err
		}
		s.pages[strings.TrimSuffix(n.Name(), ".html")] = t
	}
	s.routes()
	return s, nil
}

// ServeHTTP applies the security headers and the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// Serve runs the console on addr until ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("console listening", "addr", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

func token() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// current returns the request's live session, touching it; nil when there is
// none or it has been idle too long.
func (s *Server) current(r *http.Request) (string, *session) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for id, ss := range s.sessions { // drop idle sessions as we go
		if now.Sub(ss.lastSeen) > s.o.Idle {
			delete(s.sessions, id)
		}
	}
	ss := s.sessions[c.Value]
	if ss == nil {
		return "", nil
	}
	ss.lastSeen = now
	return c.Value, ss
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: s.o.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
}

// page is what every template gets.
type page struct {
	Title string
	User  string
	Role  authz.Role
	CSRF  string
	Flash string
	Error string
	Nav   []navItem
	Data  any
	can   func(method string) bool
}

type navItem struct{ Href, Label string }

// Can reports whether the signed-in role may call the RPC (short name, e.g.
// "ApproveProposal"), for showing the forms it may submit.
func (p page) Can(short string) bool { return p.can != nil && p.can(methodOf(short)) }

func methodOf(short string) string {
	if short == "ListBatches" || short == "GetBatch" {
		return "/mapfront.v1.SettlementService/" + short
	}
	return "/mapfront.v1.AdminService/" + short
}

func allowed(role authz.Role, method string) bool {
	roles, ok := authz.Allowed(method)
	return ok && slices.Contains(roles, role)
}

var nav = []struct{ href, label, rpc string }{
	{"/exceptions", "人工处理", "ListExceptions"},
	{"/proposals", "复核", "ListProposals"},
	{"/customers", "客户", "GetCustomer"},
	{"/orders", "订单", "GetOrder"},
	{"/batches", "日切批次", "ListBatches"},
	{"/ledger", "账务核验", "VerifyLedger"},
	{"/audit", "审计记录", "ListAudit"},
}

func (s *Server) render(w http.ResponseWriter, name string, ss *session, title string, data any, errMsg string) {
	p := page{Title: title, Data: data, Error: errMsg}
	if ss != nil {
		s.mu.Lock()
		p.User, p.Role, p.CSRF, p.Flash = ss.user, ss.role, ss.csrf, ss.flash
		ss.flash = ""
		s.mu.Unlock()
		role := ss.role
		p.can = func(m string) bool { return allowed(role, m) }
		for _, n := range nav {
			if allowed(role, methodOf(n.rpc)) {
				p.Nav = append(p.Nav, navItem{n.href, n.label})
			}
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if errMsg != "" && name != "login" {
		w.WriteHeader(http.StatusUnprocessableEntity)
	}
	if err := s.pages[name].ExecuteTemplate(w, "layout.html", p); err != nil {
		s.o.Log.Error("console template", "page", name, "err", err)
	}
}

// handler is a page or action standing for one RPC.
type handler func(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error

// guard wraps h: a live session, the role allowed the RPC (403 otherwise),
// a valid CSRF token on POST, and the audit actor in the context.
func (s *Server) guard(rpc string, h handler) http.HandlerFunc {
	method := methodOf(rpc)
	return func(w http.ResponseWriter, r *http.Request) {
		id, ss := s.current(r)
		if ss == nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		switch valid, err := s.stillValid(r.Context(), id, ss); {
		case err != nil:
			// The account could not be read (a busy database, a request
			// given up): the session stays, this request is not served.
			ref := token()[:8]
			s.o.Log.Error("console session check", "identity", IdentityPrefix+ss.user, "ref", ref, "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			s.render(w, "error", ss, "出错", nil, "暂时无法核对账户，请稍后重试（参考号"+ref+"）")
			return
		case !valid:
			s.setCookie(w, cookieName, "", -1)
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if !allowed(ss.role, method) {
			s.o.Log.Warn("console action refused", "identity", IdentityPrefix+ss.user, "method", method)
			w.WriteHeader(http.StatusForbidden)
			s.render(w, "forbidden", ss, "无权操作", rpc, "")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(ss.csrf)) != 1 {
				http.Error(w, "CSRF token missing or wrong", http.StatusForbidden)
				return
			}
		}
		ctx := audit.WithActor(r.Context(), audit.Actor{Identity: IdentityPrefix + ss.user, Role: string(ss.role), Method: method})
		if field, err := refuseBadText(r); err != nil {
			// A refused change is recorded as grpcapi.RefuseNUL records
			// one: the field in its args, an empty target (the request
			// was not read). A refused read (a method the auditor role
			// may call, POST or not) is answered only.
			if authz.Audited(method) && s.o.Refusals != nil {
				c := audit.Change{Op: rpc}
				if field != "" { // "": the query or form did not parse
					c.Args = map[string]any{"field": field}
				}
				s.o.Refusals.AuditRefusal(ctx, c, err)
			}
			s.fail(w, r, ss, err)
			return
		}
		if err := h(ctx, w, r, ss); err != nil {
			s.fail(w, r, ss, err)
		}
	}
}

// stillValid reports whether the session's account still has the role and
// password it signed in with (`server console-user add` changes them); if
// not, or the account is gone, the session ends: a demoted or reset
// account's sessions do not keep the old role until they go idle. err: the
// account could not be read (the session stays).
func (s *Server) stillValid(ctx context.Context, id string, ss *session) (bool, error) {
	u, err := s.o.Users.ConsoleUser(ctx, ss.user)
	if err != nil && mapfront.ErrorCode(err) != mapfront.CodeNotFound {
		return false, err
	}
	if err == nil && authz.Role(u.Role) == ss.role && u.PasswordHash == ss.account {
		return true, nil
	}
	s.o.Log.Warn("console session ended: the account changed", "identity", IdentityPrefix+ss.user)
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
	return false, nil
}

// refuseBadText refuses a request whose query or form holds U+0000 or
// invalid UTF-8 in a field name or value: PostgreSQL text cannot hold
// either, so the store would refuse it with 10001 but without the field.
// As grpcapi.RefuseNUL answers the AdminService, the refusal is 10001
// naming the field ("字段note格式错误：含有控制字符U+0000"), before the
// handler runs: nothing is read or changed. Fields are checked in name
// order, so the same request always names the same field. It returns the
// field as named in the refusal (quoted when the name itself is bad).
func refuseBadText(r *http.Request) (string, error) {
	// A POST's form was parsed for its CSRF token, which dropped a query
	// that does not parse; it is parsed again here so that it is refused
	// as a GET's is.
	if _, qerr := url.ParseQuery(r.URL.RawQuery); r.ParseForm() != nil || qerr != nil {
		return "", mapfront.Errorf(mapfront.CodeMalformed, "请求的参数无法解析")
	}
	names := make([]string, 0, len(r.Form))
	for name := range r.Form {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		shown := name
		if !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
			shown = strconv.QuoteToASCII(name)
		}
		if len(shown) > 64 { // the caller chose the name: the answer and the trail keep 64 bytes of it
			shown = strings.ToValidUTF8(shown[:64], "") + "…"
		}
		for _, v := range append([]string{name}, r.Form[name]...) {
			switch {
			case strings.ContainsRune(v, 0):
				return shown, mapfront.Invalid(shown, "含有控制字符U+0000")
			case !utf8.ValidString(v):
				return shown, mapfront.Invalid(shown, "不是合法的UTF-8")
			}
		}
	}
	return "", nil
}

// fail shows a business refusal with its errcode, or an internal error with
// a logged reference.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, ss *session, err error) {
	msg := ""
	var de *mapfront.Error
	switch {
	case errors.As(err, &de):
		msg = de.Error()
	default:
		ref := token()[:8]
		s.o.Log.Error("console internal error", "path", r.URL.Path, "ref", ref, "err", err)
		msg = "其它错误（参考号" + ref + "）"
	}
	if r.Method == http.MethodPost {
		s.flash(ss, "操作未完成："+msg)
		http.Redirect(w, r, backTo(r), http.StatusSeeOther)
		return
	}
	s.render(w, "error", ss, "出错", nil, msg)
}

func (s *Server) flash(ss *session, msg string) {
	s.mu.Lock()
	ss.flash = msg
	s.mu.Unlock()
}

// backTo is where a POST returns: the form's "back" path when it is local.
func backTo(r *http.Request) string {
	b := r.PostFormValue("back")
	if strings.HasPrefix(b, "/") && !strings.HasPrefix(b, "//") && !strings.Contains(b, "\\") {
		return b
	}
	return "/"
}

// eventNames name a terminal key's history entries in Chinese.
var eventNames = map[string]string{
	mapfront.EventOpenCard:  "开卡付款",
	mapfront.EventPay:       "消费",
	mapfront.EventCancel:    "消费撤销",
	mapfront.EventDecline:   "拒绝",
	mapfront.EventTombstone: "冲正（先于消费）",
	mapfront.EventReversal:  "冲正",
}
