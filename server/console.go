package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"mapfront/server/internal/authz"
	"mapfront/server/internal/config"
	"mapfront/server/internal/console"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/postgres"
)

// startConsole serves the operations console on cfg.ConsoleAddr (its own
// listener; config refuses the POSP's, gRPC's and health's addresses) until
// ctx ends; a listener failure goes to errc.
func startConsole(ctx context.Context, cfg *config.Config, log *slog.Logger, store *postgres.Store, admin *mapfront.AdminService, errc chan<- error) error {
	h, err := console.New(console.Options{Admin: admin, Batches: store, Users: store, Refusals: store, Log: log, Idle: cfg.ConsoleIdle, Zone: cfg.Zone})
	if err != nil {
		return err
	}
	go func() {
		if err := console.Serve(ctx, cfg.ConsoleAddr, h, log); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("console: %w", err)
		}
	}()
	return nil
}

// consoleRoles are the roles a console account may hold: people, not
// programs (posp and settlement are certificates' roles).
var consoleRoles = []authz.Role{authz.Operator, authz.Admin, authz.Auditor, authz.Supervisor}

// consoleUser is `server console-user add NAME ROLE`: creates or resets an
// account; the password is the first line of in (at least 10 characters),
// hashed with argon2id; it never appears in arguments, logs or the audit
// trail.
func consoleUser(ctx context.Context, store *postgres.Store, args []string, in io.Reader) error {
	if len(args) != 3 || args[0] != "add" {
		return configErr(errors.New("usage: server console-user add NAME ROLE  (password on standard input)"))
	}
	name, role := args[1], authz.Role(args[2])
	if !slices.Contains(consoleRoles, role) {
		return configErr(fmt.Errorf("console-user: role %q: want one of %v", role, consoleRoles))
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	password := strings.TrimRight(line, "\r\n")
	if len([]rune(password)) < 10 {
		return configErr(errors.New("console-user: the password (standard input) must have at least 10 characters"))
	}
	hash, err := console.HashPassword(password)
	if err != nil {
		return err
	}
	if err := store.UpsertConsoleUser(ctx, name, string(role), hash); err != nil {
		return err
	}
	fmt.Printf("console account %s (%s) saved\n", name, role)
	return nil
}
