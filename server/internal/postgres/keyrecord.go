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

// keyRecordPutManySQL is keyRecordPutSQL for many keys of one kind in one
// statement (group commit); each key at most once. $1 kind, $2-$4 the keys,
// $5 fingerprints, $6 states, $7 errcodes, $8 errmsgs, $9 answers, $10
// reversals (JSON text or NULL).
const keyRecordPutManySQL = `INSERT INTO terminal_requests (kind, terminal_id, batch_no, terminal_order_id, fingerprint,
    state, errcode, errmsg, answer, reversal)
SELECT $1, t, b, o, f, s, c, m, a::jsonb, r::jsonb
FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::int[], $8::text[], $9::text[], $10::text[])
    AS u(t, b, o, f, s, c, m, a, r)
ON CONFLICT (kind, terminal_id, batch_no, terminal_order_id) DO UPDATE SET fingerprint = excluded.fingerprint,
    state = excluded.state, errcode = excluded.errcode, errmsg = excluded.errmsg, answer = excluded.answer,
    reversal = excluded.reversal`

// queueKeyRecords queues the write of the records of keys (of one kind) in
// one statement; a key named twice keeps its last record, as two writes in
// order would.
func queueKeyRecords(b *pgx.Batch, kind string, keys []mapfront.TerminalKey, recs []*mapfront.KeyRecord) {
	last := make(map[mapfront.TerminalKey]int, len(keys))
	for i, k := range keys {
		last[k] = i
	}
	n := len(last)
	ts, bs, os := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	fps, states := make([][]byte, 0, n), make([]string, 0, n)
	codes, msgs := make([]int32, 0, n), make([]string, 0, n)
	answers, reversals := make([]*string, 0, n), make([]*string, 0, n)
	for i, k := range keys {
		if last[k] != i {
			continue
		}
		r := recs[i]
		code, msg := int32(0), ""
		if r.Decline != nil {
			code, msg = int32(r.Decline.Code), r.Decline.Msg
		}
		ts, bs, os = append(ts, k.TerminalID), append(bs, k.BatchNo), append(os, k.TerminalOrderID)
		fps, states = append(fps, r.Fingerprint), append(states, string(r.State))
		codes, msgs = append(codes, code), append(msgs, msg)
		answers, reversals = append(answers, textOrNil(r.Answer)), append(reversals, textOrNil(r.Reversal))
	}
	b.Queue(keyRecordPutManySQL, kind, ts, bs, os, fps, states, codes, msgs, answers, reversals)
}

func textOrNil(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// keyLockManySQL takes the transaction locks of many keys of one kind
// (keyLockSQL's lock for each), in ascending lock order so that two batches
// never wait for each other in a cycle: the locks are taken after the sort
// (PostgreSQL evaluates a volatile output column after ORDER BY). $1 kind,
// $2-$4 the keys.
const keyLockManySQL = `SELECT pg_advisory_xact_lock(h) FROM (
    SELECT DISTINCT hashtextextended($1 || '|' || t || '|' || b || '|' || o, 0) AS h
    FROM unnest($2::text[], $3::text[], $4::text[]) AS u(t, b, o)) s
ORDER BY h`

// keyRecordManySQL reads the records of many keys of one kind, each row
// with the (1-based) positions of the key in the arrays. $1 kind, $2-$4.
// Each key is one lookup of the primary key (LATERAL .. LIMIT 1 keeps the
// planner from turning it into a join that reads the whole table: a
// connection keeps a prepared statement's generic plan, made for whatever
// size the table had then).
const keyRecordManySQL = `SELECT u.n, r.fingerprint, r.state, r.errcode, r.errmsg, r.answer::text, r.reversal::text
FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(t, b, o, n)
CROSS JOIN LATERAL (SELECT * FROM terminal_requests r
    WHERE r.kind = $1 AND r.terminal_id = u.t AND r.batch_no = u.b AND r.terminal_order_id = u.o LIMIT 1) r`

// queueKeyLoads queues the locks and the reads of many keys' records:
// into[i] gets the record of keys[i] (nil when it has none).
func queueKeyLoads(b *pgx.Batch, kind string, keys []mapfront.TerminalKey, into []*mapfront.KeyRecord) {
	ts, bs, os := keyArrays(keys)
	b.Queue(keyLockManySQL, kind, ts, bs, os)
	b.Queue(keyRecordManySQL, kind, ts, bs, os).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				n                int64
				r                mapfront.KeyRecord
				state, msg       string
				code             int
				answer, reversal *string
			)
			if err := rows.Scan(&n, &r.Fingerprint, &state, &code, &msg, &answer, &reversal); err != nil {
				return err
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
			into[n-1] = &r
		}
		return rows.Err()
	})
}

// keyArrays splits keys into the three arrays the *Many statements take.
func keyArrays(keys []mapfront.TerminalKey) (ts, bs, os []string) {
	ts, bs, os = make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ts[i], bs[i], os[i] = k.TerminalID, k.BatchNo, k.TerminalOrderID
	}
	return ts, bs, os
}
