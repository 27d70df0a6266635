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

// domain returns the order as the rules see it.
func (o *cardOrder) domain() *mapfront.CardOrder {
	return &mapfront.CardOrder{ID: o.id, CustomerID: o.customerID, ProductID: o.productID, AccountID: o.accountID,
		Price: o.price, FaceValue: o.faceValue, Installments: o.installments, Released: o.released, Paid: o.paid,
		Filling: o.filling, Status: o.status, Credited: o.credited, ActivatedAt: o.activatedAt}
}

func scanCardOrder(row pgx.Row) (*cardOrder, error) {
	var o cardOrder
	err := row.Scan(&o.id, &o.customerID, &o.productID, &o.accountID, &o.price, &o.faceValue, &o.installments,
		&o.released, &o.paid, &o.filling, &o.status, &o.credited, &o.activatedAt)
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// prepareCardPayment decides an open_card payment before it writes anything,
// so that a declined payment leaves no customer, account or order behind
// (SPEC section 5); then it finds or creates the customer and the filling
// order the payment joins. Errors: 10015, 10016.
func (s *Store) prepareCardPayment(ctx context.Context, tx pgx.Tx, r *mapfront.OpenCardRequest, p *mapfront.Product) (*mapfront.Customer, *cardOrder, mapfront.CardPayment, error) {
	var none mapfront.CardPayment
	c, err := scanCustomer(tx.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE mobile = $1`, r.Mobile))
	newCustomer := errors.Is(err, pgx.ErrNoRows)
	switch {
	case err != nil && !newCustomer:
		return nil, nil, none, err
	case !newCustomer:
		if err := mapfront.CheckIdentity(c, r.ID); err != nil {
			return nil, nil, none, err
		}
	}
	var o *cardOrder
	if !newCustomer {
		o, err = scanCardOrder(tx.QueryRow(ctx, `SELECT `+cardOrderColumns+` FROM card_orders
WHERE customer_id = $1 AND product_id = $2 AND filling FOR UPDATE`, c.ID, p.ID))
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
		if c, err = s.findOrCreateCustomer(ctx, tx, r.Mobile, r.ID, func() ([]byte, error) { return s.newPW(r.IDNumber) }); err != nil {
			return nil, nil, none, err
		}
	}
	if o == nil {
		if o, err = s.startOrder(ctx, tx, c.ID, p, r.Referrer); err != nil {
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
