package mapfront

import (
	"context"
	"errors"
	"strconv"
	"time"

	"mapfront/server/internal/audit"
)

// Four-eyes approval (maker-checker, SPEC section 7): money moved by hand is
// first a Proposal. One identity proposes; a different identity with the
// supervisor role approves or rejects it; the approval executes the action in
// the transaction that marks the proposal approved, so nothing moves before
// and the action runs at most once. The same rule holds for gRPC, the
// settlement CLI and the console, which all go through AdminService.

// ProposalKind is the action a proposal asks for.
type ProposalKind string

// The proposal kinds.
const (
	// ProposeResolve: a queue resolution that credits or refunds (activate,
	// refund_owed); Resolution holds it.
	ProposeResolve ProposalKind = "resolve_exception"
	// ProposeTopUp: a cash top-up that needs approval (SubmitTopUp); TopUp
	// holds it.
	ProposeTopUp ProposalKind = "topup_cash"
)

// Proposal states. An expired proposal stays pending in the store; Expired
// says it can no longer be approved.
const (
	ProposalPending  = "pending"
	ProposalApproved = "approved"
	ProposalRejected = "rejected"
)

// TopUp is a proposed cash top-up: amount in fen, reference as TopUpCash's.
type TopUp struct {
	Mobile    string `json:"mobile"`
	Amount    int64  `json:"amount"`
	Reference string `json:"reference"`
}

// Proposal is an action waiting for (or past) a supervisor's decision.
type Proposal struct {
	ID           int64
	Kind         ProposalKind
	Target       string      // "exception:42", "customer:13912345678"
	Resolution   *Resolution // Kind ProposeResolve
	TopUp        *TopUp      // Kind ProposeTopUp
	Proposer     string      // the proposing identity
	ProposerRole string
	State        string // pending, approved, rejected
	Decider      string // the approving or rejecting identity
	DeciderRole  string
	DecisionNote string
	Result       string // what the approval did, e.g. "exception 42 resolved"
	CreatedAt    time.Time
	ExpiresAt    time.Time
	DecidedAt    *time.Time
}

// Expired reports whether a pending proposal can no longer be approved at now.
func (p *Proposal) Expired(now time.Time) bool {
	return p.State == ProposalPending && !now.Before(p.ExpiresAt)
}

// ProposalFilter selects proposals, newest first; zero fields select all.
type ProposalFilter struct {
	State  string // pending, approved, rejected or empty
	Target string
	Limit  int // default 100, at most 1000
}

// ErrSelfApproval refuses a decision by the proposal's own proposer, pending
// or decided: four eyes means two identities. Its errcode is 10002, the
// code of "not allowed for this caller" (gRPC PermissionDenied), so the
// audit trail records the refusal as such, never as 10000.
var ErrSelfApproval = &Error{Code: CodeTerminal, Msg: "四眼原则：提案人不能复核自己的提案"}

// ProposalStore is the storage of proposals (migration 0008).
type ProposalStore interface {
	// CreateProposal stores a pending proposal of the caller's identity
	// (audit.ActorFrom), expiring ttl from now, and its audit record, in one
	// transaction. A top-up whose reference a pending top-up proposal
	// already holds is not filed again: that proposal is returned, also to
	// concurrent callers (the database keeps one pending top-up proposal
	// per reference). A top-up whose reference is credited already is not
	// filed: ErrTopUpCredited. Errors: 10001; 10003 that pending proposal
	// is for another mobile or amount; ErrTopUpCredited.
	CreateProposal(ctx context.Context, p Proposal, ttl time.Duration) (*Proposal, error)
	// ListProposals: 10001 a bad state or limit.
	ListProposals(ctx context.Context, f ProposalFilter) ([]Proposal, error)
	// GetProposal: 10010.
	GetProposal(ctx context.Context, id int64) (*Proposal, error)
	// DecideProposal approves (executing the action in the same transaction)
	// or rejects a pending proposal, as the caller's identity; already says
	// it had been decided before and nothing changed (its audit record, ok,
	// says so in its result). Errors: ErrSelfApproval (also for a decided
	// proposal);
	// 10006 expired; 10010 no such proposal; the action's own errcodes on
	// approval (then nothing changes and the proposal stays pending).
	DecideProposal(ctx context.Context, id int64, approve bool, note string) (*Proposal, bool, error)
}

// ApprovalPolicy says which money movements need approval and for how long
// a proposal waits.
type ApprovalPolicy struct {
	// TopUpAbove: a cash top-up of more fen than this, alone or with the
	// account's direct top-ups of the last TopUpWindow, needs approval
	// (MAPFRONT_TOPUP_APPROVAL_ABOVE; default DefaultTopUpApprovalAbove).
	TopUpAbove int64
	// TTL: a proposal not decided within it expires (MAPFRONT_PROPOSAL_TTL;
	// default DefaultProposalTTL).
	TTL time.Duration
}

// Defaults of ApprovalPolicy: top-ups above 50,000.00 yuan; 24 hours.
const (
	DefaultTopUpApprovalAbove int64 = 5_000_000
	DefaultProposalTTL              = 24 * time.Hour
)

// DefaultApprovalPolicy returns the defaults.
func DefaultApprovalPolicy() ApprovalPolicy {
	return ApprovalPolicy{TopUpAbove: DefaultTopUpApprovalAbove, TTL: DefaultProposalTTL}
}

// NeedsApproval reports whether a queue resolution moves money (credits a
// card or records a refund owed) and so needs a supervisor's approval.
func NeedsApproval(a ResolveAction) bool {
	return a == ActionActivate || a == ActionRefundOwed
}

// SubmitResolution resolves a queue item, or, for an action that moves money
// (NeedsApproval), files a proposal and returns it with the item unchanged.
// An item already resolved is returned with already = true and nothing is
// proposed. Errors: as ResolveException; 10010 no such item.
func (s *AdminService) SubmitResolution(ctx context.Context, r Resolution) (*Exception, bool, *Proposal, error) {
	if err := r.Validate(); err != nil {
		return nil, false, nil, err
	}
	if !NeedsApproval(r.Action) {
		e, already, err := s.AdminStore.ResolveException(ctx, r)
		return e, already, nil, err
	}
	e, err := s.GetException(ctx, r.ID)
	if err != nil {
		return nil, false, nil, err
	}
	if e.State != ExceptionOpen {
		// A resolved item is answered as it stands, moving nothing. Not
		// through ResolveException: an item a forced re-run reopened in
		// between (a bad line filed again) would be resolved there with an
		// action that moves money, without a supervisor (found by a
		// review).
		return e, true, nil, nil
	}
	if r.Action == ActionRefundOwed {
		// A refund the approval would refuse (the card credited, the
		// payment repealed or confirmed) is refused now: its proposal
		// would only hold the item's one pending proposal until it expired.
		if err := s.AdminStore.CheckRefund(ctx, r.ID); err != nil {
			return nil, false, nil, err
		}
	}
	rr := r
	p, err := s.CreateProposal(ctx, Proposal{Kind: ProposeResolve, Target: exceptionTarget(r.ID), Resolution: &rr}, s.approval().TTL)
	if errors.Is(err, ErrResolvedMeanwhile) {
		// Resolved since it was read: answered as it stands, as above.
		e, err := s.GetException(ctx, r.ID)
		return e, err == nil, nil, err
	}
	return e, false, p, err
}

// ErrResolvedMeanwhile: CreateProposal of a resolution whose queue item was
// resolved after SubmitResolution read it open; SubmitResolution answers it
// as a repeat on a resolved item. Never an answer to a client.
var ErrResolvedMeanwhile = errors.New("the queue item was resolved meanwhile")

// TopUpWindow is how far back a cash account's direct top-ups count
// against ApprovalPolicy.TopUpAbove (SubmitTopUp).
const TopUpWindow = 24 * time.Hour

// ErrTopUpNeedsApproval: a direct top-up that would take the account's
// direct top-ups of the last TopUpWindow past the approval amount
// (AdminStore.TopUpCashWithin); SubmitTopUp files a proposal instead.
var ErrTopUpNeedsApproval = &Error{Code: CodeAmount, Msg: "24小时内免审批充值超过限额，须主管审批"}

// ErrTopUpCredited: CreateProposal of a top-up whose reference was credited
// (directly or by an approval) after SubmitTopUp asked the store, so that
// nothing is proposed for money already moved; SubmitTopUp answers the
// reference as a repeat instead. Never an answer to a client.
var ErrTopUpCredited = errors.New("the top-up's reference was credited meanwhile")

// SubmitTopUp credits a cash account as TopUpCash does, or files a proposal
// (account and balance then empty) when the top-up needs a supervisor: it
// is above the policy's amount, or it and the account's top-ups made
// without approval in the last TopUpWindow come to more than that amount
// (so that a large sum split into top-ups under the amount still needs a
// second person; SPEC section 7). A repeated reference answers as the
// first did: a top-up made (directly or by an approval) with its account
// and balance, a proposal still pending with that proposal
// (CreateProposal), never credited directly, and nothing filed twice.
// Errors: as TopUpCash.
func (s *AdminService) SubmitTopUp(ctx context.Context, mobile string, amount int64, reference string) (string, int64, *Proposal, error) {
	if amount <= 0 || amount > MaxAmount {
		return "", 0, nil, Errorf(CodeAmount, "充值金额须大于0")
	}
	if reference == "" || len(reference) > 64 {
		return "", 0, nil, Invalid("reference", "不能为空且最多64个字符")
	}
	if !ValidMobile(mobile) {
		return "", 0, nil, Invalid("mobileNum", "须为1开头的11位数字")
	}
	// Above the amount too: a reference already credited (by an approval)
	// is answered by the store, not proposed again. The store also says
	// ErrTopUpNeedsApproval for a reference its pending proposal holds, and
	// CreateProposal then answers that proposal. Should the reference be
	// credited between the two transactions (the proposal approved, or a
	// direct top-up of it), CreateProposal files nothing and the second
	// round answers the top-up made: a credited reference is never
	// proposed again, so the second round cannot need a third.
	for range 2 {
		account, balance, err := s.AdminStore.TopUpCashWithin(ctx, mobile, amount, reference, s.approval().TopUpAbove)
		if !errors.Is(err, ErrTopUpNeedsApproval) {
			return account, balance, nil, err
		}
		p, err := s.CreateProposal(ctx, Proposal{Kind: ProposeTopUp, Target: "customer:" + mobile,
			TopUp: &TopUp{Mobile: mobile, Amount: amount, Reference: reference}}, s.approval().TTL)
		if !errors.Is(err, ErrTopUpCredited) {
			return "", 0, p, err
		}
	}
	return "", 0, nil, ErrBusy
}

// ApproveProposal executes a pending proposal as the caller (who must not be
// its proposer); approving twice is once (already). Errors: DecideProposal's.
func (s *AdminService) ApproveProposal(ctx context.Context, id int64, note string) (*Proposal, bool, error) {
	if err := checkFields(field{"note", note, MaxRemarkLen, false}); err != nil {
		return nil, false, err
	}
	return s.DecideProposal(ctx, id, true, note)
}

// RejectProposal closes a pending proposal without executing it.
// Errors: DecideProposal's.
func (s *AdminService) RejectProposal(ctx context.Context, id int64, note string) (*Proposal, bool, error) {
	if err := checkFields(field{"note", note, MaxRemarkLen, false}); err != nil {
		return nil, false, err
	}
	return s.DecideProposal(ctx, id, false, note)
}

// SetApprovalPolicy sets the four-eyes policy; zero fields keep the defaults.
func (s *AdminService) SetApprovalPolicy(p ApprovalPolicy) { s.approvalPolicy = p }

func (s *AdminService) approval() ApprovalPolicy {
	p := s.approvalPolicy
	d := DefaultApprovalPolicy()
	if p.TopUpAbove <= 0 {
		p.TopUpAbove = d.TopUpAbove
	}
	if p.TTL <= 0 {
		p.TTL = d.TTL
	}
	return p
}

func exceptionTarget(id int64) string {
	return "exception:" + strconv.FormatInt(id, 10)
}

// Identity returns the identity ctx acts as (audit.Local outside an RPC).
func Identity(ctx context.Context) string {
	if a, ok := audit.ActorFrom(ctx); ok {
		return a.Identity
	}
	return audit.Local
}
