package postgres

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// insertCustomerSQL writes a new customer: $1 mobile, $2 sealed ID, $3 its
// blind index, $4 its masked form, $5 password hash. Never the clear ID.
const insertCustomerSQL = `INSERT INTO customers (mobile, id_sealed, id_index, id_masked, pw_hash) VALUES ($1, $2, $3, $4, $5)`

const customerColumns = `customer_id, mobile, id_index, pw_hash, pw_failures, pw_locked`

// scanCustomer reads customerColumns and then any extra columns into extra.
func scanCustomer(row pgx.Row, extra ...any) (*mapfront.Customer, error) {
	var c mapfront.Customer
	if err := row.Scan(append([]any{&c.ID, &c.Mobile, &c.IDIndex, &c.PwHash, &c.Failures, &c.Locked}, extra...)...); err != nil {
		return nil, err
	}
	return &c, nil
}

// findOrCreateCustomer returns the customer of mobile, creating them with a
// cash account, the sealed ID and the password hash newHash gives when new.
// An existing mobile with another ID number (blind index) is 10016 (SPEC
// section 5).
func (s *Store) findOrCreateCustomer(ctx context.Context, tx pgx.Tx, mobile string, id *mapfront.SealedID,
	newHash func() ([]byte, error)) (*mapfront.Customer, error) {
	c, err := scanCustomer(tx.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE mobile = $1`, mobile))
	if err == nil {
		if err := mapfront.CheckIdentity(c, id); err != nil {
			return nil, err
		}
		return c, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	hash, err := newHash()
	if err != nil {
		return nil, err
	}
	// A concurrent creation of the same mobile makes this insert wait and
	// then fail on the unique key; inTx retries the whole transaction, which
	// then finds the customer.
	c, err = scanCustomer(tx.QueryRow(ctx, insertCustomerSQL+` RETURNING `+customerColumns,
		mobile, id.Sealed, id.Index(), id.Masked, hash))
	if err != nil {
		return nil, err
	}
	if _, err := s.createAccount(ctx, tx, c.ID, "cash", mapfront.CashPrefix, "", mapfront.Active); err != nil {
		return nil, err
	}
	return c, nil
}

// createAccount opens a cash or card account with a new 16-digit id.
func (s *Store) createAccount(ctx context.Context, tx pgx.Tx, customerID int64, kind, prefix, productID string, status mapfront.AccountStatus) (string, error) {
	id, err := newAccountID(ctx, tx, prefix)
	if err != nil {
		return "", err
	}
	var product, activated any
	if productID != "" {
		product = productID
	}
	if status == mapfront.Active {
		activated = s.clock.Now()
	}
	_, err = tx.Exec(ctx, `INSERT INTO accounts (account_id, kind, customer_id, product_id, status, activated_at)
VALUES ($1, $2, $3, $4, $5, $6)`, id, kind, customerID, product, string(status), activated)
	return id, err
}

// GetCustomer returns a customer and their accounts. Errors: 10005.
func (s *Store) GetCustomer(ctx context.Context, mobile string) (*mapfront.CustomerView, error) {
	var masked string
	c, err := scanCustomer(s.pool.QueryRow(ctx, `SELECT `+customerColumns+`, coalesce(id_masked, '')
FROM customers WHERE mobile = $1`, mobile), &masked)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mapfront.Errorf(mapfront.CodeNotFound, "客户%s不存在", mapfront.MaskMobile(mobile))
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	v := &mapfront.CustomerView{Mobile: c.Mobile, IDNumberMasked: masked,
		PasswordSet: c.PwHash != nil, Locked: c.Locked, Failures: c.Failures}
	rows, err := s.pool.Query(ctx, `SELECT account_id, kind, coalesce(product_id, ''), status, balance, activated_at
FROM accounts WHERE customer_id = $1 ORDER BY kind DESC, created_at`, c.ID)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var a mapfront.AccountView
		if err := rows.Scan(&a.ID, &a.Kind, &a.ProductID, &a.Status, &a.Balance, &a.ActivatedAt); err != nil {
			return nil, err
		}
		v.Accounts = append(v.Accounts, a)
	}
	return v, s.wrap(rows.Err())
}

// CreateCustomer implements mapfront.AdminStore: the customer of mobile,
// created with a cash account and pwHash when new. Errors: 10016.
func (s *Store) CreateCustomer(ctx context.Context, mobile string, id *mapfront.SealedID, pwHash []byte) error {
	return s.auditedTx(ctx, audit.Change{Op: "CreateCustomer", Target: customerTarget(mobile),
		Args: map[string]any{"id_number": id.Masked}}, func(tx pgx.Tx) error {
		_, err := s.findOrCreateCustomer(ctx, tx, mobile, id, func() ([]byte, error) { return pwHash, nil })
		return err
	})
}

// CustomerSealedID returns a customer's sealed ID number, for the service
// to open. Errors: 10005; internal when the row is still in clear (the
// server seals every row before it serves).
func (s *Store) CustomerSealedID(ctx context.Context, mobile string) ([]byte, error) {
	var sealed []byte
	err := s.pool.QueryRow(ctx, `SELECT id_sealed FROM customers WHERE mobile = $1`, mobile).Scan(&sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mapfront.Errorf(mapfront.CodeNotFound, "客户%s不存在", mapfront.MaskMobile(mobile))
	}
	if err == nil && sealed == nil {
		return nil, errors.New("customer ID number not sealed yet (run server migrate)")
	}
	return sealed, callerText(classify("customer sealed id", err, false))
}

// SetPasswordHash sets a customer's password hash (nil: none), clears the
// failure count and unlocks. Errors: 10005.
func (s *Store) SetPasswordHash(ctx context.Context, mobile string, hash []byte) error {
	return s.updateCustomer(ctx, "SetPaymentPassword", mobile, `UPDATE customers SET pw_hash = $2, pw_failures = 0, pw_locked = false WHERE mobile = $1`, hash)
}

// UnlockPaymentPassword clears the failure count and the lock. Errors: 10005.
func (s *Store) UnlockPaymentPassword(ctx context.Context, mobile string) error {
	return s.updateCustomer(ctx, "UnlockPaymentPassword", mobile, `UPDATE customers SET pw_failures = 0, pw_locked = false WHERE mobile = $1`)
}

// updateCustomer runs q on the customer with mobile, audited as op (the
// arguments are secrets or nothing: none is recorded).
func (s *Store) updateCustomer(ctx context.Context, op, mobile, q string, args ...any) error {
	return s.auditedTx(ctx, audit.Change{Op: op, Target: customerTarget(mobile)}, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, q, append([]any{mobile}, args...)...)
		if err == nil && tag.RowsAffected() == 0 {
			return mapfront.Errorf(mapfront.CodeNotFound, "客户%s不存在", mapfront.MaskMobile(mobile))
		}
		return err
	})
}

// TopUpCash credits a customer's cash account from SYS-TOPUP. reference
// makes it idempotent: a repeat answers the current balance and moves
// nothing. A reference a pending top-up proposal holds is not credited
// directly (TopUpCashWithin). Errors: 10003 (reference used for another
// top-up), 10005, 10006 (cash account not active), ErrTopUpNeedsApproval.
func (s *Store) TopUpCash(ctx context.Context, mobile string, amount int64, reference string) (string, int64, error) {
	return s.TopUpCashWithin(ctx, mobile, amount, reference, 0)
}

// TopUpCashWithin is TopUpCash made directly (without a supervisor) under a
// limit: when limit > 0 and the account's direct top-ups of the last 24
// hours (mapfront.TopUpWindow) and amount together come to more than limit
// fen, it credits nothing and returns mapfront.ErrTopUpNeedsApproval. The
// account row is locked first, so concurrent top-ups of one account are
// counted one after the other. A repeated reference answers as before,
// whatever the window holds. A reference that a pending top-up proposal
// holds (migration 0018) is that proposal's: the same mobile and amount
// get mapfront.ErrTopUpNeedsApproval (SubmitTopUp then answers the
// proposal), another 10003, and nothing is credited, so an approval cannot
// find its reference credited by a direct top-up. Errors: as TopUpCash.
func (s *Store) TopUpCashWithin(ctx context.Context, mobile string, amount int64, reference string, limit int64) (string, int64, error) {
	var account string
	var balance int64
	err := s.auditedTx(ctx, audit.Change{Op: "TopUpCash", Target: customerTarget(mobile),
		Args: map[string]any{"amount": amount, "reference": reference}}, func(tx pgx.Tx) error {
		var err error
		account, balance, err = s.topUpTx(ctx, tx, mobile, amount, reference, 0, limit)
		return err
	})
	return account, balance, err
}

// topUpLockClass is the advisory-lock class of top-up references; the
// second key is hashtext of the reference (two references sharing a hash
// only wait for each other).
const topUpLockClass = 0x6d6674 // "mft"

// topUpLockSQL takes a top-up reference's transaction lock ($1). Every
// transaction that credits a reference (topUpTx: direct or approved) or
// files a proposal for it (CreateProposal) takes it first, before any row
// lock of an account, so they run one after the other: a direct top-up
// sees the pending proposal a resend races with, and a proposal is not
// filed for a reference credited meanwhile. An approval takes it after
// its proposal's row lock; CreateProposal, holding it, locks no proposal
// row (its INSERT does not wait for a row merely locked), so the order is
// the same everywhere: proposal row, reference, account.
const topUpLockSQL = `SELECT pg_advisory_xact_lock($1, hashtext($2))`

// pendingTopUpArgsSQL reads the mobile and amount of the pending top-up
// proposal holding a reference ($1), if any (migration 0018: at most one).
const pendingTopUpArgsSQL = `SELECT args->>'mobile', (args->>'amount')::bigint FROM proposals
WHERE kind = 'topup_cash' AND state = 'pending' AND args->>'reference' = $1`

// topUpTx is TopUpCash's work inside tx (also an approved proposal's, in the
// transaction that marks it approved: proposal is its id, 0 for a direct
// top-up; limit as TopUpCashWithin, 0 for none).
func (s *Store) topUpTx(ctx context.Context, tx pgx.Tx, mobile string, amount int64, reference string, proposal, limit int64) (account string, balance int64, _ error) {
	err := func() error {
		if _, err := tx.Exec(ctx, topUpLockSQL, int32(topUpLockClass), reference); err != nil {
			return err
		}
		var status string
		err := tx.QueryRow(ctx, `SELECT a.account_id, a.status FROM accounts a JOIN customers c USING (customer_id)
WHERE c.mobile = $1 AND a.kind = 'cash' FOR UPDATE OF a`, mobile).Scan(&account, &status)
		if errors.Is(err, pgx.ErrNoRows) {
			return mapfront.Errorf(mapfront.CodeNotFound, "客户%s不存在", mapfront.MaskMobile(mobile))
		}
		if err != nil {
			return err
		}
		var prior string
		var priorAmount int64
		err = tx.QueryRow(ctx, `SELECT account_id, amount FROM topups WHERE reference = $1`, reference).Scan(&prior, &priorAmount)
		if err == nil {
			if prior != account || priorAmount != amount {
				return mapfront.Errorf(mapfront.CodeKeyReused, "充值流水号已用于另一笔充值")
			}
			return tx.QueryRow(ctx, `SELECT balance FROM accounts WHERE account_id = $1`, account).Scan(&balance)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if proposal == 0 {
			// A direct top-up of a reference a proposal waits with: the
			// proposal's resend, never credited past the supervisor.
			var pendingMobile string
			var pendingAmount int64
			err := tx.QueryRow(ctx, pendingTopUpArgsSQL, reference).Scan(&pendingMobile, &pendingAmount)
			if err == nil {
				if pendingMobile != mobile || pendingAmount != amount {
					return mapfront.Errorf(mapfront.CodeKeyReused, "充值流水号已用于另一笔充值")
				}
				return mapfront.ErrTopUpNeedsApproval
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		if status != string(mapfront.Active) {
			return mapfront.Errorf(mapfront.CodeAccountState, "现金账户%s", mapfront.AccountStatus(status).Chinese())
		}
		if limit > 0 {
			var direct int64
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM topups
WHERE account_id = $1 AND proposal_id IS NULL AND created_at > $2`,
				account, s.clock.Now().Add(-mapfront.TopUpWindow)).Scan(&direct); err != nil {
				return err
			}
			if direct+amount > limit {
				return mapfront.ErrTopUpNeedsApproval
			}
		}
		txn, err := post(ctx, tx, "topup", reference, posting{account, amount}, posting{sysTopUp, -amount})
		if err != nil {
			return err
		}
		var by *int64
		if proposal != 0 {
			by = &proposal
		}
		if _, err := tx.Exec(ctx, `INSERT INTO topups (reference, account_id, amount, txn_id, proposal_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6)`, reference, account, amount, txn, by, s.clock.Now()); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT balance FROM accounts WHERE account_id = $1`, account).Scan(&balance)
	}()
	return account, balance, err
}

// SetAccountFrozen freezes an active account or unfreezes a frozen one.
// Errors: 10005 unknown account, 10006 not in the state to change.
func (s *Store) SetAccountFrozen(ctx context.Context, accountID string, frozen bool) error {
	from, to := mapfront.Active, mapfront.Frozen
	if !frozen {
		from, to = mapfront.Frozen, mapfront.Active
	}
	op := map[bool]string{true: "FreezeAccount", false: "UnfreezeAccount"}[frozen]
	return s.auditedTx(ctx, audit.Change{Op: op, Target: "account:" + accountID}, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM accounts WHERE account_id = $1 AND kind <> 'system' FOR UPDATE`, accountID).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return mapfront.Errorf(mapfront.CodeNotFound, "账户%s不存在", accountID)
		}
		if err != nil {
			return err
		}
		if status == string(to) {
			return nil
		}
		if status != string(from) {
			return mapfront.Errorf(mapfront.CodeAccountState, "账户%s", mapfront.AccountStatus(status).Chinese())
		}
		_, err = tx.Exec(ctx, `UPDATE accounts SET status = $2 WHERE account_id = $1`, accountID, string(to))
		return err
	})
}

func isForeignKey(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// customerTarget names a customer in the audit trail.
func customerTarget(mobile string) string { return "customer:" + mobile }

// logTarget is an audit target as a log line shows it: a customer's with
// the mobile number masked (SPEC section 7), any other as it is.
func logTarget(target string) string {
	if mobile, ok := strings.CutPrefix(target, "customer:"); ok {
		return "customer:" + mapfront.MaskMobile(mobile)
	}
	return target
}
