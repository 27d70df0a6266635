package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mapfront/server/internal/mapfront"
)

// Terminal-key kinds (SPEC section 5).
const (
	kindOpenCard  = "open_card"
	kindPay       = "pay"
	kindPayCancel = "pay_cancel"
)

// keyState is the stored outcome of a terminal key.
type keyState struct {
	fingerprint []byte
	state       string // done, tombstone, reversed
	errcode     mapfront.Code
	errmsg      string
	answer      []byte
}

// verdict is what a repeat of the key gets, short of the approved answer
// itself (SPEC section 5): 10011 for a key a reversal holds or that was
// reversed, 10003 for another request under the key, the stored decline
// again; nil means the key holds an approval to answer again.
func (k *keyState) verdict(fp []byte) error {
	switch {
	case k.state == "tombstone":
		return mapfront.Errorf(mapfront.CodeAlreadyUndone, "该交易已冲正")
	case !bytes.Equal(k.fingerprint, fp):
		return mapfront.Errorf(mapfront.CodeKeyReused, "终端流水号已用于另一笔交易")
	case k.state == "reversed":
		return mapfront.Errorf(mapfront.CodeAlreadyUndone, "该交易已冲正")
	case k.errcode != mapfront.OK:
		return &mapfront.Error{Code: k.errcode, Msg: k.errmsg}
	}
	return nil
}

// outcome returns the stored answer (decoded into answer) or the verdict.
func (k *keyState) outcome(fp []byte, answer any) error {
	if err := k.verdict(fp); err != nil {
		return err
	}
	if err := json.Unmarshal(k.answer, answer); err != nil {
		return fmt.Errorf("stored answer: %w", err)
	}
	return nil
}

// claimKey takes a terminal key for this transaction. If the key is new it
// returns nil and the row is this transaction's until commit; a concurrent
// request with the same key waits on the row and then sees the outcome. If
// the key was used it returns the stored state to replay.
func claimKey(ctx context.Context, tx pgx.Tx, kind string, k mapfront.TerminalKey, fp []byte) (*keyState, error) {
	const ins = `
INSERT INTO terminal_requests (kind, terminal_id, batch_no, terminal_order_id, fingerprint, state, errcode)
VALUES ($1, $2, $3, $4, $5, 'done', -1)
ON CONFLICT DO NOTHING`
	tag, err := tx.Exec(ctx, ins, kind, k.TerminalID, k.BatchNo, k.TerminalOrderID, fp)
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 1 {
		return nil, nil
	}
	st, err := loadKey(ctx, tx, kind, k, true)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// loadKey reads a terminal key's stored state; forUpdate locks the row.
func loadKey(ctx context.Context, tx pgx.Tx, kind string, k mapfront.TerminalKey, forUpdate bool) (*keyState, error) {
	q := `SELECT fingerprint, state, errcode, errmsg, coalesce(answer::text, '')
FROM terminal_requests WHERE kind = $1 AND terminal_id = $2 AND batch_no = $3 AND terminal_order_id = $4`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	var st keyState
	var answer string
	err := tx.QueryRow(ctx, q, kind, k.TerminalID, k.BatchNo, k.TerminalOrderID).
		Scan(&st.fingerprint, &st.state, &st.errcode, &st.errmsg, &answer)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoKey
	}
	if err != nil {
		return nil, err
	}
	st.answer = []byte(answer)
	return &st, nil
}

var errNoKey = errors.New("terminal key not found")

// finishKey stores the outcome of a claimed key: the answer on success, the
// errcode and errmsg of a business decline.
func finishKey(ctx context.Context, tx pgx.Tx, kind string, k mapfront.TerminalKey, answer any, outcome error) error {
	code := mapfront.ErrorCode(outcome)
	var body []byte
	msg := ""
	if outcome == nil {
		b, err := json.Marshal(answer)
		if err != nil {
			return err
		}
		body = b
	} else {
		var de *mapfront.Error
		errors.As(outcome, &de)
		msg = de.Msg
	}
	const q = `UPDATE terminal_requests SET errcode = $5, errmsg = $6, answer = $7
WHERE kind = $1 AND terminal_id = $2 AND batch_no = $3 AND terminal_order_id = $4`
	_, err := tx.Exec(ctx, q, kind, k.TerminalID, k.BatchNo, k.TerminalOrderID, int(code), msg, body)
	return err
}

// keyed runs a terminal transaction under its key, in one database
// transaction: claim the key (or replay its stored outcome), run do, and
// store do's outcome when it is complete (an answer or a business decline).
// A decline commits whatever do wrote that must stand (a password failure
// count) but do must not move money before declining. Malformed, internal and
// busy outcomes roll everything back, so the key stays free.
func keyed[A any](s *Store, ctx context.Context, kind string, k mapfront.TerminalKey, fp []byte,
	do func(tx pgx.Tx) (*A, error)) (*A, error) {
	var answer *A
	var decline error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		answer, decline = nil, nil
		rp, err := claimKey(ctx, tx, kind, k, fp)
		if err != nil {
			return err
		}
		if rp != nil {
			var a A
			if err := rp.outcome(fp, &a); err != nil {
				if mapfront.ErrorCode(err) == mapfront.CodeInternal {
					return err
				}
				decline = err
				return nil
			}
			answer = &a
			return nil
		}
		a, err := do(tx)
		if err != nil {
			werr := s.wrap(err)
			if !mapfront.ErrorCode(werr).Stored() {
				return werr
			}
			decline = werr
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				// The database refused a statement (an overdraft caught by
				// the CHECK): the transaction is aborted and cannot store
				// the decline, so nothing is stored and the key stays free.
				return errUnstored
			}
			return finishKey(ctx, tx, kind, k, nil, werr)
		}
		answer = a
		return finishKey(ctx, tx, kind, k, a, nil)
	})
	if decline != nil && (err == nil || errors.Is(err, errUnstored)) {
		return nil, decline
	}
	if err != nil {
		return nil, err
	}
	return answer, nil
}

// errUnstored rolls back a transaction whose decline cannot be stored.
var errUnstored = errors.New("decline not stored")
