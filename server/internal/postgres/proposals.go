package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// Four-eyes proposals (SPEC section 7, migration 0008). The approval runs
// the proposed action in the transaction that marks the proposal approved:
// the row lock on the proposal and the conditional update pending →
// approved make a second approval, concurrent or later, a no-op.

const proposalColumns = `proposal_id, kind, target, args::text, proposer, proposer_role, state, decider, decider_role,
decision_note, result, created_at, expires_at, decided_at`

func scanProposal(row pgx.Row) (*mapfront.Proposal, error) {
	var p mapfront.Proposal
	var args string
	err := row.Scan(&p.ID, &p.Kind, &p.Target, &args, &p.Proposer, &p.ProposerRole, &p.State, &p.Decider,
		&p.DeciderRole, &p.DecisionNote, &p.Result, &p.CreatedAt, &p.ExpiresAt, &p.DecidedAt)
	if err != nil {
		return nil, err
	}
	switch p.Kind {
	case mapfront.ProposeResolve:
		p.Resolution = &mapfront.Resolution{}
		err = json.Unmarshal([]byte(args), p.Resolution)
	case mapfront.ProposeTopUp:
		p.TopUp = &mapfront.TopUp{}
		err = json.Unmarshal([]byte(args), p.TopUp)
	default:
		err = fmt.Errorf("proposal %d: unknown kind %q", p.ID, p.Kind)
	}
	return &p, err
}

// proposalArgs is what a proposal's args column holds: the action, as it will
// be executed.
func proposalArgs(p *mapfront.Proposal) (any, error) {
	switch {
	case p.Kind == mapfront.ProposeResolve && p.Resolution != nil:
		return p.Resolution, nil
	case p.Kind == mapfront.ProposeTopUp && p.TopUp != nil:
		return p.TopUp, nil
	}
	return nil, mapfront.Invalid("kind", "须为resolve_exception或topup_cash")
}

// proposalInsertSQL files a proposal, unless a pending proposal of its kind
// already holds what it acts on: a top-up's reference (migration 0018's
// unique index) or a queue item (0019's); then no row comes back.
var proposalInsertSQL = map[mapfront.ProposalKind]string{
	mapfront.ProposeTopUp: proposalInsert + `
ON CONFLICT ((args->>'reference')) WHERE kind = 'topup_cash' AND state = 'pending' DO NOTHING
RETURNING ` + proposalColumns,
	mapfront.ProposeResolve: proposalInsert + `
ON CONFLICT (target) WHERE kind = 'resolve_exception' AND state = 'pending' DO NOTHING
RETURNING ` + proposalColumns,
}

const proposalInsert = `INSERT INTO proposals (kind, target, args, proposer, proposer_role, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)`

// pendingProposalSQL reads the pending proposal an insert met ($1 kind, $2
// the reference of a top-up, $3 the target of a resolution).
const pendingProposalSQL = `SELECT ` + proposalColumns + ` FROM proposals
WHERE kind = $1 AND state = 'pending'
  AND (kind = 'topup_cash' AND args->>'reference' = $2 OR kind = 'resolve_exception' AND target = $3)`

// expireProposalSQL rejects a pending proposal past its expiry ($1) that a
// new one replaces ($2 its note): it can no longer be approved, and it
// would hold what it acts on for ever. The decider is the system (0008's
// CHECK: never the proposer, even one named so).
const expireProposalSQL = `UPDATE proposals SET state = 'rejected',
    decider = CASE WHEN proposer = 'system' THEN 'system.expiry' ELSE 'system' END, decider_role = 'system',
    decision_note = $2, decided_at = $3
WHERE proposal_id = $1 AND state = 'pending'`

// proposalOps are the audit trail's methods of filing a proposal, by kind.
// The record of a filing names it so, not the RPC that filed it
// (ResolveException, TopUpCash): "ResolveException ok" on an item read as
// resolved while nothing had moved yet.
var proposalOps = map[mapfront.ProposalKind]string{
	mapfront.ProposeResolve: "ProposeResolution",
	mapfront.ProposeTopUp:   "ProposeTopUp",
}

// proposalActor is ctx with its actor's method (a full method name such as
// /mapfront.v1.AdminService/ResolveException) renamed to op in the same
// service (/mapfront.v1.AdminService/ProposeResolution), for the audit
// record of a filing; ctx without an actor is returned as it is (the record
// takes op itself).
func proposalActor(ctx context.Context, op string) context.Context {
	a, ok := audit.ActorFrom(ctx)
	if !ok {
		return ctx
	}
	a.Method = a.Method[:strings.LastIndex(a.Method, "/")+1] + op
	return audit.WithActor(ctx, a)
}

// CreateProposal stores a pending proposal of the caller, expiring ttl from
// now, with its audit record (method ProposeResolution or ProposeTopUp, in
// the service of the RPC that filed it: proposalOps; on the proposal's
// target).
// What a pending proposal already acts on is not proposed twice (the unique
// indexes of migrations 0018 and 0019 make two callers racing each other
// find the same one):
//   - a top-up whose reference a pending top-up proposal holds is that
//     proposal's resend and is answered with it; for another mobile or
//     amount it is 10003;
//   - a resolution of a queue item a pending resolution waits on is
//     answered with it when it asks the same (action and order); another
//     is 10003, until a supervisor decides the first.
//
// A pending proposal past its expiry, which no one can approve any more, is
// rejected by the system instead and the new one filed (its audit record
// names the one it replaced). A top-up of a reference already credited is
// not filed (mapfront.ErrTopUpCredited): under the reference's lock
// (topUpLockSQL), no proposal can follow the top-up that credited it.
// A resolution of an item resolved meanwhile is not filed
// (mapfront.ErrResolvedMeanwhile). Errors: 10001, 10003, 10010,
// mapfront.ErrTopUpCredited, mapfront.ErrResolvedMeanwhile.
func (s *Store) CreateProposal(ctx context.Context, p mapfront.Proposal, ttl time.Duration) (*mapfront.Proposal, error) {
	args, err := proposalArgs(&p)
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	actor, ok := audit.ActorFrom(ctx)
	if !ok {
		actor = audit.Actor{Identity: audit.Local}
	}
	op, ok := proposalOps[p.Kind]
	if !ok {
		return nil, fmt.Errorf("proposal: unknown kind %q", p.Kind)
	}
	ctx = proposalActor(ctx, op)
	change := audit.Change{Op: op, Target: p.Target, Args: map[string]any{"kind": p.Kind, "action": args}}
	var out *mapfront.Proposal
	var resent bool
	err = s.auditedTx(ctx, change, func(tx pgx.Tx) error {
		out, resent = nil, false
		// A retried attempt's record says only what this attempt did.
		delete(change.Args, "proposal_id")
		delete(change.Args, "resent")
		delete(change.Args, "replaced_expired")
		if p.Resolution != nil {
			// The item's lock, as a direct resolution takes it: either that
			// resolution sees this proposal and waits for its decision
			// (10003), or this one finds the item resolved and files
			// nothing.
			var state string
			err := tx.QueryRow(ctx, `SELECT state FROM settlement_exceptions WHERE exception_id = $1 FOR UPDATE`,
				p.Resolution.ID).Scan(&state)
			if errors.Is(err, pgx.ErrNoRows) {
				return mapfront.Errorf(mapfront.CodeNoOriginal, "异常记录%d不存在", p.Resolution.ID)
			}
			if err != nil {
				return err
			}
			if state != mapfront.ExceptionOpen {
				return mapfront.ErrResolvedMeanwhile
			}
		}
		if p.TopUp != nil {
			if _, err := tx.Exec(ctx, topUpLockSQL, int32(topUpLockClass), p.TopUp.Reference); err != nil {
				return err
			}
			var credited bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM topups WHERE reference = $1)`,
				p.TopUp.Reference).Scan(&credited); err != nil {
				return err
			}
			if credited {
				return mapfront.ErrTopUpCredited
			}
		}
		now := s.clock.Now()
		// Each statement sees what committed before it: the proposal the
		// INSERT met is read by the next one, unless it was decided in
		// between, and then the reference is free to be filed again.
		var reference string
		if p.TopUp != nil {
			reference = p.TopUp.Reference
		}
		for range 3 {
			var err error
			out, err = scanProposal(tx.QueryRow(ctx, proposalInsertSQL[p.Kind],
				string(p.Kind), p.Target, js, actor.Identity, actor.Role, now, now.Add(ttl)))
			if !errors.Is(err, pgx.ErrNoRows) {
				if err == nil {
					change.Args["proposal_id"] = out.ID
				}
				return err
			}
			out, err = scanProposal(tx.QueryRow(ctx, pendingProposalSQL, string(p.Kind), reference, p.Target))
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if out.Expired(now) {
				replaced, held, err := expireProposal(ctx, tx, out.ID, now)
				if err != nil {
					return err
				}
				if replaced {
					change.Args["replaced_expired"] = out.ID
				}
				if !held {
					continue
				}
				// A supervisor is deciding it right now: it is still the
				// pending proposal, answered as a resend.
			}
			if err := sameProposal(out, &p); err != nil {
				return err
			}
			resent = true
			change.Args["proposal_id"], change.Args["resent"] = out.ID, true
			return nil
		}
		return mapfront.ErrBusy
	})
	if err != nil {
		return nil, err
	}
	if resent {
		s.log.Info("proposal sent again", "id", out.ID, "kind", out.Kind, "target", logTarget(out.Target), "proposer", out.Proposer)
	} else {
		s.log.Info("proposal filed", "id", out.ID, "kind", out.Kind, "target", logTarget(out.Target), "proposer", out.Proposer)
	}
	return out, nil
}

// expireProposal rejects the expired pending proposal id for the one about
// to replace it (replaced), unless a decision holds its row (held: it is
// still pending, and the caller answers it). It does not wait for that
// row: an approval holds it and then, for a top-up, waits for the
// reference's lock, which the caller holds, so waiting would deadlock. A
// proposal decided since it was read is neither.
func expireProposal(ctx context.Context, tx pgx.Tx, id int64, now time.Time) (replaced, held bool, _ error) {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM proposals WHERE proposal_id = $1 AND state = 'pending' FOR UPDATE SKIP LOCKED`, id).Scan(&one)
	if err == nil {
		tag, err := tx.Exec(ctx, expireProposalSQL, id, "已过期，由新提案取代", now)
		return err == nil && tag.RowsAffected() == 1, false, err
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, false, err
	}
	var state string
	if err := tx.QueryRow(ctx, `SELECT state FROM proposals WHERE proposal_id = $1`, id).Scan(&state); err != nil {
		return false, false, err
	}
	return false, state == string(mapfront.ProposalPending), nil
}

// sameProposal reports whether p asks what the pending proposal held asks:
// nil, or 10003 naming what differs.
func sameProposal(held, p *mapfront.Proposal) error {
	switch {
	case p.TopUp != nil && held.TopUp != nil:
		if held.TopUp.Mobile != p.TopUp.Mobile || held.TopUp.Amount != p.TopUp.Amount {
			return mapfront.Errorf(mapfront.CodeKeyReused, "充值流水号已用于另一笔充值")
		}
	case p.Resolution != nil && held.Resolution != nil:
		if held.Resolution.Action != p.Resolution.Action || held.Resolution.OrderID != p.Resolution.OrderID {
			return mapfront.Errorf(mapfront.CodeKeyReused, "异常%d已有待复核的处理提案%d（%s），须主管先批准或驳回",
				held.Resolution.ID, held.ID, held.Resolution.Action)
		}
	default:
		return fmt.Errorf("proposal %d: a %s met a pending %s", held.ID, p.Kind, held.Kind)
	}
	return nil
}

// ListProposals returns proposals, newest first. Errors: 10001.
func (s *Store) ListProposals(ctx context.Context, f mapfront.ProposalFilter) ([]mapfront.Proposal, error) {
	switch f.State {
	case "", mapfront.ProposalPending, mapfront.ProposalApproved, mapfront.ProposalRejected:
	default:
		return nil, mapfront.Invalid("state", "须为pending、approved或rejected")
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	if f.Limit < 0 || f.Limit > 1000 {
		return nil, mapfront.Invalid("limit", "须为1到1000")
	}
	rows, err := s.pool.Query(ctx, `SELECT `+proposalColumns+` FROM proposals
WHERE ($1 = '' OR state = $1) AND ($2 = '' OR target = $2) ORDER BY proposal_id DESC LIMIT $3`, f.State, f.Target, f.Limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapfront.Proposal, error) {
		p, err := scanProposal(row)
		if err != nil {
			return mapfront.Proposal{}, err
		}
		return *p, nil
	})
	return out, s.wrap(err)
}

// GetProposal returns one proposal. Errors: 10010.
func (s *Store) GetProposal(ctx context.Context, id int64) (*mapfront.Proposal, error) {
	p, err := scanProposal(s.pool.QueryRow(ctx, `SELECT `+proposalColumns+` FROM proposals WHERE proposal_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mapfront.Errorf(mapfront.CodeNoOriginal, "提案%d不存在", id)
	}
	return p, s.wrap(err)
}

// DecideProposal approves or rejects a pending proposal as the caller. An
// approval executes the action (resolveTx, topUpTx) in this transaction; if
// the action fails, nothing changes and the proposal stays pending. The audit
// record (op Approve/Reject, on the proposal's target) names the decider as
// its identity and the proposer in its args. The proposer is refused first
// (mapfront.ErrSelfApproval, 10002), whatever the proposal's state. A
// proposal decided before is returned with already = true and recorded ok
// with its state and result "already <state> by <decider>; nothing
// decided". Errors: mapfront.ErrSelfApproval; 10006
// expired; 10010 no such proposal; the action's errcodes.
func (s *Store) DecideProposal(ctx context.Context, id int64, approve bool, note string) (*mapfront.Proposal, bool, error) {
	op, state := "Reject", mapfront.ProposalRejected
	if approve {
		op, state = "Approve", mapfront.ProposalApproved
	}
	actor, ok := audit.ActorFrom(ctx)
	if !ok {
		actor = audit.Actor{Identity: audit.Local}
	}
	// The record is on the proposal's target (which never changes), so that
	// the target's trail shows the proposer and the decider together;
	// auditedTx writes it after fn, from this same Args map.
	target := fmt.Sprintf("proposal:%d", id)
	if err := s.pool.QueryRow(ctx, `SELECT target FROM proposals WHERE proposal_id = $1`, id).Scan(&target); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, s.wrap(err)
	}
	change := audit.Change{Op: op, Target: target, Args: map[string]any{"proposal_id": id, "note": note}}
	var out *mapfront.Proposal
	var already bool
	err := s.auditedTx(ctx, change, func(tx pgx.Tx) error {
		out, already = nil, false
		p, err := scanProposal(tx.QueryRow(ctx, `SELECT `+proposalColumns+` FROM proposals WHERE proposal_id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return mapfront.Errorf(mapfront.CodeNoOriginal, "提案%d不存在", id)
		}
		if err != nil {
			return err
		}
		change.Args["proposer"], change.Args["kind"] = p.Proposer, p.Kind
		// The proposer is refused whatever the state: its trail must never
		// show it deciding its own proposal, not even as a repeat.
		if actor.Identity == p.Proposer {
			return mapfront.ErrSelfApproval
		}
		if p.State != mapfront.ProposalPending {
			// Answered as a repeat (already), as ResolveException answers
			// an item resolved before; the record says that this call
			// decided nothing and what the proposal already was, so that
			// an "approval" of a rejected proposal is not read as one.
			out, already = p, true
			change.Args["state"] = p.State
			change.Args["result"] = fmt.Sprintf("already %s by %s; nothing decided", p.State, p.Decider)
			return nil
		}
		now := s.clock.Now()
		if approve && p.Expired(now) {
			return mapfront.Errorf(mapfront.CodeAccountState, "提案%d已于%s过期，须重新提出", id, p.ExpiresAt.In(s.clock.Zone).Format("2006-01-02 15:04"))
		}
		result := ""
		if approve {
			if result, err = s.execute(ctx, tx, p); err != nil {
				return err
			}
		}
		out, err = scanProposal(tx.QueryRow(ctx, `UPDATE proposals SET state = $2, decider = $3, decider_role = $4,
    decision_note = $5, result = $6, decided_at = $7
WHERE proposal_id = $1 AND state = 'pending' RETURNING `+proposalColumns,
			id, state, actor.Identity, actor.Role, note, result, now))
		change.Args["result"] = result
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if !already {
		s.log.Info("proposal decided", "id", out.ID, "state", out.State, "proposer", out.Proposer, "decider", out.Decider, "result", out.Result)
	}
	return out, already, nil
}

// execute runs an approved proposal's action in tx and says what it did.
func (s *Store) execute(ctx context.Context, tx pgx.Tx, p *mapfront.Proposal) (string, error) {
	switch {
	case p.Kind == mapfront.ProposeResolve && p.Resolution != nil:
		r := *p.Resolution
		if err := r.Validate(); err != nil {
			return "", err
		}
		e, already, err := s.resolveTx(ctx, tx, r, false)
		if err != nil {
			return "", err
		}
		if already {
			return fmt.Sprintf("异常%d此前已处理，未变动", e.ID), nil
		}
		return fmt.Sprintf("异常%d已处理：%s %s", e.ID, e.Action, e.LinkedOrderID), nil
	case p.Kind == mapfront.ProposeTopUp && p.TopUp != nil:
		t := p.TopUp
		account, balance, err := s.topUpTx(ctx, tx, t.Mobile, t.Amount, t.Reference, p.ID, 0)
		if err != nil {
			return "", err
		}
		// A reference credited before by something else (a direct top-up
		// or another proposal, which only code before migration 0018 could
		// leave beside a pending proposal): topUpTx answered it as a repeat
		// and nothing moved; the result says so. The reference's lock,
		// which topUpTx took, is still held.
		var by *int64
		if err := tx.QueryRow(ctx, `SELECT proposal_id FROM topups WHERE reference = $1`, t.Reference).Scan(&by); err != nil {
			return "", err
		}
		if by == nil || *by != p.ID {
			return fmt.Sprintf("充值流水号%s此前已入账，未变动；现金账户%s余额%s元", t.Reference, account, mapfront.FormatYuan(balance)), nil
		}
		return fmt.Sprintf("现金账户%s充值%s元，余额%s元", account, mapfront.FormatYuan(t.Amount), mapfront.FormatYuan(balance)), nil
	}
	return "", fmt.Errorf("proposal %d: nothing to execute", p.ID)
}
