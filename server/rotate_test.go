package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
	"mapfront/server/internal/postgres"
	"mapfront/server/internal/secret"
)

// rotate-keys fails (exit 1) while anything is left under an old key, so
// that a runbook can wait on it, and passes once nothing is.
func TestRotateKeysCommand(t *testing.T) {
	oldHex, newHex := secret.Generate(), secret.Generate()
	url := pgtest.NewDatabase(t)
	open := func(keys *secret.Keys) (*postgres.Store, *mapfront.AdminService) {
		t.Helper()
		policy := mapfront.DefaultPolicy()
		s, err := postgres.Open(context.Background(), url, postgres.Options{
			Clock: mapfront.Clock{Zone: time.UTC, Now: time.Now}, Policy: policy,
			NewCustomerPassword: mapfront.InitialPasswordHasher(policy, keys), SealID: mapfront.IDSealer(keys),
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s, mapfront.NewAdminService(s, keys, policy)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	oldKeys, _ := secret.Parse(oldHex)
	_, admin := open(oldKeys)
	if err := admin.LoadDemo(ctx, demoTPK); err != nil {
		t.Fatal(err)
	}
	ring, err := secret.Parse(newHex, oldHex)
	if err != nil {
		t.Fatal(err)
	}
	store, _ := open(ring)
	var out strings.Builder
	if err := rotateKeys(ctx, store, ring, log, true, &out); err == nil || !strings.Contains(err.Error(), "remain") ||
		!strings.Contains(err.Error(), "keep MAPFRONT_OLD_MASTER_KEYS_FILE") || exitCode(err) != exitFailed {
		t.Fatalf("--check before rotating: %v (exit %d), want values remaining, exit 1", err, exitCode(err))
	}
	// The demo customer's password stays under the old key until used.
	if err := rotateKeys(ctx, store, ring, log, false, &out); err == nil || exitCode(err) != exitFailed {
		t.Fatal("rotate-keys with a password hash left under the old key passed")
	}
	if left, err := store.CountKeys(ctx, ring.CurrentPrefix()); err != nil || left != (mapfront.KeyCounts{Passwords: 1}) {
		t.Fatalf("after rotate-keys %+v, %v", left, err)
	}
	_, ringAdmin := open(ring)
	if err := ringAdmin.SetPaymentPassword(ctx, "13912345678", "123456"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := rotateKeys(ctx, store, ring, log, true, &out); err != nil {
		t.Fatalf("--check after everything moved: %v", err)
	}
	if !strings.Contains(out.String(), "the 1 old key(s) of MAPFRONT_OLD_MASTER_KEYS_FILE can be removed") {
		t.Errorf("--check after everything moved said:\n%s", out.String())
	}
	// Without old keys there is nothing to remove, and --check says so.
	current, err := secret.Parse(newHex)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := rotateKeys(ctx, store, current, log, true, &out); err != nil {
		t.Fatalf("--check without old keys: %v", err)
	}
	if got := out.String(); strings.Contains(got, "can be removed") || !strings.Contains(got, "no old key is configured") {
		t.Errorf("--check without old keys said:\n%s", got)
	}
}

// A usage or configuration error of a server command is exit 2, apart from
// rotate-keys --check's exit 1 for values left under other keys: the
// README's `bin/server rotate-keys --check` without MAPFRONT_DATABASE_URL
// was exit 1, as if keys were left.
func TestServerExitCodes(t *testing.T) {
	t.Setenv("MAPFRONT_DATABASE_URL", "")
	t.Setenv("DATABASE_URL", "")
	t.Setenv("MAPFRONT_MASTER_KEY", "")
	t.Setenv("MAPFRONT_MASTER_KEY_FILE", "")
	t.Setenv("MAPFRONT_OLD_MASTER_KEYS_FILE", "")
	for _, c := range []struct {
		name string
		run  func() error
		want string
	}{
		{"rotate-keys --check, no database", func() error { return runServer("rotate-keys", []string{"--check"}) }, "no database"},
		{"migrate, no database", func() error { return runServer("migrate", nil) }, "no database"},
		{"rotate-keys, unknown flag", func() error { return runServer("rotate-keys", []string{"-no-such-flag"}) }, "no-such-flag"},
		{"rotate-keys --check, extra argument", func() error {
			return runServer("rotate-keys", []string{"--check", "-database-url", "postgres://127.0.0.1:1/x", "now"})
		}, "unexpected arguments"},
		{"rotate-keys --check, no master key", func() error {
			return runServer("rotate-keys", []string{"--check", "-database-url", "postgres://127.0.0.1:1/x"})
		}, "MAPFRONT_MASTER_KEY"},
		{"pinblock, bad key", func() error { return buildPINBlock([]string{"-key", "zz"}) }, "not hex"},
		{"certs, extra argument", func() error { return makeCerts([]string{"-dir", t.TempDir(), "x"}) }, "unexpected"},
	} {
		err := c.run()
		if err == nil || exitCode(err) != exitUsage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, exit %d; want %q, exit 2", c.name, err, exitCode(err), c.want)
		}
	}
	if err := errors.New("database unreachable"); exitCode(err) != exitFailed {
		t.Errorf("a failure: exit %d, want 1", exitCode(err))
	}
}
