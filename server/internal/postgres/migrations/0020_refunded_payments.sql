-- 0020: a payment refunded by people stops counting toward its card order
-- (SPEC section 6, Manual handling; found by a review).
--
-- Resolving a payment's missing_from_file item as refund_owed recorded the
-- decision and changed nothing else: the payment stayed 'paid' and counted
-- toward its order. A record of the same payment arriving the next day (the
-- POSP's cutover is not ours, so a neighbouring day's record still
-- confirms), a forced re-run of the date, or an operator's later activate
-- then credited the card, and the customer had both the refund and the
-- card's value. Now the resolution marks the payment 'refunded' in its own
-- transaction and takes its sum out of the order (as a repeal_card does),
-- and a record for a refunded payment is an overpaid item applied to nothing
-- (mapfront.RefundOwed, mapfront.Classify).
ALTER TABLE card_payments DROP CONSTRAINT card_payments_status_check,
    ADD CONSTRAINT card_payments_status_check CHECK (status IN ('paid', 'repealed', 'refunded')),
    ADD COLUMN refunded_at timestamptz;

-- Items resolved refund_owed before this migration: their payments are
-- refunded now where that is still true to the books: the payment is still
-- paid and unconfirmed, and its order not credited. As a repeal leaves it,
-- an order left with nothing paid is closed with its card, and an order still
-- partly paid takes payments again (filling) unless the customer has another
-- order of the product filling (one per customer and product: the newest
-- such order of this step). The open_card key is reversed, so that a repeat
-- of it is not answered success. Each such payment leaves its record in the
-- audit trail. A payment whose card was already credited after the
-- resolution, or that a later record confirmed, is left as it is, for people
-- (README, Settlement: the query that lists them).
WITH refunded AS (
    UPDATE card_payments p SET status = 'refunded', refunded_at = e.resolved_at
    FROM settlement_exceptions e, card_orders o
    WHERE e.payment_id = p.payment_id AND e.type = 'missing_from_file' AND e.state = 'resolved'
      AND e.action = 'refund_owed' AND p.status = 'paid' AND NOT p.settled
      AND o.order_id = p.order_id AND NOT o.credited
    RETURNING p.payment_id, p.order_id, p.pay_sum, p.terminal_id, p.batch_no, p.terminal_order_id),
per_order AS (
    SELECT r.order_id, r.refunded, o.paid = r.refunded AS emptied,
           NOT o.filling AND o.paid > r.refunded AND NOT EXISTS (SELECT 1 FROM card_orders f
               WHERE f.customer_id = o.customer_id AND f.product_id = o.product_id AND f.filling)
           AND row_number() OVER (PARTITION BY o.customer_id, o.product_id, o.paid > r.refunded AND NOT o.filling
                                  ORDER BY o.order_id DESC) = 1 AS refill
    FROM (SELECT order_id, sum(pay_sum) AS refunded FROM refunded GROUP BY order_id) r
    JOIN card_orders o USING (order_id)),
orders AS (
    UPDATE card_orders o SET paid = o.paid - r.refunded,
        status = CASE WHEN r.emptied THEN 'closed' ELSE o.status END,
        filling = CASE WHEN r.emptied THEN false WHEN r.refill THEN true ELSE o.filling END
    FROM per_order r WHERE o.order_id = r.order_id
    RETURNING o.account_id, o.status),
keys AS (
    UPDATE terminal_requests k SET state = 'reversed'
    FROM refunded r
    WHERE k.kind = 'open_card' AND k.terminal_id = r.terminal_id AND k.batch_no = r.batch_no
      AND k.terminal_order_id = r.terminal_order_id AND k.state = 'approved'
    RETURNING 1),
closed AS (
    UPDATE accounts a SET status = 'closed', activated_at = NULL
    FROM orders o WHERE a.account_id = o.account_id AND o.status = 'closed'
    RETURNING a.account_id)
INSERT INTO audit_log (at, identity, role, method, target, args, outcome, errcode)
SELECT now(), 'migration.0020', 'system', 'migration.0020', 'payment:' || payment_id,
       jsonb_build_object('order_id', order_id, 'pay_sum', pay_sum, 'note', '应退款的开卡付款不再计入订单（迁移0020）'),
       'ok', 0
FROM refunded;
