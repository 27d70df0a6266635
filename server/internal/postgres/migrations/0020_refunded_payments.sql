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
-- paid and unconfirmed, and its order not credited. An order left with
-- nothing paid is closed with its card, as a repeal closes it; an order still
-- partly paid keeps its filling state. Each such payment leaves its record
-- in the audit trail. A payment whose card was already credited after the
-- resolution is left as it is, for people (README, Settlement: the query
-- that lists them).
WITH refunded AS (
    UPDATE card_payments p SET status = 'refunded', refunded_at = e.resolved_at
    FROM settlement_exceptions e, card_orders o
    WHERE e.payment_id = p.payment_id AND e.type = 'missing_from_file' AND e.state = 'resolved'
      AND e.action = 'refund_owed' AND p.status = 'paid' AND NOT p.settled
      AND o.order_id = p.order_id AND NOT o.credited
    RETURNING p.payment_id, p.order_id, p.pay_sum),
per_order AS (SELECT order_id, sum(pay_sum) AS refunded FROM refunded GROUP BY order_id),
orders AS (
    UPDATE card_orders o SET paid = o.paid - r.refunded,
        status = CASE WHEN o.paid = r.refunded THEN 'closed' ELSE o.status END,
        filling = CASE WHEN o.paid = r.refunded THEN false ELSE o.filling END
    FROM per_order r WHERE o.order_id = r.order_id
    RETURNING o.account_id, o.status),
closed AS (
    UPDATE accounts a SET status = 'closed', activated_at = NULL
    FROM orders o WHERE a.account_id = o.account_id AND o.status = 'closed'
    RETURNING a.account_id)
INSERT INTO audit_log (at, identity, role, method, target, args, outcome, errcode)
SELECT now(), 'migration.0020', 'system', 'migration.0020', 'payment:' || payment_id,
       jsonb_build_object('order_id', order_id, 'pay_sum', pay_sum, 'note', '应退款的开卡付款不再计入订单（迁移0020）'),
       'ok', 0
FROM refunded;
