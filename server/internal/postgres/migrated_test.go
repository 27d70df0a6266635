package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/pgtest"
)

// migratedBefore creates a database migrated up to, not including, the
// migration whose name starts with first (e.g. "0010"), each recorded in
// schema_migrations as Open records them, so that a test can write rows the
// old schema's way and then Open the database to run the rest. It returns
// the database's URL, a connection to it (closed when the test ends) and
// exec, which fails the test on an error.
func migratedBefore(t *testing.T, first string) (string, *pgx.Conn, func(q string, args ...any)) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
	names, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n.Name() >= first {
			break
		}
		body, err := migrationFiles.ReadFile("migrations/" + n.Name())
		if err != nil {
			t.Fatal(err)
		}
		exec(string(body))
		exec(`INSERT INTO schema_migrations (name) VALUES ($1)`, n.Name())
	}
	return url, conn, exec
}
