package postgres

import (
	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

const payOrderColumns = `order_id, status, account_id, seller_id, store_id, terminal_id, batch_no, terminal_order_id,
operator_id, consumer_id, amount, business_date, pay_time, product_name, product_quantity, product_price, remark,
fingerprint, balance_after, coalesce(original_order_id, '')`

func scanPayOrder(row pgx.Row) (*mapfront.PayOrder, error) {
	var o mapfront.PayOrder
	var status string
	err := row.Scan(&o.ID, &status, &o.AccountID, &o.SellerID, &o.StoreID, &o.TerminalID, &o.BatchNo, &o.TerminalOrderID,
		&o.OperatorID, &o.ConsumerID, &o.Amount, &o.BusinessDate, &o.PayTime, &o.ProductName, &o.ProductQuantity,
		&o.ProductPrice, &o.Remark, &o.Fingerprint, &o.BalanceAfter, &o.OriginalOrderID)
	if err != nil {
		return nil, err
	}
	o.Status = mapfront.PayStatus(status)
	return &o, nil
}
