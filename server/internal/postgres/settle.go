package postgres

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mapfront/internal/idmask"
	"mapfront/server/internal/mapfront"
)

// The daily settlement (日切交割, SPEC section 6) is a batch job, not a
// request: a file of a million records cannot be one database transaction
// without holding locks on a day's card sales for minutes. So a submission
// runs in steps, each its own transaction, and is safe to repeat:
//
//  1. under an advisory lock of the business date (one run per date), the
//     batch row decides: same file as settled → the earlier report; another
//     file → refused unless forced; otherwise a new run;
//  2. the records are streamed chunk by chunk into settlement_staging with
//     one COPY, so memory is bounded by a chunk;
//  3. the staged records are matched in slices (settle_apply.go): keyed
//     lookups on the terminal key, confirmations and exceptions set-based,
//     each slice one transaction in which every money movement is whole;
//     the parts of the terminal keys side by side, the cards to open from
//     the file last, in line order;
//  4. the orders touched are merged and activated in slices
//     (settle_activate.go): those whose verdict is final already behind
//     the matching of step 3 (activateEarly), the rest after it;
//  5. one transaction files bad lines and missing payments, computes the
//     report and marks the batch settled.
//
// What makes a repeat harmless is in the schema: a 交易id is applied once
// (settlement_trades), a payment confirmed once, an order counted once
// (settlement_activations), an exception filed once (dedupe key). A run
// that dies half-way leaves the batch running; the next submission of that
// date starts a new run, skips what was applied and finishes the rest.

const (
	// settleLockClass is the advisory-lock class of settlement runs; the
	// second key is the business date as yyyyMMdd.
	settleLockClass = 0x6d6673 // "mfs"
	// settleSlice is how many staged records or orders one transaction
	// handles: large enough to amortize round trips, small enough to hold
	// row locks for well under a second.
	settleSlice = 5000
	// settleWorkers is how many connections activate orders at once: the
	// activation is database-bound (a ledger transaction, its postings and
	// their triggers per card), and slices of it do not contend.
	settleWorkers = 4
	// settleStatementTimeout bounds the statements of a settlement run,
	// which scan a whole day's records (SPEC section 7: bounded everything).
	settleStatementTimeout = 10 * time.Minute
	// maxBadTextBytes bounds the text of a bad line kept in the queue.
	maxBadTextBytes = 1024
)

// run is one settlement run of a business date, with the site's settings
// its submission carried.
type run struct {
	id   int64
	date time.Time
	// at is when the run started: every card the run activates is
	// activated at this time, whichever slice or pass activates it, so that
	// the card-first spend order (SPEC section 5) among the cards of one run
	// goes by account id, not by the order the slices ran in (found by the
	// reference model: its clock ticks, and two cards of one run were spent
	// in slice order).
	at        time.Time
	forced    bool
	tolerance time.Duration // around the business day, for record times
	lookback  int           // business days back for missing payments
}

// SubmitBatch settles one business date's file (SPEC section 6): h first,
// then the records and bad lines that next returns chunk by chunk until
// io.EOF. The same file as an earlier settled run answers that run's report
// with Repeated set and changes nothing; a different file for a settled date
// is refused unless h.Force, and even then no 交易id is applied twice.
//
// Errors: 10001 (bad header or record stream, a business date not yet
// ended, ErrSettledDifferentFile), 10018 (ErrSettlementRunning: another run of the date is in progress, or
// the database is busy), and whatever next returns.
func (s *Store) SubmitBatch(ctx context.Context, h mapfront.BatchHeader, next func() (*mapfront.BatchChunk, error)) (*mapfront.BatchReport, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	if err := s.dayEnded(h.BusinessDate); err != nil {
		return nil, err
	}
	unlock, err := s.lockDate(ctx, h.BusinessDate)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, earlier, err := s.startRun(ctx, &h)
	if err != nil {
		return nil, err
	}
	if earlier != nil {
		return earlier, nil
	}
	report, err := s.runBatch(ctx, r, &h, next)
	if err != nil {
		s.failRun(ctx, r, err)
		return nil, err
	}
	return report, nil
}

// runBatch does steps 2 to 5 of a run.
func (s *Store) runBatch(ctx context.Context, r *run, h *mapfront.BatchHeader, next func() (*mapfront.BatchChunk, error)) (*mapfront.BatchReport, error) {
	t0 := time.Now()
	records, bad, total, err := s.stage(ctx, r, h, next)
	if err != nil {
		return nil, err
	}
	if reject, why := mapfront.RejectFile(records, bad, h.Settings.MaxBadPermille); reject {
		return s.rejectRun(ctx, r, records, bad, total, why)
	}
	t1 := time.Now()
	if err := s.beginApply(ctx, r, records, bad, total); err != nil {
		return nil, err
	}
	if err := s.applyRecords(ctx, r); err != nil {
		return nil, err
	}
	t2 := time.Now()
	if err := s.activateOrders(ctx, r); err != nil {
		return nil, err
	}
	t3 := time.Now()
	report, err := s.finishRun(ctx, r)
	if err != nil {
		return nil, err
	}
	// The staged rows are no longer needed; failing to delete them costs
	// space, not correctness, and the next run of the date deletes them.
	if err := s.settleTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM settlement_staging WHERE run_id = $1`, r.id)
		return err
	}); err != nil {
		s.log.Warn("settlement staging not cleaned", "run", r.id, "err", err)
	}
	s.log.Info("settlement run settled", "date", mapfront.DateString(r.date), "run", r.id, "file", h.FileName,
		"records", records, "matched", report.Matched, "opened", report.Opened, "activated", report.Activated,
		"stage", t1.Sub(t0).Round(time.Millisecond), "match", t2.Sub(t1).Round(time.Millisecond),
		"activate", t3.Sub(t2).Round(time.Millisecond), "finish", time.Since(t3).Round(time.Millisecond))
	return report, nil
}

// dayEnded refuses a business date that has not ended: its payments are
// still coming, and those made after the run would never be checked.
func (s *Store) dayEnded(date time.Time) error {
	if !date.Before(s.clock.Today()) {
		return mapfront.Errorf(mapfront.CodeMalformed, "营业日%s尚未结束，不能日切", mapfront.DateString(date))
	}
	return nil
}

// lockDate takes the date's advisory lock on a connection held for the run,
// so that one run per date goes at a time; it is released when the run ends
// or, if the server dies, with the session. A second run is told to retry
// rather than queued: a big file takes minutes.
func (s *Store) lockDate(ctx context.Context, date time.Time) (func(), error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, s.wrap(err)
	}
	key := int32(date.Year()*10000 + int(date.Month())*100 + date.Day())
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, int32(settleLockClass), key).Scan(&ok); err != nil {
		conn.Release()
		return nil, s.wrap(err)
	}
	if !ok {
		conn.Release()
		return nil, mapfront.ErrSettlementRunning
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, $2)`, int32(settleLockClass), key); err != nil {
			// A connection that cannot unlock must not go back to the
			// pool still holding the lock.
			_ = conn.Conn().Close(uctx)
		}
		conn.Release()
	}, nil
}

// keyedPlans makes the planner of tx, until it is called again with false,
// reach rows by their keys: no sequential scans, no hash or merge joins. A
// slice's statements touch a few thousand rows of tables that hold every
// payment, order and account ever; planned for a slice's thousands, a hash
// join reads the whole table (card_payments, card_orders, accounts) once per
// slice, which grows with the tables, not with the slice. Statements that
// join two arrays of their own (ledgerManyCTE) need those joins: they run
// with keyedPlans off.
func keyedPlans(ctx context.Context, tx pgx.Tx, on bool) error {
	v := "on"
	if on {
		v = "off"
	}
	_, err := tx.Exec(ctx, keyedPlansSQL, v)
	return err
}

// keyedPlansSQL sets, for the rest of the transaction, whether the planner
// may scan whole tables and hash or merge joins ($1 'on') or plans index
// lookups by key only ($1 'off').
const keyedPlansSQL = `SELECT set_config('enable_seqscan', $1, true), set_config('enable_hashjoin', $1, true),
       set_config('enable_mergejoin', $1, true)`

// settleTx is inTx for settlement steps, whose statements may scan a whole
// day and so get a longer statement timeout than requests do. JIT is off:
// a slice's statements are estimated costly enough to be compiled, and the
// compilation (tens of milliseconds each time) cost more than it saved.
func (s *Store) settleTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true), set_config('jit', 'off', true)`,
			fmt.Sprint(settleStatementTimeout.Milliseconds())); err != nil {
			return err
		}
		return fn(tx)
	})
}

// errNoBatch is loadBatch's not-found.
var errNoBatch = errors.New("no batch for that date")

// startRun decides what a submission does with the date's batch (step 1)
// and, unless it answers the earlier report or is refused, starts a run.
// Runs of the date that never finished are dead (their lock is gone):
// they are marked failed and their staged rows dropped.
func (s *Store) startRun(ctx context.Context, h *mapfront.BatchHeader) (*run, *mapfront.BatchReport, error) {
	var r *run
	var earlier *mapfront.BatchReport
	err := s.settleTx(ctx, func(tx pgx.Tx) error {
		r, earlier = nil, nil
		b, err := loadBatch(ctx, tx, h.BusinessDate)
		if err != nil && !errors.Is(err, errNoBatch) {
			return err
		}
		settled := err == nil && b.Status == mapfront.BatchSettled
		if settled && b.SHA256 == h.SHA256 {
			b.Repeated = true
			earlier = b
			return nil
		}
		// A date that was settled once stays so for this rule, also while
		// a forced run of it is unfinished or after one failed (the batch
		// then says running): a different file needs force again, or a
		// failed forced run would let any file in without it (found by a
		// review).
		if !settled {
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM settlement_runs
WHERE business_date = $1 AND status = 'settled')`, h.BusinessDate).Scan(&settled); err != nil {
				return err
			}
		}
		if settled && !h.Force {
			return mapfront.ErrSettledDifferentFile
		}
		if _, err := tx.Exec(ctx, `UPDATE settlement_runs SET status = 'failed'
WHERE business_date = $1 AND status IN ('staging', 'applying')`, h.BusinessDate); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM settlement_staging
WHERE run_id IN (SELECT run_id FROM settlement_runs WHERE business_date = $1)`, h.BusinessDate); err != nil {
			return err
		}
		const ins = `
INSERT INTO settlement_runs (business_date, file_name, sha256, forced, status, started_at)
VALUES ($1, $2, $3, $4, 'staging', $5) RETURNING run_id`
		r = &run{date: h.BusinessDate, at: s.clock.Now(), forced: settled, tolerance: h.Settings.DateTolerance,
			lookback: h.Settings.LookbackDays}
		return tx.QueryRow(ctx, ins, h.BusinessDate, h.FileName, h.SHA256, settled, r.at).Scan(&r.id)
	})
	if err != nil {
		return nil, nil, err
	}
	if earlier == nil && r.forced {
		s.log.Warn("settlement: forced re-run of a settled date with another file",
			"date", mapfront.DateString(h.BusinessDate), "file", h.FileName, "run", r.id)
	}
	return r, earlier, nil
}

// stage streams the chunks into settlement_staging (step 2) as one COPY
// and returns the lines received, how many of them are bad and the
// records' total. A record the server cannot use is staged as a bad line.
// When the header gave the counts, what arrived must match them: a stream
// cut short never settles.
//
// One COPY for the whole stream, fed row by row as the chunks arrive
// (stagingRows): pgx encodes the rows on its own goroutine and PostgreSQL
// inserts them while the next chunk is still on the wire, where a COPY
// per chunk left the backend idle while a chunk arrived and the stream
// idle while a chunk was copied. Memory stays one chunk and pgx's buffer;
// a stream that fails half-way stages nothing (the COPY is one statement).
// The whole stream must arrive within settleStatementTimeout.
func (s *Store) stage(ctx context.Context, r *run, h *mapfront.BatchHeader, next func() (*mapfront.BatchChunk, error)) (int64, int64, int64, error) {
	columns := []string{"run_id", "line_no", "bad", "trade_id", "amount", "seller_id", "terminal_id", "batch_no",
		"terminal_order_id", "id_number", "mobile", "referrer", "product_id", "card_no", "reference_no", "trade_date",
		"trade_time", "reason", "line_text", "part"}
	aead, err := stagingAEAD()
	if err != nil {
		return 0, 0, 0, err
	}
	src := &stagingRows{runID: r.id, next: next, aead: aead}
	// In a transaction of its own with the settlement's statement timeout:
	// PostgreSQL counts the time the COPY waits for the stream's next chunk,
	// and the requests' timeout (5 s by default) would cancel any stream
	// longer than that. Not retried (inTx would): the stream is consumed.
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true)`,
			fmt.Sprint(settleStatementTimeout.Milliseconds())); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"settlement_staging"}, columns, src)
		return err
	})
	if err != nil {
		if src.err != nil {
			return 0, 0, 0, src.err
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return 0, 0, 0, mapfront.Invalid("line_no", "行号重复")
		}
		return 0, 0, 0, s.wrap(err)
	}
	if src.err != nil {
		return 0, 0, 0, src.err
	}
	lines, bad, total := src.lines, src.bad, src.total
	if h.RecordCount != 0 && h.RecordCount != lines {
		return 0, 0, 0, mapfront.Errorf(mapfront.CodeMalformed, "收到%d行，与文件头记录数%d不符", lines, h.RecordCount)
	}
	if h.TotalFen != 0 && h.TotalFen != total {
		return 0, 0, 0, mapfront.Errorf(mapfront.CodeMalformed, "收到合计%s元，与文件头合计%s元不符",
			mapfront.FormatYuan(total), mapfront.FormatYuan(h.TotalFen))
	}
	return lines, bad, total, nil
}

// stagingRows is the pgx.CopyFromSource of stage: the rows of the chunks
// next returns, a chunk's records then its bad lines, until io.EOF. It
// counts the lines (records and bad lines), the bad ones and the records'
// total in fen; err is the first error of the stream or of a line (a line
// number not positive, a total that overflows), which ends the COPY.
type stagingRows struct {
	runID int64
	next  func() (*mapfront.BatchChunk, error)
	aead  cipher.AEAD // seals the ID numbers (settle_sealed.go)
	chunk *mapfront.BatchChunk
	// i indexes the chunk's records, then its bad lines.
	i                 int
	row               []any
	lines, bad, total int64
	err               error
}

func (c *stagingRows) Next() bool {
	if c.err != nil {
		return false
	}
	for c.chunk == nil || c.i >= len(c.chunk.Records)+len(c.chunk.BadLines) {
		chunk, err := c.next()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			c.err = err
			return false
		}
		c.chunk, c.i = chunk, 0
	}
	c.row = c.nextRow()
	if c.err != nil {
		return false
	}
	c.lines++
	return true
}

// nextRow is the row of the chunk's line i, which it passes.
func (c *stagingRows) nextRow() []any {
	i := c.i
	c.i++
	if i >= len(c.chunk.Records) {
		b := &c.chunk.BadLines[i-len(c.chunk.Records)]
		if b.LineNo <= 0 {
			c.err = mapfront.Invalid("line_no", "须为正整数")
			return nil
		}
		c.bad++
		return badRow(c.runID, b.LineNo, b.Reason, b.Text)
	}
	rec := &c.chunk.Records[i]
	if rec.LineNo <= 0 {
		c.err = mapfront.Invalid("line_no", "须为正整数")
		return nil
	}
	if rec.Amount > 0 && rec.Amount <= mapfront.MaxAmount {
		if c.total > math.MaxInt64-rec.Amount {
			c.err = mapfront.Invalid("amount", "文件合计溢出")
			return nil
		}
		c.total += rec.Amount
	}
	if err := rec.Check(); err != nil {
		c.bad++
		return badRow(c.runID, rec.LineNo, "invalid record: "+err.Error(), "")
	}
	return []any{c.runID, rec.LineNo, false, rec.TradeID, rec.Amount, rec.SellerID, rec.TerminalID,
		rec.BatchNo, rec.TerminalOrderID, sealStagedID(c.aead, c.runID, rec.LineNo, rec.Mobile, rec.IDNumber),
		rec.Mobile, rec.Referrer, rec.ProductID, rec.CardNo,
		rec.ReferenceNo, rec.TradeDate, rec.TradeTime, "", "", keyPart(rec)}
}

func (c *stagingRows) Values() ([]any, error) { return c.row, nil }

func (c *stagingRows) Err() error { return c.err }

// badRow is a bad line's row. Its reason and text are masked again here
// (idmask.DigitRuns, before and after the cut, so that no cut leaves part
// of a number unmasked), whatever the sender masked: they become queue
// items that people read.
func badRow(runID, lineNo int64, reason, text string) []any {
	mask := func(s string, n int) string { return idmask.DigitRuns(truncateUTF8(idmask.DigitRuns(s), n)) }
	return []any{runID, lineNo, true, "", int64(0), "", "", "", "", "", "", "", "", "", "", "", "",
		mask(reason, 256), mask(text, maxBadTextBytes), int16(0)}
}

// keyPart is the part (migration 0011) of a record's terminal key: FNV-1a
// of its three fields, modulo matchWorkers. Records naming the same terminal
// key are in the same part.
func keyPart(rec *mapfront.SettlementRecord) int16 {
	h := fnv.New32a()
	for _, f := range []string{rec.TerminalID, rec.BatchNo, rec.TerminalOrderID} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return int16(h.Sum32() % matchWorkers)
}

// truncateUTF8 cuts s to at most n bytes of valid UTF-8 that PostgreSQL can
// store: a NUL byte, which a text column refuses and which would fail the
// whole COPY, becomes U+FFFD like an invalid byte (every byte has a place).
func truncateUTF8(s string, n int) string {
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if !utf8.ValidString(s) {
		b := make([]rune, 0, len(s))
		for _, r := range s {
			b = append(b, r) // invalid bytes become U+FFFD
		}
		s = string(b)
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// beginApply marks the run applying and the batch running under it, and
// flags every line whose 交易id an earlier line already carries: the first
// occurrence is the record, the others are duplicates (SPEC section 6).
func (s *Store) beginApply(ctx context.Context, r *run, lines, bad, total int64) error {
	return s.settleTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE settlement_runs SET status = 'applying', records = $2, total_fen = $3,
    bad_lines = $4 WHERE run_id = $1`, r.id, lines, total, bad); err != nil {
			return err
		}
		const batch = `
INSERT INTO settlement_batches (business_date, status, run_id, updated_at) VALUES ($1, 'running', $2, $3)
ON CONFLICT (business_date) DO UPDATE SET status = 'running', run_id = excluded.run_id, detail = '',
    updated_at = excluded.updated_at`
		if _, err := tx.Exec(ctx, batch, r.date, r.id, s.clock.Now()); err != nil {
			return err
		}
		// Fresh statistics on the staged rows keep the planner on keyed
		// lookups for the slices (a few thousand rows against the day's
		// payments), not scans sized for an empty table.
		if _, err := tx.Exec(ctx, `ANALYZE settlement_staging`); err != nil {
			return err
		}
		const dups = `
UPDATE settlement_staging s SET dup = true
FROM (SELECT line_no, row_number() OVER (PARTITION BY trade_id ORDER BY line_no) AS n
      FROM settlement_staging WHERE run_id = $1 AND NOT bad) d
WHERE s.run_id = $1 AND s.line_no = d.line_no AND d.n > 1`
		_, err := tx.Exec(ctx, dups, r.id)
		return err
	})
}

// rejectRun ends a run whose file is mostly unreadable (SPEC section 6,
// issue 15): nothing of it is applied, its staged rows go, the run is
// rejected with the reason, and so is the date's batch unless the date is
// already settled (a settled day stays as it was). The batch being neither
// settled nor forced, a corrected file for the date is then taken without
// force. The report is the run's.
func (s *Store) rejectRun(ctx context.Context, r *run, lines, bad, total int64, why string) (*mapfront.BatchReport, error) {
	var report *mapfront.BatchReport
	err := s.settleTx(ctx, func(tx pgx.Tx) error {
		now := s.clock.Now()
		if _, err := tx.Exec(ctx, `UPDATE settlement_runs SET status = 'rejected', records = $2, total_fen = $3,
    bad_lines = $4, detail = $5, exceptions = $6, settled_at = $7 WHERE run_id = $1`,
			r.id, lines, total, bad, why, zeroCounts(), now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM settlement_staging WHERE run_id = $1`, r.id); err != nil {
			return err
		}
		const batch = `
INSERT INTO settlement_batches (business_date, status, run_id, detail, updated_at) VALUES ($1, 'rejected', $2, $3, $4)
ON CONFLICT (business_date) DO UPDATE SET status = 'rejected', run_id = excluded.run_id, detail = excluded.detail,
    updated_at = excluded.updated_at
WHERE settlement_batches.status <> 'settled'`
		if _, err := tx.Exec(ctx, batch, r.date, r.id, why, now); err != nil {
			return err
		}
		var err error
		report, err = scanBatch(tx.QueryRow(ctx, `SELECT `+batchColumns+`
FROM settlement_runs r JOIN settlement_batches b ON b.business_date = r.business_date WHERE r.run_id = $1`, r.id))
		if err != nil {
			return err
		}
		report.Status, report.Detail, report.SettledAt = mapfront.BatchRejected, why, nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Error("settlement file rejected: mostly unreadable, nothing applied",
		"date", mapfront.DateString(r.date), "run", r.id, "lines", lines, "bad_lines", bad, "reason", why)
	return report, nil
}

// zeroCounts is a report's exception counts when nothing was filed.
func zeroCounts() []mapfront.ExceptionCount {
	types := mapfront.ExceptionTypes()
	out := make([]mapfront.ExceptionCount, len(types))
	for i, t := range types {
		out[i].Type = t
	}
	return out
}

// failRun records that a run stopped: its batch stays running (nothing new
// is settled), and the next submission of the date starts over.
func (s *Store) failRun(ctx context.Context, r *run, cause error) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err := s.settleTx(fctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(fctx, `UPDATE settlement_runs SET status = 'failed' WHERE run_id = $1 AND status <> 'settled'`, r.id); err != nil {
			return err
		}
		_, err := tx.Exec(fctx, `DELETE FROM settlement_staging WHERE run_id = $1`, r.id)
		return err
	})
	s.log.Warn("settlement run failed", "date", mapfront.DateString(r.date), "run", r.id, "cause", cause, "cleanup_err", err)
}

// finishRun is step 5, one transaction: bad lines and payments of the day
// that no record names become exceptions; items of earlier runs of the date
// whose record has since been applied are superseded, and so are bad-line
// items of earlier files that this run's file does not have; the report is
// computed from what the date now holds and the batch is settled.
func (s *Store) finishRun(ctx context.Context, r *run) (*mapfront.BatchReport, error) {
	var report *mapfront.BatchReport
	err := s.settleTx(ctx, func(tx pgx.Tx) error {
		now := s.clock.Now()
		// A bad line's item is keyed by its line number and a digest of
		// what the item shows, the reason and the (masked) text: a forced
		// re-run whose file has the same line files nothing new (an
		// operator's resolution of it stands), another line at that number
		// is filed. An item superseded by an earlier forced run (below) whose
		// line is back in this file is current again: reopened if the
		// supersession closed it, otherwise as its operator left it.
		const bad = `
INSERT INTO settlement_exceptions AS e (type, business_date, run_id, dedupe, line_no, detail, created_at)
SELECT 'bad_line', $1, $2, ` + badLineKeySQL + `, line_no,
       CASE WHEN line_text = '' THEN reason ELSE reason || '：' || line_text END, $3
FROM settlement_staging s WHERE run_id = $2 AND bad
ON CONFLICT (business_date, dedupe) DO UPDATE
SET superseded = false,
    state = CASE WHEN e.operator = 'settlement' AND e.note = $4 THEN 'open' ELSE e.state END,
    action = CASE WHEN e.operator = 'settlement' AND e.note = $4 THEN NULL ELSE e.action END,
    resolved_at = CASE WHEN e.operator = 'settlement' AND e.note = $4 THEN NULL ELSE e.resolved_at END,
    note = CASE WHEN e.operator = 'settlement' AND e.note = $4 THEN '' ELSE e.note END,
    operator = CASE WHEN e.operator = 'settlement' AND e.note = $4 THEN '' ELSE e.operator END
WHERE e.superseded`
		if _, err := tx.Exec(ctx, bad, r.date, r.id, now, badLineGoneNote); err != nil {
			return err
		}
		// Bad-line items of earlier files that this file does not have are
		// not the date's problems any more (SPEC section 6: the report counts
		// the current file's bad lines): superseded, and closed by the
		// settlement if still open; one an operator resolved keeps the
		// resolution.
		const badGone = `
UPDATE settlement_exceptions e
SET superseded = true,
    action = CASE WHEN e.state = 'open' THEN 'ignore' ELSE e.action END,
    operator = CASE WHEN e.state = 'open' THEN 'settlement' ELSE e.operator END,
    note = CASE WHEN e.state = 'open' THEN $4 ELSE e.note END,
    resolved_at = CASE WHEN e.state = 'open' THEN $3 ELSE e.resolved_at END,
    state = 'resolved'
WHERE e.business_date = $1 AND e.type = 'bad_line' AND e.run_id IS NOT NULL AND NOT e.superseded
  AND NOT EXISTS (SELECT 1 FROM settlement_staging s WHERE s.run_id = $2 AND s.bad AND s.line_no = e.line_no
                  AND ` + badLineKeySQL + ` = e.dedupe)`
		if _, err := tx.Exec(ctx, badGone, r.date, r.id, now, badLineGoneNote); err != nil {
			return err
		}
		// Missing: paid, not repealed, not confirmed, and named by no line
		// of this file (a line that names it but does not confirm it has
		// its own exception). It is never activated by itself.
		const missing = `
INSERT INTO settlement_exceptions (type, business_date, run_id, dedupe, order_id, payment_id, terminal_id, batch_no,
    terminal_order_id, amount, expected, detail, created_at)
SELECT 'missing_from_file', $1, $2, 'missing|' || p.payment_id, p.order_id, p.payment_id, p.terminal_id, p.batch_no,
       p.terminal_order_id, 0, p.pay_sum, '日切文件中没有这笔开卡付款', $3
FROM card_payments p
WHERE p.business_date = $1 AND p.status = 'paid' AND NOT p.settled
  AND NOT EXISTS (SELECT 1 FROM settlement_staging s WHERE s.run_id = $2 AND NOT s.bad
                  AND s.terminal_id = p.terminal_id AND s.batch_no = p.batch_no
                  AND s.terminal_order_id = p.terminal_order_id)
ON CONFLICT (business_date, dedupe) DO NOTHING`
		if _, err := tx.Exec(ctx, missing, r.date, r.id, now); err != nil {
			return err
		}
		const supersede = `
UPDATE settlement_exceptions e
SET state = 'resolved', action = 'ignore', operator = 'settlement', note = '后续日切已对上', resolved_at = $3,
    superseded = true
WHERE e.business_date = $1 AND e.state = 'open' AND e.run_id IS NOT NULL AND e.run_id <> $2 AND (
      (e.type = 'missing_from_file' AND EXISTS (SELECT 1 FROM card_payments p WHERE p.payment_id = e.payment_id AND p.settled))
   OR (e.type <> 'duplicate' AND e.trade_id <> '' AND EXISTS (SELECT 1 FROM settlement_trades t
          WHERE t.trade_id = e.trade_id AND t.business_date = $1 AND t.run_id > e.run_id)))`
		if _, err := tx.Exec(ctx, supersede, r.date, r.id, now); err != nil {
			return err
		}
		rep := mapfront.BatchReport{Status: mapfront.BatchSettled}
		if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE outcome = 'matched'), count(*) FILTER (WHERE outcome = 'opened')
FROM settlement_trades WHERE business_date = $1`, r.date).Scan(&rep.Matched, &rep.Opened); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE payments >= 2), count(*)
FROM settlement_activations WHERE business_date = $1 AND NOT manual`, r.date).Scan(&rep.Merged, &rep.Activated); err != nil {
			return err
		}
		// Items of earlier dates that the date's records confirmed (SPEC
		// section 6, Dates), whichever run of the date did it.
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM settlement_exceptions e
JOIN settlement_runs x ON x.run_id = e.resolved_run_id WHERE x.business_date = $1`, r.date).Scan(&rep.AutoResolved); err != nil {
			return err
		}
		var err error
		if rep.Exceptions, err = exceptionCounts(ctx, tx, r.date); err != nil {
			return err
		}
		const done = `
UPDATE settlement_runs SET status = 'settled', matched = $2, opened = $3, merged = $4, activated = $5,
    exceptions = $6, settled_at = $7, auto_resolved = $8
WHERE run_id = $1`
		if _, err := tx.Exec(ctx, done, r.id, rep.Matched, rep.Opened, rep.Merged, rep.Activated, rep.Exceptions, now,
			rep.AutoResolved); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE settlement_batches SET status = 'settled', run_id = $2, detail = '', updated_at = $3
WHERE business_date = $1`, r.date, r.id, now); err != nil {
			return err
		}
		report, err = loadBatch(ctx, tx, r.date)
		return err
	})
	return report, err
}

// badLineKeySQL is the dedupe key of the bad line of settlement_staging s:
// its line number and the SHA-256 of its reason and text as the item shows
// them. Not a digest of the raw line: that would be an unkeyed digest of a
// line holding an ID number, which trying the few likely numbers recovers
// (migration 0017); the stored text is already masked (badRow).
const badLineKeySQL = `'bad_line|' || s.line_no || '|' || encode(sha256(convert_to(s.reason || E'\n' || s.line_text, 'UTF8')), 'hex')`

// badLineGoneNote is the note of a bad-line item that a forced re-run closed
// because its file does not have that line; finishRun reopens such an item
// when a later run's file has the line again.
const badLineGoneNote = "强制重跑的文件没有这一坏行"

// exceptionCounts counts the date's settlement exceptions by type, every
// type present in the fixed order, superseded ones left out.
func exceptionCounts(ctx context.Context, tx pgx.Tx, date time.Time) ([]mapfront.ExceptionCount, error) {
	const q = `
SELECT type, count(*),
       coalesce(sum(CASE WHEN type IN ('missing_from_file', 'incomplete_after_window') THEN expected ELSE amount END), 0)
FROM settlement_exceptions WHERE business_date = $1 AND run_id IS NOT NULL AND NOT superseded GROUP BY type`
	rows, err := tx.Query(ctx, q, date)
	if err != nil {
		return nil, err
	}
	got := map[mapfront.ExceptionType]mapfront.ExceptionCount{}
	for rows.Next() {
		var c mapfront.ExceptionCount
		if err := rows.Scan(&c.Type, &c.Count, &c.Amount); err != nil {
			rows.Close()
			return nil, err
		}
		got[c.Type] = c
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	types := mapfront.ExceptionTypes()
	out := make([]mapfront.ExceptionCount, 0, len(types))
	for _, t := range types {
		c := got[t]
		c.Type = t
		out = append(out, c)
	}
	return out, nil
}

const batchColumns = `b.business_date, b.status, coalesce(r.status, ''), coalesce(r.file_name, ''),
coalesce(r.sha256, ''), coalesce(r.records, 0), coalesce(r.total_fen, 0), coalesce(r.matched, 0),
coalesce(r.opened, 0), coalesce(r.merged, 0), coalesce(r.activated, 0), coalesce(r.exceptions, '[]'), r.settled_at,
coalesce(r.bad_lines, 0), coalesce(r.auto_resolved, 0), coalesce(nullif(b.detail, ''), r.detail, '')`

const batchFrom = ` FROM settlement_batches b LEFT JOIN settlement_runs r ON r.run_id = b.run_id`

func scanBatch(row pgx.Row) (*mapfront.BatchReport, error) {
	var b mapfront.BatchReport
	var runStatus string
	err := row.Scan(&b.BusinessDate, &b.Status, &runStatus, &b.FileName, &b.SHA256, &b.Records, &b.TotalFen,
		&b.Matched, &b.Opened, &b.Merged, &b.Activated, &b.Exceptions, &b.SettledAt, &b.BadLines, &b.AutoResolved, &b.Detail)
	if err != nil {
		return nil, err
	}
	if b.Status == mapfront.BatchRunning && runStatus == "failed" {
		b.Status = mapfront.BatchFailed
	}
	if b.Status != mapfront.BatchSettled {
		b.SettledAt = nil
	}
	return &b, nil
}

func loadBatch(ctx context.Context, q querier, date time.Time) (*mapfront.BatchReport, error) {
	b, err := scanBatch(q.QueryRow(ctx, `SELECT `+batchColumns+batchFrom+` WHERE b.business_date = $1`, date))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoBatch
	}
	return b, err
}

// GetBatch returns a business date's batch and its report. Errors: 10010.
func (s *Store) GetBatch(ctx context.Context, date time.Time) (*mapfront.BatchReport, error) {
	b, err := loadBatch(ctx, s.pool, date)
	if errors.Is(err, errNoBatch) {
		return nil, mapfront.Errorf(mapfront.CodeNoOriginal, "日切批次%s不存在", mapfront.DateString(date))
	}
	return b, s.wrap(err)
}

// ListBatches returns the newest batches first (limit 1..1000, default 30).
func (s *Store) ListBatches(ctx context.Context, limit int) ([]mapfront.BatchReport, error) {
	if limit <= 0 || limit > 1000 {
		limit = 30
	}
	rows, err := s.pool.Query(ctx, `SELECT `+batchColumns+batchFrom+` ORDER BY b.business_date DESC LIMIT $1`, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapfront.BatchReport, error) {
		b, err := scanBatch(row)
		if err != nil {
			return mapfront.BatchReport{}, err
		}
		return *b, nil
	})
	return out, s.wrap(err)
}

// MarkFileMissing records that no file came for a business date (SPEC
// section 6, Fetch): the batch is file_missing with the command's detail. A
// file that arrives later can still be submitted. Errors: 10001 (the date is
// already settled or not yet ended), 10018 (a run of the date is in
// progress).
func (s *Store) MarkFileMissing(ctx context.Context, date time.Time, detail string) (*mapfront.BatchReport, error) {
	if date.IsZero() {
		return nil, mapfront.Missing("business_date")
	}
	if err := s.dayEnded(date); err != nil {
		return nil, err
	}
	detail = truncateUTF8(detail, 1024)
	unlock, err := s.lockDate(ctx, date)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var report *mapfront.BatchReport
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		b, err := loadBatch(ctx, tx, date)
		if err == nil && b.Status == mapfront.BatchSettled {
			return mapfront.Errorf(mapfront.CodeMalformed, "%s已日切，不能标记为缺文件", mapfront.DateString(date))
		}
		if err != nil && !errors.Is(err, errNoBatch) {
			return err
		}
		const q = `
INSERT INTO settlement_batches (business_date, status, run_id, detail, updated_at) VALUES ($1, 'file_missing', NULL, $2, $3)
ON CONFLICT (business_date) DO UPDATE SET status = 'file_missing', run_id = NULL, detail = excluded.detail,
    updated_at = excluded.updated_at`
		if _, err := tx.Exec(ctx, q, date, detail, s.clock.Now()); err != nil {
			return err
		}
		report, err = loadBatch(ctx, tx, date)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.log.Warn("settlement file missing", "date", mapfront.DateString(date), "detail", detail)
	return report, nil
}
