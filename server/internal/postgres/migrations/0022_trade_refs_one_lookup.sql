-- 0022: a settlement trade's references are checked with one lookup per row
-- instead of two (issue 11).
--
-- settlement_trades_refs (0012, 0014) looked up, for each new trade, its
-- payment and, separately, its order: two keyed probes and two heap reads
-- per settled record. A trade names the payment it confirms and that
-- payment's order, whichever statement writes it (matching, the cards opened
-- from the file); and a payment's order exists (card_payments.order_id is a
-- foreign key). So one lookup of the payment with the trade's order answers
-- both: the payment exists and its order is the trade's. The check is
-- stricter than before: a trade naming an existing order that is not its
-- payment's is refused too. Everything refused before is still refused, with
-- the same foreign_key_violation; the run is still looked up once per
-- statement.
CREATE OR REPLACE FUNCTION settlement_trades_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.trade_id INTO bad FROM (SELECT DISTINCT run_id FROM new_trades) r
      CROSS JOIN LATERAL (SELECT trade_id FROM new_trades n WHERE n.run_id = r.run_id LIMIT 1) n
     WHERE NOT EXISTS (SELECT 1 FROM settlement_runs x WHERE x.run_id = r.run_id)
     LIMIT 1;
    IF NOT FOUND THEN
        SELECT n.trade_id INTO bad FROM new_trades n
          LEFT JOIN LATERAL (SELECT true AS ok FROM card_payments p
                              WHERE p.payment_id = n.payment_id AND p.order_id = n.order_id LIMIT 1) p ON true
         WHERE p.ok IS NULL
         LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'settlement trade % names an unknown run or payment, or an order not its payment''s', bad.trade_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
