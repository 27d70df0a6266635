// Package audit is the vocabulary of the audit trail (SPEC section 7): who
// makes a change (Actor, put in the context by the authorization
// interceptor), what the change is (Change), and the records read back
// (Entry, Filter). The store writes and reads the records
// (server/internal/postgres/audit.go), in the transaction of each change.
package audit

import (
	"context"
	"time"
)

// Actor is the authenticated caller of an RPC: the identity of its client
// certificate, the role that allowed the call, and the full method name.
type Actor struct {
	Identity string
	Role     string
	Method   string
}

type actorKey struct{}

// WithActor returns ctx carrying a.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor of ctx; ok is false for a change made inside
// the server process (the demo loader, a test), which the store records as
// Local.
func ActorFrom(ctx context.Context) (a Actor, ok bool) {
	a, ok = ctx.Value(actorKey{}).(Actor)
	return a, ok
}

// Local is the identity recorded for a change made without an RPC (the
// demo loader, `server` subcommands).
const Local = "local"

// Change is one audited change: the operation (the RPC's name), its target
// ("customer:13912345678", "terminal:POS01", "exception:42") and its
// non-secret arguments. Never put a password, a key or a whole ID number in
// Args.
type Change struct {
	Op     string
	Target string
	Args   map[string]any
}

// Outcomes of an Entry.
const (
	OK      = "ok"      // the change was made (or was an idempotent repeat)
	Refused = "refused" // a business rule refused it; Errcode says which
)

// Entry is one record of the audit trail.
type Entry struct {
	ID       int64
	At       time.Time
	Identity string
	Role     string
	Method   string
	Target   string
	Args     string // JSON object
	Outcome  string
	Errcode  int
}

// Filter selects entries; zero fields select everything. Entries come
// newest first, at most Limit (default 100, at most 1000), before the
// entry with id Before when it is not 0 (paging).
type Filter struct {
	Identity string
	Target   string
	Since    time.Time // inclusive
	Until    time.Time // exclusive
	Before   int64
	Limit    int
}
