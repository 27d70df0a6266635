package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// auditedTx runs fn in one transaction that also writes c's audit record
// (SPEC section 7): the change and its record commit together or not at all.
// When fn fails, nothing changed; the attempt is recorded afterwards with
// outcome refused and its errcode. Every AdminService and queue change goes
// through here: one call per store method.
func (s *Store) auditedTx(ctx context.Context, c audit.Change, fn func(tx pgx.Tx) error) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, c, nil)
	})
	err = callerText(err)
	// A top-up the window sends to a supervisor is not refused: it becomes
	// a proposal, whose own record the trail gets (SubmitTopUp); nor is a
	// proposal of a reference credited meanwhile: SubmitTopUp answers the
	// top-up made, with its record; nor a resolution proposed for an item
	// resolved meanwhile (SubmitResolution answers the item as it stands).
	if err != nil && ctx.Err() == nil && !errors.Is(err, mapfront.ErrTopUpNeedsApproval) && !errors.Is(err, mapfront.ErrTopUpCredited) &&
		!errors.Is(err, mapfront.ErrResolvedMeanwhile) {
		s.auditRefusal(ctx, c, err)
	}
	return err
}

// AuditRefusal records a change refused before it reached the store (the
// gRPC edge's RefuseNUL), as auditRefusal does.
func (s *Store) AuditRefusal(ctx context.Context, c audit.Change, cause error) {
	s.auditRefusal(ctx, c, cause)
}

// auditRefusal records a change that did not happen, in a transaction of
// its own; its failure is logged, not returned: the caller's answer is the
// refusal itself.
func (s *Store) auditRefusal(ctx context.Context, c audit.Change, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.inTx(ctx, func(tx pgx.Tx) error { return s.writeAudit(ctx, tx, c, cause) }); err != nil {
		s.log.Error("audit record of a refused change not written", "op", c.Op, "target", logTarget(c.Target), "err", err)
	}
}

const auditColumns = `audit_id, at, identity, role, method, target, args::text, outcome, errcode`

// writeAudit inserts the record of c, done (cause nil) or refused.
func (s *Store) writeAudit(ctx context.Context, tx pgx.Tx, c audit.Change, cause error) error {
	a, ok := audit.ActorFrom(ctx)
	if !ok {
		a = audit.Actor{Identity: audit.Local, Method: c.Op}
	}
	args := c.Args
	if args == nil {
		args = map[string]any{}
	}
	js, err := auditJSON(args)
	if err != nil {
		return err
	}
	outcome, code := audit.OK, 0
	if cause != nil {
		outcome, code = audit.Refused, int(mapfront.ErrorCode(cause))
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit_log (at, identity, role, method, target, args, outcome, errcode)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, s.clock.Now(), noNUL(a.Identity), noNUL(a.Role), noNUL(a.Method),
		noNUL(c.Target), js, outcome, code)
	return err
}

// noNUL replaces U+0000, which a text column refuses, with U+FFFD (as a
// settlement file's bad line is stored, truncateUTF8), so that the record
// of a request holding one is still written.
func noNUL(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }

// auditJSON is args as JSON that jsonb accepts: jsonb refuses the escape
// \u0000, so a string (or key) holding U+0000 is written with U+FFFD
// instead. Numbers keep their text.
func auditJSON(args map[string]any) ([]byte, error) {
	js, err := json.Marshal(args)
	if err != nil || !bytes.Contains(js, []byte(`\u0000`)) {
		return js, err
	}
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(replaceNUL(v))
}

func replaceNUL(v any) any {
	switch v := v.(type) {
	case string:
		return noNUL(v)
	case []any:
		for i := range v {
			v[i] = replaceNUL(v[i])
		}
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[noNUL(k)] = replaceNUL(x)
		}
		return out
	}
	return v
}

// ListAudit returns the audit records f selects, newest first.
// Errors: 10001 (a limit out of range).
func (s *Store) ListAudit(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	if f.Limit == 0 {
		f.Limit = 100
	}
	if f.Limit < 0 || f.Limit > 1000 {
		return nil, mapfront.Invalid("limit", "须为1到1000")
	}
	var since, until *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	if !f.Until.IsZero() {
		until = &f.Until
	}
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_log
WHERE ($1 = '' OR identity = $1) AND ($2 = '' OR target = $2)
  AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
  AND ($5 = 0 OR audit_id < $5)
ORDER BY audit_id DESC LIMIT $6`, f.Identity, f.Target, since, until, f.Before, f.Limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.Entry, error) {
		var e audit.Entry
		err := row.Scan(&e.ID, &e.At, &e.Identity, &e.Role, &e.Method, &e.Target, &e.Args, &e.Outcome, &e.Errcode)
		return e, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	return out, s.wrap(err)
}
