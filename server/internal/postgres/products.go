package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

const productColumns = `product_id, name, short_name, price, face_value, kind, installments, on_sale, remark`

func scanProduct(row pgx.Row) (*mapfront.Product, error) {
	var p mapfront.Product
	err := row.Scan(&p.ID, &p.Name, &p.ShortName, &p.Price, &p.FaceValue, &p.Kind, &p.Installments, &p.OnSale, &p.Remark)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// UpsertProduct creates or replaces a product. Errors: 10001 invalid product.
func (s *Store) UpsertProduct(ctx context.Context, p mapfront.Product) (*mapfront.Product, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var out *mapfront.Product
	err := s.auditedTx(ctx, audit.Change{Op: "UpsertProduct", Target: "product:" + p.ID,
		Args: map[string]any{"name": p.Name, "price": p.Price, "face_value": p.FaceValue, "kind": p.Kind,
			"installments": p.Installments, "on_sale": p.OnSale}}, func(tx pgx.Tx) error {
		const q = `
INSERT INTO products (` + productColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (product_id) DO UPDATE SET name = excluded.name, short_name = excluded.short_name,
    price = excluded.price, face_value = excluded.face_value, kind = excluded.kind,
    installments = excluded.installments, on_sale = excluded.on_sale, remark = excluded.remark
RETURNING ` + productColumns
		var err error
		out, err = scanProduct(tx.QueryRow(ctx, q, p.ID, p.Name, p.ShortName, p.Price, p.FaceValue, p.Kind, p.Installments, p.OnSale, p.Remark))
		return err
	})
	return out, err
}

// ListProducts returns the products in id order; onSaleOnly keeps those on sale.
func (s *Store) ListProducts(ctx context.Context, onSaleOnly bool) ([]mapfront.Product, error) {
	q := `SELECT ` + productColumns + ` FROM products`
	if onSaleOnly {
		q += ` WHERE on_sale`
	}
	q += ` ORDER BY product_id`
	rows, err := s.pool.Query(ctx, q)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []mapfront.Product
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, s.wrap(rows.Err())
}

// productForSale returns a product that is on sale, else 10004.
func productForSale(ctx context.Context, q querier, id string) (*mapfront.Product, error) {
	p, err := scanProduct(q.QueryRow(ctx, `SELECT `+productColumns+` FROM products WHERE product_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !p.OnSale) {
		return nil, mapfront.Errorf(mapfront.CodeProduct, "产品%s不存在或未上架", id)
	}
	return p, err
}
