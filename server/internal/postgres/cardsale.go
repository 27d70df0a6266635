package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

// cardOrder is a card order row.
type cardOrder struct {
	id           string
	customerID   int64
	productID    string
	accountID    string
	price        int64
	faceValue    int64
	installments int
	released     int
	paid         int64
	filling      bool
	status       string
	credited     bool
	activatedAt  *time.Time
}

const cardOrderColumns = `order_id, customer_id, product_id, account_id, price, face_value, installments,
released, paid, filling, status, credited, activated_at`

func scanCardOrder(row pgx.Row) (*cardOrder, error) {
	var o cardOrder
	err := row.Scan(&o.id, &o.customerID, &o.productID, &o.accountID, &o.price, &o.faceValue, &o.installments,
		&o.released, &o.paid, &o.filling, &o.status, &o.credited, &o.activatedAt)
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// OpenCard records one open_card payment (SPEC section 5): the customer is
// found or created, the payment joins the customer's filling order for the
// product (or starts one with a pending card account), and under the
// immediate policy a fully paid card is activated and credited at once.
// Errors: 10001, 10002, 10003, 10004, 10015, 10016, 10018.
func (s *Store) OpenCard(ctx context.Context, r *mapfront.OpenCardRequest) (*mapfront.CardOrderAnswer, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return keyed(s, ctx, kindOpenCard, r.Key(), r.Fingerprint(), func(tx pgx.Tx) (*mapfront.CardOrderAnswer, error) {
		if _, err := checkOrigin(ctx, tx, r.Origin); err != nil {
			return nil, err
		}
		p, err := productForSale(ctx, tx, r.ProductID)
		if err != nil {
			return nil, err
		}
		c, o, d, err := s.prepareCardPayment(ctx, tx, r, p)
		if err != nil {
			return nil, err
		}
		const insPayment = `
INSERT INTO card_payments (order_id, seller_id, store_id, terminal_id, batch_no, terminal_order_id, operator_id,
    pay_sum, status, business_date)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'paid', $9)`
		if _, err := tx.Exec(ctx, insPayment, o.id, r.SellerID, r.StoreID, r.TerminalID, r.BatchNo, r.TerminalOrderID,
			r.OperatorID, d.PaySum, s.clock.Today()); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE card_orders SET paid = $2, filling = $3 WHERE order_id = $1`,
			o.id, d.PaidAfter, !d.Complete); err != nil {
			return nil, err
		}
		o.paid = d.PaidAfter
		if d.Complete && s.policy.Activation == mapfront.ActivateImmediate {
			if err := s.activate(ctx, tx, o); err != nil {
				return nil, err
			}
		}
		return &mapfront.CardOrderAnswer{
			OrderID: o.id, Mobile: c.mobile, SellerID: r.SellerID, StoreID: r.StoreID, TerminalID: r.TerminalID,
			OperatorID: r.OperatorID, BatchNo: r.BatchNo, TerminalOrderID: r.TerminalOrderID,
			Remark: mapfront.CardRemark(o.price, o.paid, s.policy.Activation, o.accountID),
		}, nil
	})
}

// prepareCardPayment decides an open_card payment before it writes anything,
// so that a declined payment leaves no customer, account or order behind
// (SPEC section 5); then it finds or creates the customer and the filling
// order the payment joins. Errors: 10015, 10016.
func (s *Store) prepareCardPayment(ctx context.Context, tx pgx.Tx, r *mapfront.OpenCardRequest, p *mapfront.Product) (*customer, *cardOrder, mapfront.CardPayment, error) {
	var none mapfront.CardPayment
	c, err := scanCustomer(tx.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE mobile = $1`, r.Mobile))
	newCustomer := errors.Is(err, pgx.ErrNoRows)
	switch {
	case err != nil && !newCustomer:
		return nil, nil, none, err
	case !newCustomer && c.idNumber != r.IDNumber:
		return nil, nil, none, mapfront.Errorf(mapfront.CodeIdentity, "身份证号与手机号不属于同一客户")
	}
	var o *cardOrder
	if !newCustomer {
		o, err = scanCardOrder(tx.QueryRow(ctx, `SELECT `+cardOrderColumns+` FROM card_orders
WHERE customer_id = $1 AND product_id = $2 AND filling FOR UPDATE`, c.id, p.ID))
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, nil, none, err
		}
	}
	price, paid := p.Price, int64(0)
	if o != nil {
		price, paid = o.price, o.paid
	}
	d, err := mapfront.DecideCardPayment(price, paid, r)
	if err != nil {
		return nil, nil, none, err
	}
	if newCustomer {
		if c, err = s.findOrCreateCustomer(ctx, tx, r.Mobile, r.IDNumber); err != nil {
			return nil, nil, none, err
		}
	}
	if o == nil {
		if o, err = s.startOrder(ctx, tx, c.id, p, r.Referrer); err != nil {
			return nil, nil, none, err
		}
	}
	return c, o, d, nil
}

// startOrder starts a card order for the customer and product, with a
// pending card account; it takes payments (filling) until the price is paid.
func (s *Store) startOrder(ctx context.Context, tx pgx.Tx, customerID int64, p *mapfront.Product, referrer string) (*cardOrder, error) {
	account, err := s.createAccount(ctx, tx, customerID, "card", p.ID, p.ID, mapfront.Pending)
	if err != nil {
		return nil, err
	}
	id, err := s.newOrderID(ctx, tx)
	if err != nil {
		return nil, err
	}
	return scanCardOrder(tx.QueryRow(ctx, `
INSERT INTO card_orders (order_id, customer_id, product_id, account_id, price, face_value, installments,
    status, referrer, business_date)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9)
RETURNING `+cardOrderColumns, id, customerID, p.ID, account, p.Price, p.FaceValue, p.Installments, referrer, s.clock.Today()))
}

// activate makes a fully paid card active and credits it (开卡生效): the face
// value, or the first part of an installment card, with the rest held in
// SYS-INSTALLMENT; the price is owed by the POSP (SYS-CARD-SALES) and the
// discount is an expense (SYS-DISCOUNT).
func (s *Store) activate(ctx context.Context, tx pgx.Tx, o *cardOrder) error {
	now := s.clock.Now()
	if _, err := post(ctx, tx, "activate", o.id, activationLegs(o)...); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE card_orders SET status = 'active', credited = true, released = 1, filling = false,
    activated_at = $2 WHERE order_id = $1`, o.id, now); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE accounts SET status = 'active', activated_at = $2 WHERE account_id = $1`, o.accountID, now)
	o.status, o.credited, o.released, o.activatedAt = "active", true, 1, &now
	return err
}

// RepealCard withdraws one open_card payment named by its terminal key (SPEC
// section 5): allowed while the payment is unsettled and the card unspent;
// value already credited is taken back and a card with nothing paid is
// closed. A repeat finds the payment repealed and answers the same.
// Errors: 10001, 10002, 10010, 10013, 10018.
func (s *Store) RepealCard(ctx context.Context, r *mapfront.RepealCardRequest) (*mapfront.CardOrderAnswer, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var answer *mapfront.CardOrderAnswer
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := checkOrigin(ctx, tx, r.Origin); err != nil {
			return err
		}
		var (
			paymentID         int64
			orderID, status   string
			sellerID, storeID string
			sum               int64
			settled           bool
		)
		err := tx.QueryRow(ctx, `SELECT payment_id, order_id, status, seller_id, store_id, pay_sum, settled
FROM card_payments WHERE terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3 FOR UPDATE`,
			r.TerminalID, r.BatchNo, r.TerminalOrderID).Scan(&paymentID, &orderID, &status, &sellerID, &storeID, &sum, &settled)
		if errors.Is(err, pgx.ErrNoRows) {
			return mapfront.Errorf(mapfront.CodeNoOriginal, "原开卡交易不存在")
		}
		if err != nil {
			return err
		}
		if sellerID != r.SellerID || storeID != r.StoreID {
			return mapfront.Errorf(mapfront.CodeRepealDenied, "只能在原商户、门店、终端撤销")
		}
		o, err := scanCardOrder(tx.QueryRow(ctx, `SELECT `+cardOrderColumns+` FROM card_orders WHERE order_id = $1 FOR UPDATE`, orderID))
		if err != nil {
			return err
		}
		var mobile string
		if err := tx.QueryRow(ctx, `SELECT mobile FROM customers WHERE customer_id = $1`, o.customerID).Scan(&mobile); err != nil {
			return err
		}
		answer = &mapfront.CardOrderAnswer{OrderID: o.id, Mobile: mobile, SellerID: r.SellerID, StoreID: r.StoreID,
			TerminalID: r.TerminalID, OperatorID: r.OperatorID, BatchNo: r.BatchNo, TerminalOrderID: r.TerminalOrderID}
		if status == "repealed" {
			answer.Remark = repealRemark(o, sum)
			return nil
		}
		if settled {
			return mapfront.Errorf(mapfront.CodeRepealDenied, "该笔开卡付款已日切对账，不能撤销")
		}
		if o.credited {
			if err := s.takeBack(ctx, tx, o); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE card_payments SET status = 'repealed', repealed_at = $2 WHERE payment_id = $1`,
			paymentID, s.clock.Now()); err != nil {
			return err
		}
		// A later repeat of the open_card itself must not answer success.
		if _, err := tx.Exec(ctx, `UPDATE terminal_requests SET state = 'reversed'
WHERE kind = 'open_card' AND terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3`,
			r.TerminalID, r.BatchNo, r.TerminalOrderID); err != nil {
			return err
		}
		o.paid -= sum
		if err := s.reopen(ctx, tx, o); err != nil {
			return err
		}
		answer.Remark = repealRemark(o, sum)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return answer, nil
}

// takeBack reverses an activation: the card must be unspent, holding exactly
// what was credited to it.
func (s *Store) takeBack(ctx context.Context, tx pgx.Tx, o *cardOrder) error {
	var balance int64
	var spent bool
	err := tx.QueryRow(ctx, `SELECT a.balance, EXISTS (SELECT 1 FROM pay_orders p WHERE p.account_id = a.account_id)
FROM accounts a WHERE a.account_id = $1 FOR UPDATE`, o.accountID).Scan(&balance, &spent)
	if err != nil {
		return err
	}
	var credited int64
	for n := 1; n <= o.released; n++ {
		credited += mapfront.InstallmentPart(o.faceValue, o.installments, n)
	}
	if spent || balance != credited {
		return mapfront.Errorf(mapfront.CodeRepealDenied, "卡已使用，不能撤销")
	}
	if o.released > 1 {
		// Later installments were released into the ledger: the card has
		// lived past its first month and its releases stay on record.
		return mapfront.Errorf(mapfront.CodeRepealDenied, "分期卡已发放后续分期，不能撤销")
	}
	if _, err := post(ctx, tx, "repeal", o.id,
		posting{o.accountID, -credited},
		posting{sysInstallment, -(o.faceValue - credited)},
		posting{sysCardSales, o.price},
		posting{sysDiscount, o.faceValue - o.price},
	); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE card_orders SET status = 'pending', credited = false, released = 0, activated_at = NULL
WHERE order_id = $1`, o.id); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE accounts SET status = 'pending', activated_at = NULL WHERE account_id = $1`, o.accountID)
	o.status, o.credited, o.released, o.activatedAt = "pending", false, 0, nil
	return err
}

// reopen stores an order's paid sum after a repeal: with nothing paid the
// order and its card are closed; otherwise it takes payments again unless the
// customer already has another order of the product filling.
func (s *Store) reopen(ctx context.Context, tx pgx.Tx, o *cardOrder) error {
	if o.paid == 0 {
		o.status, o.filling = "closed", false
		if _, err := tx.Exec(ctx, `UPDATE card_orders SET paid = 0, filling = false, status = 'closed' WHERE order_id = $1`, o.id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE accounts SET status = 'closed' WHERE account_id = $1`, o.accountID)
		return err
	}
	var other bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM card_orders WHERE customer_id = $1 AND product_id = $2
AND filling AND order_id <> $3)`, o.customerID, o.productID, o.id).Scan(&other); err != nil {
		return err
	}
	o.filling = !other
	_, err := tx.Exec(ctx, `UPDATE card_orders SET paid = $2, filling = $3 WHERE order_id = $1`, o.id, o.paid, o.filling)
	return err
}

func repealRemark(o *cardOrder, sum int64) string {
	if o.status == "closed" {
		return "已撤销" + mapfront.FormatYuan(sum) + "元，订单已关闭"
	}
	return "已撤销" + mapfront.FormatYuan(sum) + "元，" + mapfront.CardRemark(o.price, o.paid, mapfront.ActivateOnSettlement, o.accountID)
}
