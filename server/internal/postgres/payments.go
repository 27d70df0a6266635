package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pinblock"
)

// openPIN decodes a request's PIN block under its terminal's key. Anything
// that keeps it from decoding is 10017, which never counts as a wrong
// password.
func (s *Store) openPIN(t *terminal, block, consumerID string) (string, error) {
	bad := mapfront.Errorf(mapfront.CodePINBlock, "支付密码密文无法解析")
	if t.sealedTPK == nil {
		s.log.Warn("terminal has no PIN key", "terminal", t.id)
		return "", bad
	}
	key, err := s.keys.OpenTPK(t.id, t.sealedTPK)
	if err != nil {
		s.log.Error("terminal PIN key does not open", "terminal", t.id, "err", err)
		return "", bad
	}
	keying := pinblock.DoubleLength
	if t.legacyDES {
		keying = pinblock.LegacySingle
	}
	pin, err := pinblock.Open(block, consumerID, key, keying)
	if err != nil {
		return "", bad
	}
	return pin, nil
}

// consumer resolves a consumerId (mobile or accountId) to its customer,
// locked against concurrent password checks and pays of the same customer,
// and, for an accountId, the account. Errors: 10005.
func consumer(ctx context.Context, tx pgx.Tx, consumerID string) (*customer, string, error) {
	q, account := customerByAccountSQL, consumerID
	if mapfront.ValidMobile(consumerID) {
		q, account = customerByMobileSQL, ""
	}
	c, err := scanCustomer(tx.QueryRow(ctx, q, consumerID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", mapfront.Errorf(mapfront.CodeNotFound, "消费号码不存在")
	}
	return c, account, err
}

// checkPIN applies the payment password rules of SPEC section 5 to the
// customer: err is the decline (or an unusable stored hash), and when store
// is true the new failure count and lock must be written, decline or not.
func (s *Store) checkPIN(c *customer, pin string) (store bool, failures int, locked bool, err error) {
	ok := false
	if c.pwHash != nil && !c.locked {
		if ok, err = s.keys.VerifyPassword(c.pwHash, pin); err != nil {
			return false, 0, false, err
		}
	}
	failures, locked, err = mapfront.CheckPassword(c.pwHash != nil, c.locked, c.failures, ok, s.policy.MaxPasswordFailures)
	return failures != c.failures || locked != c.locked, failures, locked, err
}

// verifyPassword is checkPIN with the count written at once.
func (s *Store) verifyPassword(ctx context.Context, tx pgx.Tx, c *customer, pin string) error {
	store, failures, locked, decline := s.checkPIN(c, pin)
	if store {
		if _, err := tx.Exec(ctx, customerPasswordSQL, c.id, failures, locked); err != nil {
			return err
		}
	}
	return decline
}

// authenticate is what pay and get_account_info share: the registered
// terminal, the decoded PIN, the customer and the password check.
func (s *Store) authenticate(ctx context.Context, tx pgx.Tx, o mapfront.Origin, consumerID, block string) (*customer, string, error) {
	t, err := checkOrigin(ctx, tx, o)
	if err != nil {
		return nil, "", err
	}
	pin, err := s.openPIN(t, block, consumerID)
	if err != nil {
		return nil, "", err
	}
	c, account, err := consumer(ctx, tx, consumerID)
	if err != nil {
		return nil, "", err
	}
	return c, account, s.verifyPassword(ctx, tx, c, pin)
}

// payOrder is a pay order row as cancel, undo and replays need it.
type payOrder struct {
	fingerprint              []byte
	balanceAfter             int64
	id, status, accountID    string
	sellerID, storeID, term  string
	batchNo, terminalOrderID string
	operatorID, consumerID   string
	amount                   int64
	businessDate             time.Time
	payTime                  time.Time
	productName, quantity    string
	productPrice             int64
	remark                   string
}

const payOrderColumns = `order_id, status, account_id, seller_id, store_id, terminal_id, batch_no, terminal_order_id,
operator_id, consumer_id, amount, business_date, pay_time, product_name, product_quantity, product_price, remark,
coalesce(fingerprint, ''::bytea), balance_after`

func scanPayOrder(row pgx.Row) (*payOrder, error) {
	var o payOrder
	err := row.Scan(&o.id, &o.status, &o.accountID, &o.sellerID, &o.storeID, &o.term, &o.batchNo, &o.terminalOrderID,
		&o.operatorID, &o.consumerID, &o.amount, &o.businessDate, &o.payTime, &o.productName, &o.quantity,
		&o.productPrice, &o.remark, &o.fingerprint, &o.balanceAfter)
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// refund credits a pay's amount back to its account and returns the balance.
func refund(ctx context.Context, tx pgx.Tx, kind, orderID string, o *payOrder) (int64, error) {
	if _, err := post(ctx, tx, kind, orderID, posting{o.accountID, o.amount}, posting{sysMerchantPayable, -o.amount}); err != nil {
		return 0, err
	}
	var balance int64
	err := tx.QueryRow(ctx, `SELECT balance FROM accounts WHERE account_id = $1`, o.accountID).Scan(&balance)
	return balance, err
}

// CancelPay voids a pay (消费撤销, SPEC section 5): only on the pay's own
// seller/store/terminal, within its business day, for a pay that still
// stands; the full amount goes back to the same account and the cancel is a
// new order. Errors: 10001, 10002, 10003, 10010, 10011, 10012, 10018.
func (s *Store) CancelPay(ctx context.Context, r *mapfront.CancelPayRequest) (*mapfront.CancelAnswer, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return keyed(s, ctx, kindPayCancel, r.Key(), r.Fingerprint(), func(tx pgx.Tx) (*mapfront.CancelAnswer, error) {
		if _, err := checkOrigin(ctx, tx, r.Origin); err != nil {
			return nil, err
		}
		o, err := scanPayOrder(tx.QueryRow(ctx, `SELECT `+payOrderColumns+` FROM pay_orders
WHERE order_id = $1 AND kind = 'pay' FOR UPDATE`, r.OrderID))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, mapfront.Errorf(mapfront.CodeNoOriginal, "原交易不存在")
		}
		if err != nil {
			return nil, err
		}
		now := s.clock.Now()
		switch {
		case o.sellerID != r.SellerID || o.storeID != r.StoreID || o.term != r.TerminalID:
			return nil, mapfront.Errorf(mapfront.CodeCancelDenied, "撤销须在原终端上进行")
		case o.status != "success":
			return nil, mapfront.Errorf(mapfront.CodeAlreadyUndone, "原交易已撤销或已冲正")
		case !o.businessDate.Equal(s.clock.BusinessDate(now)):
			return nil, mapfront.Errorf(mapfront.CodeCancelDenied, "只能撤销当日交易，请走退货流程")
		}
		id, err := s.newOrderID(ctx, tx)
		if err != nil {
			return nil, err
		}
		cancelID := "ud" + id
		// The cancel order goes in first: the ledger transaction names it.
		const ins = `
INSERT INTO pay_orders (order_id, kind, seller_id, store_id, terminal_id, batch_no, terminal_order_id, operator_id,
    consumer_id, account_id, amount, balance_after, status, original_order_id, remark, business_date, pay_time)
VALUES ($1, 'cancel', $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 'success', $11, $12, $13, $14)`
		if _, err := tx.Exec(ctx, ins, cancelID, r.SellerID, r.StoreID, r.TerminalID, r.BatchNo, r.TerminalOrderID,
			r.OperatorID, o.consumerID, o.accountID, o.amount, o.id, r.Remark, s.clock.BusinessDate(now), now); err != nil {
			return nil, err
		}
		balance, err := refund(ctx, tx, "cancel", cancelID, o)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE pay_orders SET status = 'cancelled' WHERE order_id = $1`, o.id); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE pay_orders SET balance_after = $2 WHERE order_id = $1`, cancelID, balance); err != nil {
			return nil, err
		}
		return &mapfront.CancelAnswer{
			OrderID: cancelID, PayTime: s.clock.FormatTime(now), SellerID: r.SellerID, StoreID: r.StoreID,
			TerminalID: r.TerminalID, OperatorID: r.OperatorID, BatchNo: r.BatchNo, TerminalOrderID: r.TerminalOrderID,
			Remark: r.Remark, Status: mapfront.StatusCancelled, AccountID: o.accountID, Balance: &balance,
		}, nil
	})
}

// UndoPay reverses a pay named by its terminal key (消费冲正, SPEC section 5).
// It takes the key's transaction lock, as every pay of the key does, so the
// pay and its reversal run one after the other: they end as
// approved-then-reversed or tombstoned-then-declined, never money moved and
// reversal lost. Every outcome is stored on the key's terminal_requests row
// and a repeat answers it again. Errors: 10001, 10002, 10018.
func (s *Store) UndoPay(ctx context.Context, r *mapfront.UndoPayRequest) (*mapfront.PaymentAnswer, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var answer *mapfront.PaymentAnswer
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		answer = nil
		if _, err := checkOrigin(ctx, tx, r.Origin); err != nil {
			return err
		}
		k := r.Key()
		if _, err := tx.Exec(ctx, payKeyLockSQL, k.TerminalID, k.BatchNo, k.TerminalOrderID); err != nil {
			return err
		}
		var (
			state   string
			errcode int
			undone  []byte
		)
		err := tx.QueryRow(ctx, `SELECT state, errcode, undo_answer FROM terminal_requests
WHERE kind = 'pay' AND terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3`,
			k.TerminalID, k.BatchNo, k.TerminalOrderID).Scan(&state, &errcode, &undone)
		found := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if undone != nil {
			answer = new(mapfront.PaymentAnswer)
			return json.Unmarshal(undone, answer)
		}
		o, err := scanPayOrder(tx.QueryRow(ctx, payOrderByKeySQL+` FOR UPDATE`, k.TerminalID, k.BatchNo, k.TerminalOrderID))
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		now := s.clock.Now()
		a := mapfront.PaymentAnswer{
			PayTime: s.clock.FormatTime(now), SellerID: r.SellerID, StoreID: r.StoreID,
			TerminalID: r.TerminalID, OperatorID: r.OperatorID, BatchNo: r.BatchNo, TerminalOrderID: r.TerminalOrderID,
			Remark: r.Remark, Status: mapfront.StatusReversed,
		}
		orderStatus, newState, fp := "", "reversed", []byte(nil)
		if o != nil {
			if o.sellerID != r.SellerID || o.storeID != r.StoreID {
				return mapfront.Errorf(mapfront.CodeTerminal, "冲正的商户、门店与原交易不符")
			}
			// The reversal answers with the pay's own orderId: the order
			// whose status now says reversed, where the back office looks.
			orderStatus, fp, a.OrderID = o.status, o.fingerprint, o.id
			a.ConsumerID, a.Sum, a.ProductName, a.ProductPrice, a.ProductQuantity, a.AccountID =
				o.consumerID, o.amount, o.productName, o.productPrice, o.quantity, o.accountID
		}
		if o == nil {
			// No approved pay: the reversal gets an order number of its own.
			id, err := s.newOrderID(ctx, tx)
			if err != nil {
				return err
			}
			a.OrderID = "ud" + id
		}
		switch mapfront.DecideUndo(found || o != nil, o != nil, orderStatus) {
		case mapfront.UndoTombstone:
			newState = "tombstone"
		case mapfront.UndoRefund:
			balance, err := refund(ctx, tx, "undo", o.id, o)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE pay_orders SET status = 'reversed' WHERE order_id = $1`, o.id); err != nil {
				return err
			}
			a.Balance = &balance
		case mapfront.UndoNothingCancelled:
			// The pay stands as answered (then cancelled): a repeat of it
			// still gets its answer, so the key stays 'done'.
			newState = "done"
			a.Status = mapfront.StatusWasCancelled
			var balance int64
			if err := tx.QueryRow(ctx, `SELECT balance FROM accounts WHERE account_id = $1`, o.accountID).Scan(&balance); err != nil {
				return err
			}
			a.Balance = &balance
		case mapfront.UndoNothingDeclined:
			// The declined pay keeps its stored answer: a repeat of it is
			// declined as before (SPEC section 5).
			newState = "done"
			a.Status = mapfront.StatusNothingToUndo
		}
		body, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if found {
			_, err = tx.Exec(ctx, `UPDATE terminal_requests SET state = $4, undo_answer = $5
WHERE kind = 'pay' AND terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3`,
				k.TerminalID, k.BatchNo, k.TerminalOrderID, newState, body)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO terminal_requests (kind, terminal_id, batch_no, terminal_order_id, fingerprint,
    state, errcode, undo_answer) VALUES ('pay', $1, $2, $3, $4, $5, 0, $6)`,
				k.TerminalID, k.BatchNo, k.TerminalOrderID, fp, newState, body)
		}
		if err != nil {
			return err
		}
		answer = &a
		return nil
	})
	if err != nil {
		return nil, err
	}
	return answer, nil
}

// GetAccountInfo answers a balance query after the password check (SPEC
// section 5): a mobile number queries the cash account, an accountId that
// account. Errors: 10001, 10002, 10005, 10007, 10008, 10014, 10017.
func (s *Store) GetAccountInfo(ctx context.Context, r *mapfront.AccountQuery) (*mapfront.AccountInfo, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var info *mapfront.AccountInfo
	var decline error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		info, decline = nil, nil
		c, accountID, err := s.authenticate(ctx, tx, r.Origin, r.ConsumerID, r.PINBlock)
		if err != nil {
			if mapfront.ErrorCode(err) == mapfront.CodeInternal {
				return err
			}
			decline = err // commit the password failure count
			return nil
		}
		q := `SELECT a.account_id, a.status, a.balance, coalesce(p.name, '现金账户') FROM accounts a
LEFT JOIN products p ON p.product_id = a.product_id WHERE `
		var arg any
		if accountID != "" {
			q, arg = q+`a.account_id = $1`, accountID
		} else {
			q, arg = q+`a.customer_id = $1 AND a.kind = 'cash'`, c.id
		}
		var a mapfront.AccountInfo
		if err := tx.QueryRow(ctx, q, arg).Scan(&a.AccountID, &a.Status, &a.Balance, &a.Remark); err != nil {
			return err
		}
		info = &a
		return nil
	})
	if err != nil {
		return nil, err
	}
	if decline != nil {
		return nil, decline
	}
	return info, nil
}
