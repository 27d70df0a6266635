package main

import (
	"context"
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
	if err := rotateKeys(ctx, store, ring, log, true); err == nil || !strings.Contains(err.Error(), "remain") {
		t.Fatalf("--check before rotating: %v, want values remaining", err)
	}
	// The demo customer's password stays under the old key until used.
	if err := rotateKeys(ctx, store, ring, log, false); err == nil {
		t.Fatal("rotate-keys with a password hash left under the old key passed")
	}
	if left, err := store.CountKeys(ctx, ring.CurrentPrefix()); err != nil || left != (mapfront.KeyCounts{Passwords: 1}) {
		t.Fatalf("after rotate-keys %+v, %v", left, err)
	}
	_, ringAdmin := open(ring)
	if err := ringAdmin.SetPaymentPassword(ctx, "13912345678", "123456"); err != nil {
		t.Fatal(err)
	}
	if err := rotateKeys(ctx, store, ring, log, true); err != nil {
		t.Fatalf("--check after everything moved: %v", err)
	}
}
