package console

import (
	"context"
	"crypto/subtle"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/authz"
	"mapfront/server/internal/mapfront"
)

const loginCookie = "mapfront_console_login"

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.logout)
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/exceptions", http.StatusSeeOther)
	})
	m.HandleFunc("GET /exceptions", s.guard("ListExceptions", s.exceptions))
	m.HandleFunc("GET /exceptions/{id}", s.guard("GetException", s.exception))
	m.HandleFunc("POST /exceptions/{id}/resolve", s.guard("ResolveException", s.resolve))
	m.HandleFunc("GET /proposals", s.guard("ListProposals", s.proposals))
	m.HandleFunc("POST /proposals/{id}/approve", s.guard("ApproveProposal", s.decide(true)))
	m.HandleFunc("POST /proposals/{id}/reject", s.guard("RejectProposal", s.decide(false)))
	m.HandleFunc("GET /customers", s.guard("GetCustomer", s.customer))
	// The ID number travels in a POST body, never a URL: it must not reach
	// a log or the browser's history (SPEC section 7).
	m.HandleFunc("POST /customers/by-id", s.guard("FindCustomerByID", s.customerByID))
	m.HandleFunc("POST /customers/unlock", s.guard("UnlockPaymentPassword", s.unlock))
	m.HandleFunc("POST /accounts/freeze", s.guard("FreezeAccount", s.freeze(true)))
	m.HandleFunc("POST /accounts/unfreeze", s.guard("UnfreezeAccount", s.freeze(false)))
	m.HandleFunc("GET /orders", s.guard("GetOrder", s.order))
	m.HandleFunc("GET /batches", s.guard("ListBatches", s.batches))
	m.HandleFunc("GET /batches/{date}", s.guard("GetBatch", s.batch))
	m.HandleFunc("GET /ledger", s.guard("VerifyLedger", s.ledger))
	m.HandleFunc("GET /audit", s.guard("ListAudit", s.audit))
}

// The sign-in form carries a token that must equal a cookie set with it
// (double submit): a page of another site cannot sign a browser in.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ss := s.current(r); ss != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.showLogin(w, "")
}

func (s *Server) showLogin(w http.ResponseWriter, msg string) {
	s.showLoginStatus(w, http.StatusOK, msg)
}

func (s *Server) showLoginStatus(w http.ResponseWriter, status int, msg string) {
	t := token()
	s.setCookie(w, loginCookie, t, 600)
	if status != http.StatusOK {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
	}
	s.render(w, "login", nil, "登录", t, msg)
}

// login counts the attempt (the store's conditional UPDATE, which is also
// the lock check) before the password is checked, so that no more than
// LockAfter passwords are checked in a run however many sign-ins arrive at
// once; and checks at most SignIns passwords at a time.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	c, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		http.Error(w, "CSRF token missing or wrong", http.StatusForbidden)
		return
	}
	name, password := strings.TrimSpace(r.PostFormValue("user")), r.PostFormValue("password")
	const refused = "用户名或密码错误"
	// Each check holds argon2id's 19 MiB: a sign-in that finds no slot soon
	// is told to try again, before anything is counted.
	if !s.acquireSignIn(r.Context()) {
		s.o.Log.Warn("console sign-in refused: busy", "user", name)
		w.Header().Set("Retry-After", "1")
		s.showLoginStatus(w, http.StatusServiceUnavailable, "登录请求过多，系统繁忙，请稍后重试")
		return
	}
	release := sync.OnceFunc(func() { <-s.signIns })
	defer release()
	if strings.ContainsRune(name, 0) || !utf8.ValidString(name) {
		// No account has such a name, and PostgreSQL could not look it up
		// (text holds neither): the answer of an unknown name, without
		// asking the database.
		_, _ = s.verify(dummyHash, password)
		release()
		s.showLogin(w, refused)
		return
	}
	u, reserved, err := s.o.Users.ConsoleSignInReserve(r.Context(), name, s.o.LockAfter, s.o.LockFor)
	if err != nil {
		if mapfront.ErrorCode(err) != mapfront.CodeNotFound {
			s.o.Log.Error("console sign-in", "err", err)
		}
		// The same answer as a wrong password: names are not to be probed.
		_, _ = s.verify(dummyHash, password)
		release()
		s.showLogin(w, refused)
		return
	}
	if !reserved { // locked: not counted, and the password is not checked
		release()
		s.o.Log.Warn("console sign-in to a locked account", "user", name)
		msg := "账户已锁定，请稍后再试"
		if u.LockedUntil != nil { // the store's clock set it
			msg = "账户已锁定，请于" + u.LockedUntil.In(s.o.Zone).Format("15:04") + "后再试"
		}
		s.showLogin(w, msg)
		return
	}
	ok, err := s.verify(u.PasswordHash, password)
	release()
	if err != nil || !ok {
		// Already counted; the attempt that reached the limit locked it.
		locked := u.LockedUntil != nil
		s.o.Log.Warn("console sign-in failed", "user", name, "locked", locked)
		if locked {
			s.showLogin(w, "失败次数过多，账户已锁定")
			return
		}
		s.showLogin(w, refused)
		return
	}
	if err := s.o.Users.ConsoleSignInOK(r.Context(), name); err != nil {
		s.o.Log.Error("console sign-in", "err", err)
	}
	id := token()
	s.mu.Lock()
	s.sessions[id] = &session{user: u.Name, role: authz.Role(u.Role), account: u.PasswordHash, csrf: token(), lastSeen: time.Now()}
	s.mu.Unlock()
	s.setCookie(w, loginCookie, "", -1)
	s.setCookie(w, cookieName, id, 0)
	s.o.Log.Info("console sign-in", "identity", IdentityPrefix+u.Name, "role", u.Role)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// acquireSignIn takes one of the SignIns slots, waiting at most SignInWait
// (or until the request ends); false: none came free.
func (s *Server) acquireSignIn(ctx context.Context) bool {
	select {
	case s.signIns <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(s.o.SignInWait)
	defer t.Stop()
	select {
	case s.signIns <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// dummyHash makes a sign-in to an unknown name cost what a wrong password does.
var dummyHash, _ = HashPassword("not a password")

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	id, ss := s.current(r)
	if ss != nil && subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(ss.csrf)) == 1 {
		s.mu.Lock()
		delete(s.sessions, id)
		s.mu.Unlock()
	}
	s.setCookie(w, cookieName, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, mapfront.Invalid("id", "须为正整数")
	}
	return id, nil
}

type exceptionsData struct {
	Date, Type, State string
	Types             []mapfront.ExceptionType
	Items             []mapfront.Exception
}

func (s *Server) exceptions(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	q := r.URL.Query()
	d := exceptionsData{Date: q.Get("date"), Type: q.Get("type"), State: q.Get("state"), Types: mapfront.ExceptionTypes()}
	if !r.URL.Query().Has("state") {
		d.State = mapfront.ExceptionOpen
	}
	d.State = allStates(d.State)
	f := mapfront.ExceptionFilter{State: d.State, Limit: 1000}
	if d.Date != "" {
		date, err := mapfront.ParseDate(d.Date)
		if err != nil {
			return mapfront.Invalid("date", "须为yyyyMMdd")
		}
		f.BusinessDate = date
	}
	items, err := s.o.Admin.ListExceptions(ctx, f)
	if err != nil {
		return err
	}
	for _, e := range items {
		if d.Type == "" || string(e.Type) == d.Type {
			d.Items = append(d.Items, e)
		}
	}
	s.render(w, "exceptions", ss, "人工处理队列", d, "")
	return nil
}

type exceptionData struct {
	E         *mapfront.Exception
	Order     *mapfront.OrderView
	Proposals []mapfront.Proposal
	Actions   []mapfront.ResolveAction
}

func (s *Server) exception(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	e, err := s.o.Admin.GetException(ctx, id)
	if err != nil {
		return err
	}
	d := exceptionData{E: e, Actions: []mapfront.ResolveAction{mapfront.ActionActivate, mapfront.ActionRefundOwed, mapfront.ActionIgnore, mapfront.ActionLinkOrder}}
	if e.OrderID != "" && allowed(ss.role, methodOf("GetOrder")) {
		d.Order, _ = s.o.Admin.GetOrder(ctx, e.OrderID) // the item may name an order we never had
	}
	if allowed(ss.role, methodOf("ListProposals")) {
		if d.Proposals, err = s.o.Admin.ListProposals(ctx, mapfront.ProposalFilter{Target: "exception:" + strconv.FormatInt(id, 10)}); err != nil {
			return err
		}
	}
	s.render(w, "exception", ss, fmt.Sprintf("异常 %d", id), d, "")
	return nil
}

func (s *Server) resolve(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	res := mapfront.Resolution{ID: id, Action: mapfront.ResolveAction(r.PostFormValue("action")),
		Operator: operatorName(ss.user), Note: r.PostFormValue("note"), OrderID: strings.TrimSpace(r.PostFormValue("order_id"))}
	_, already, p, err := s.o.Admin.SubmitResolution(ctx, res)
	if err != nil {
		return err
	}
	switch {
	case p != nil:
		s.flash(ss, fmt.Sprintf("已提交复核提案 %d：须由另一位复核员批准后才生效，资金尚未变动。", p.ID))
	case already:
		s.flash(ss, "该异常此前已处理，本次未作变动。")
	default:
		s.flash(ss, "已处理。")
	}
	http.Redirect(w, r, fmt.Sprintf("/exceptions/%d", id), http.StatusSeeOther)
	return nil
}

// operatorName is the queue's display name: the console identity, cut to
// the field's limit.
func operatorName(user string) string {
	n := IdentityPrefix + user
	if len(n) > mapfront.MaxIDLen {
		n = n[:mapfront.MaxIDLen]
	}
	return n
}

// allStates reads a state filter: "all", as the settlement command spells
// it, is every state, the same as empty.
func allStates(state string) string {
	if state == "all" {
		return ""
	}
	return state
}

type proposalsData struct {
	State string
	Items []mapfront.Proposal
	Now   time.Time
	Me    string
}

func (s *Server) proposals(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	state := allStates(r.URL.Query().Get("state"))
	if !r.URL.Query().Has("state") {
		state = mapfront.ProposalPending
	}
	items, err := s.o.Admin.ListProposals(ctx, mapfront.ProposalFilter{State: state})
	if err != nil {
		return err
	}
	s.render(w, "proposals", ss, "复核（四眼原则）", proposalsData{State: state, Items: items, Now: s.o.Now(), Me: IdentityPrefix + ss.user}, "")
	return nil
}

func (s *Server) decide(approve bool) handler {
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		decide := s.o.Admin.RejectProposal
		if approve {
			decide = s.o.Admin.ApproveProposal
		}
		// The note's textarea sends a line break as CRLF, a control
		// character the decision refuses (10001): one line of text.
		p, already, err := decide(ctx, id, strings.Join(strings.Fields(r.PostFormValue("note")), " "))
		var de *mapfront.Error
		if approve && errors.As(err, &de) && stillPending(de.Code) {
			// The action was refused (an order that still owes money, a
			// frozen account...): the proposal stays pending until someone
			// decides it, and approving it again will meet the same rule.
			s.flash(ss, fmt.Sprintf("操作未完成：%s。提案 %d 未执行，仍待复核；如它无法执行，请驳回该提案（驳回不会变动资金）。", de.Error(), id))
			http.Redirect(w, r, backTo(r), http.StatusSeeOther)
			return nil
		}
		if err != nil {
			return err
		}
		if already {
			s.flash(ss, fmt.Sprintf("提案 %d 此前已由 %s 处理，本次未作变动。", id, p.Decider))
		} else if approve {
			s.flash(ss, fmt.Sprintf("提案 %d 已批准并执行：%s", id, p.Result))
		} else {
			s.flash(ss, fmt.Sprintf("提案 %d 已驳回。", id))
		}
		http.Redirect(w, r, backTo(r), http.StatusSeeOther)
		return nil
	}
}

// stillPending reports whether an approval refused with code left a
// proposal that rejecting would settle: a business rule refused its action.
// Not for a busy database (try again), a bad note, or a proposal that does
// not exist.
func stillPending(code mapfront.Code) bool {
	switch code {
	case mapfront.CodeBusy, mapfront.CodeMalformed, mapfront.CodeNoOriginal, mapfront.CodeInternal:
		return false
	}
	return true
}

type customerData struct {
	Mobile     string
	C          *mapfront.CustomerView
	Statements map[string][]mapfront.StatementLine
	// ByID is set after a search by ID number; Matches are its customers
	// when there is more than one (one is shown as C).
	ByID    bool
	Matches []*mapfront.CustomerView
}

func (s *Server) customer(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	d := customerData{Mobile: strings.TrimSpace(r.URL.Query().Get("mobile"))}
	if d.Mobile != "" {
		c, err := s.o.Admin.GetCustomer(ctx, d.Mobile)
		if err != nil {
			return err
		}
		d.C = c
	}
	s.showCustomer(ctx, w, ss, d)
	return nil
}

// customerByID finds customers by a whole ID number through its blind
// index; the page echoes only the masked form.
func (s *Server) customerByID(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	cs, err := s.o.Admin.FindCustomersByID(ctx, r.PostFormValue("id_number"))
	if err != nil {
		return err
	}
	d := customerData{ByID: true}
	if len(cs) == 1 {
		d.C, d.Mobile = cs[0], cs[0].Mobile
	} else {
		d.Matches = cs
	}
	s.showCustomer(ctx, w, ss, d)
	return nil
}

func (s *Server) showCustomer(ctx context.Context, w http.ResponseWriter, ss *session, d customerData) {
	d.Statements = map[string][]mapfront.StatementLine{}
	if d.C != nil && allowed(ss.role, methodOf("ListStatement")) {
		for _, a := range d.C.Accounts {
			if _, lines, err := s.o.Admin.ListStatement(ctx, a.ID, 20); err == nil {
				d.Statements[a.ID] = lines
			}
		}
	}
	s.render(w, "customer", ss, "客户", d, "")
}

func (s *Server) unlock(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	mobile := r.PostFormValue("mobile")
	if err := s.o.Admin.UnlockPaymentPassword(ctx, mobile); err != nil {
		return err
	}
	s.flash(ss, "支付密码已解锁。")
	http.Redirect(w, r, "/customers?mobile="+mobile, http.StatusSeeOther)
	return nil
}

func (s *Server) freeze(frozen bool) handler {
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
		if err := s.o.Admin.SetAccountFrozen(ctx, r.PostFormValue("account"), frozen); err != nil {
			return err
		}
		s.flash(ss, map[bool]string{true: "账户已冻结。", false: "账户已解冻。"}[frozen])
		http.Redirect(w, r, backTo(r), http.StatusSeeOther)
		return nil
	}
}

type orderData struct {
	ID string
	O  *mapfront.OrderView
	// Key is the terminal key asked for; History its whole history, Asked
	// whether one was asked for.
	Key     mapfront.TerminalKey
	Asked   bool
	History []mapfront.KeyEvent
}

// order shows an order by orderId, or a terminal key's whole history
// (?terminal=&batch=&seq=): its pay, declines, cancels and reversal.
func (s *Server) order(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	q := r.URL.Query()
	d := orderData{ID: strings.TrimSpace(q.Get("id")), Key: mapfront.TerminalKey{TerminalID: strings.TrimSpace(q.Get("terminal")),
		BatchNo: strings.TrimSpace(q.Get("batch")), TerminalOrderID: strings.TrimSpace(q.Get("seq"))}}
	var err error
	if d.ID != "" {
		if d.O, err = s.o.Admin.GetOrder(ctx, d.ID); err != nil {
			return err
		}
	}
	if d.Key != (mapfront.TerminalKey{}) {
		if !allowed(ss.role, methodOf("GetTerminalKeyHistory")) {
			w.WriteHeader(http.StatusForbidden)
			s.render(w, "forbidden", ss, "无权操作", "GetTerminalKeyHistory", "")
			return nil
		}
		d.Asked = true
		if d.History, err = s.o.Admin.TerminalKeyHistory(ctx, d.Key); err != nil {
			return err
		}
	}
	s.render(w, "order", ss, "订单", d, "")
	return nil
}

func (s *Server) batches(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	bs, err := s.o.Batches.ListBatches(ctx, 60)
	if err != nil {
		return err
	}
	s.render(w, "batches", ss, "日切批次", bs, "")
	return nil
}

// batch shows one batch's report, or writes it as CSV (?format=csv).
func (s *Server) batch(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	d, err := mapfront.ParseDate(r.PathValue("date"))
	if err != nil {
		return mapfront.Invalid("date", "须为yyyyMMdd")
	}
	b, err := s.o.Batches.GetBatch(ctx, d)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("format") != "csv" {
		s.render(w, "batch", ss, "日切批次 "+mapfront.DateString(d), b, "")
		return nil
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="settlement-%s.csv"`, mapfront.DateString(d)))
	cw := csv.NewWriter(w)
	rows := [][]string{
		{"item", "count", "amount_fen"},
		{"records", strconv.FormatInt(b.Records, 10), strconv.FormatInt(b.TotalFen, 10)},
		{"matched", strconv.FormatInt(b.Matched, 10), ""},
		{"opened", strconv.FormatInt(b.Opened, 10), ""},
		{"merged", strconv.FormatInt(b.Merged, 10), ""},
		{"activated", strconv.FormatInt(b.Activated, 10), ""},
	}
	for _, e := range b.Exceptions {
		rows = append(rows, []string{"exception:" + string(e.Type), strconv.FormatInt(e.Count, 10), strconv.FormatInt(e.Amount, 10)})
	}
	if err := cw.WriteAll(rows); err != nil {
		s.o.Log.Warn("console CSV", "err", err)
	}
	return nil
}

func (s *Server) ledger(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	rep, err := s.o.Admin.VerifyLedger(ctx)
	if err != nil {
		return err
	}
	s.render(w, "ledger", ss, "账务核验", rep, "")
	return nil
}

func (s *Server) audit(ctx context.Context, w http.ResponseWriter, r *http.Request, ss *session) error {
	q := r.URL.Query()
	f := audit.Filter{Identity: strings.TrimSpace(q.Get("identity")), Target: strings.TrimSpace(q.Get("target")), Limit: 200}
	es, err := s.o.Admin.ListAudit(ctx, f)
	if err != nil {
		return err
	}
	s.render(w, "audit", ss, "审计记录", struct {
		F       audit.Filter
		Entries []audit.Entry
	}{f, es}, "")
	return nil
}
