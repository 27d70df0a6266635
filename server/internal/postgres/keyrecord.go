package postgres

import (
	"errors"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

// Terminal keys (SPEC section 5) are kept in terminal_requests, in the one
// model of mapfront.KeyState (states and transitions are written down
// there): this file is their only reader and writer.

// keyLockSQL takes a terminal key's transaction lock. Every request about a
// key (its own repeats; for a pay key its reversal, for an open_card key its
// repeal) takes it first, so they run one after the other and each sees
// what the one before committed. The primary key of terminal_requests and
// the unique keys of pay_orders and card_payments remain the hard guarantee.
// $1 kind, $2-$4 the key.
const keyLockSQL = `SELECT pg_advisory_xact_lock(hashtextextended($1 || '|' || $2 || '|' || $3 || '|' || $4, 0))`

// keyRecordSQL reads a key's record; $1 kind, $2-$4 the key.
const keyRecordSQL = `SELECT fingerprint, state, errcode, errmsg, answer::text, reversal::text
FROM terminal_requests WHERE kind = $1 AND terminal_id = $2 AND batch_no = $3 AND terminal_order_id = $4`

const keyRecordInsert = `INSERT INTO terminal_requests (kind, terminal_id, batch_no, terminal_order_id, fingerprint,
    state, errcode, errmsg, answer, reversal)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb)`

// keyRecordPutSQL writes a key's record, whether it had one or not.
const keyRecordPutSQL = keyRecordInsert + `
ON CONFLICT (kind, terminal_id, batch_no, terminal_order_id) DO UPDATE SET fingerprint = excluded.fingerprint,
    state = excluded.state, errcode = excluded.errcode, errmsg = excluded.errmsg, answer = excluded.answer,
    reversal = excluded.reversal`

// keyRecordFirstSQL writes a key's record unless it has one: the settlement
// side's mark on a key whose card the file opened.
const keyRecordFirstSQL = keyRecordInsert + `
ON CONFLICT DO NOTHING`

// keyReverseSQL moves an approved key to reversed (repeal_card of an
// open_card); $1 kind, $2-$4 the key.
const keyReverseSQL = `UPDATE terminal_requests SET state = 'reversed'
WHERE kind = $1 AND terminal_id = $2 AND batch_no = $3 AND terminal_order_id = $4 AND state = 'approved'`

func keyArgs(kind string, k mapfront.TerminalKey) []any {
	return []any{kind, k.TerminalID, k.BatchNo, k.TerminalOrderID}
}

// keyRecordArgs are the arguments of keyRecordPutSQL and keyRecordFirstSQL.
func keyRecordArgs(kind string, k mapfront.TerminalKey, r *mapfront.KeyRecord) []any {
	code, msg := 0, ""
	if r.Decline != nil {
		code, msg = int(r.Decline.Code), r.Decline.Msg
	}
	return append(keyArgs(kind, k), r.Fingerprint, string(r.State), code, msg, jsonOrNil(r.Answer), jsonOrNil(r.Reversal))
}

func jsonOrNil(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// queueKeyRecord queues the write of a key's record.
func queueKeyRecord(b *pgx.Batch, kind string, k mapfront.TerminalKey, r *mapfront.KeyRecord) {
	b.Queue(keyRecordPutSQL, keyRecordArgs(kind, k, r)...)
}

// queueKeyLoad queues the lock and the read of a key's record into *into
// (nil when the key has none).
func queueKeyLoad(b *pgx.Batch, kind string, k mapfront.TerminalKey, into **mapfront.KeyRecord) {
	b.Queue(keyLockSQL, keyArgs(kind, k)...)
	b.Queue(keyRecordSQL, keyArgs(kind, k)...).QueryRow(func(row pgx.Row) error {
		r, err := scanKeyRecord(row)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		*into = r
		return err
	})
}

func scanKeyRecord(row pgx.Row) (*mapfront.KeyRecord, error) {
	var (
		r                mapfront.KeyRecord
		state, msg       string
		code             int
		answer, reversal *string
	)
	if err := row.Scan(&r.Fingerprint, &state, &code, &msg, &answer, &reversal); err != nil {
		return nil, err
	}
	r.State = mapfront.KeyState(state)
	if r.State == mapfront.KeyDeclined {
		r.Decline = &mapfront.Error{Code: mapfront.Code(code), Msg: msg}
	}
	if answer != nil {
		r.Answer = []byte(*answer)
	}
	if reversal != nil {
		r.Reversal = []byte(*reversal)
	}
	return &r, nil
}
