package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

// CustomersByIDIndex implements mapfront.LookupStore: the mobiles of the
// customers whose blind index is one of indexes.
func (s *Store) CustomersByIDIndex(ctx context.Context, indexes [][]byte) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT mobile FROM customers WHERE id_index = ANY($1::bytea[]) ORDER BY mobile`, indexes)
	if err != nil {
		return nil, s.wrap(err)
	}
	mobiles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return mobiles, s.wrap(err)
}

// keyHistorySQL reads a terminal key's history ($1-$3 the key): the orders
// under the key (a pay and a cancel may share one: the kind is part of the
// key), the cancels under other keys naming its pay, then its outcomes
// other than approvals (an approval's record is its order), a reversal
// with the amount of the pay it reversed.
const keyHistorySQL = `SELECT event, kind, order_id, original_order_id, status, amount, errcode, errmsg,
    terminal_id, batch_no, terminal_order_id, at
FROM (
  SELECT 1 AS rank, CASE kind WHEN 'pay' THEN 'pay' ELSE 'cancel' END AS event,
      CASE kind WHEN 'pay' THEN 'pay' ELSE 'pay_cancel' END AS kind, order_id, coalesce(original_order_id, '') AS original_order_id,
      status, amount, 0 AS errcode, '' AS errmsg, terminal_id, batch_no, terminal_order_id, pay_time AS at
  FROM pay_orders WHERE terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3
  UNION ALL
  SELECT 1, 'open_card', 'open_card', order_id, '', status, pay_sum, 0, '', terminal_id, batch_no, terminal_order_id, created_at
  FROM card_payments WHERE terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3
  UNION ALL
  SELECT 2, 'cancel', 'pay_cancel', c.order_id, c.original_order_id, c.status, c.amount, 0, '', c.terminal_id, c.batch_no,
      c.terminal_order_id, c.pay_time
  FROM pay_orders p JOIN pay_orders c ON c.original_order_id = p.order_id AND c.kind = 'cancel'
  WHERE p.kind = 'pay' AND p.terminal_id = $1 AND p.batch_no = $2 AND p.terminal_order_id = $3
    AND (c.terminal_id, c.batch_no, c.terminal_order_id) <> ($1, $2, $3)
  UNION ALL
  SELECT 3, CASE r.state WHEN 'declined' THEN 'decline' WHEN 'reversed' THEN 'reversal' ELSE 'tombstone' END, r.kind,
      coalesce(p.order_id, ''), '', r.state, coalesce(p.amount, 0), r.errcode, r.errmsg, r.terminal_id, r.batch_no,
      r.terminal_order_id, r.created_at
  FROM terminal_requests r
  LEFT JOIN pay_orders p ON r.state = 'reversed' AND p.kind = 'pay' AND p.terminal_id = r.terminal_id
      AND p.batch_no = r.batch_no AND p.terminal_order_id = r.terminal_order_id
  WHERE r.terminal_id = $1 AND r.batch_no = $2 AND r.terminal_order_id = $3 AND r.state <> 'approved'
) h
ORDER BY rank, at, kind`

// KeyHistory implements mapfront.LookupStore.
func (s *Store) KeyHistory(ctx context.Context, key mapfront.TerminalKey) ([]mapfront.KeyEvent, error) {
	rows, err := s.pool.Query(ctx, keyHistorySQL, key.TerminalID, key.BatchNo, key.TerminalOrderID)
	if err != nil {
		return nil, s.wrap(err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapfront.KeyEvent, error) {
		var e mapfront.KeyEvent
		err := row.Scan(&e.Event, &e.Kind, &e.OrderID, &e.OriginalOrderID, &e.Status, &e.Amount, &e.Errcode, &e.Errmsg,
			&e.Key.TerminalID, &e.Key.BatchNo, &e.Key.TerminalOrderID, &e.At)
		return e, err
	})
	return evs, s.wrap(err)
}
