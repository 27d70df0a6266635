package grpcapi

import (
	"context"
	"strings"
	"time"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// operatorName is who the queue records as resolving an item: the identity
// of the caller's certificate, with the typed name as a display name after
// it ("ops1 (Alice)"); a typed name can never stand in for the identity.
// Outside an authenticated call (in-process, tests) the typed name is all
// there is.
func operatorName(ctx context.Context, typed string) string {
	typed = strings.TrimSpace(typed)
	a, ok := audit.ActorFrom(ctx)
	if !ok {
		return typed
	}
	if typed == "" || typed == a.Identity {
		return a.Identity
	}
	return a.Identity + " (" + typed + ")"
}

// ListAudit implements the RPC of the same name.
func (s *AdminServer) ListAudit(ctx context.Context, in *mapfrontv1.ListAuditRequest) (*mapfrontv1.ListAuditResponse, error) {
	f := audit.Filter{Identity: in.Identity, Target: in.Target, Before: in.Before, Limit: int(in.Limit)}
	for _, t := range []struct {
		name, v string
		out     *time.Time
	}{{"since", in.Since, &f.Since}, {"until", in.Until, &f.Until}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.v)
		if err != nil {
			return nil, s.fail(ctx, "ListAudit", mapfront.Invalid(t.name, "须为RFC 3339时间"))
		}
		*t.out = v
	}
	es, err := s.Store.ListAudit(ctx, f)
	if err != nil {
		return nil, s.fail(ctx, "ListAudit", err)
	}
	out := &mapfrontv1.ListAuditResponse{}
	for _, e := range es {
		out.Records = append(out.Records, &mapfrontv1.AuditRecord{Id: e.ID, At: e.At.UTC().Format(time.RFC3339Nano),
			Identity: e.Identity, Role: e.Role, Method: e.Method, Target: e.Target, ArgsJson: e.Args,
			Outcome: e.Outcome, Errcode: int32(e.Errcode)})
	}
	return out, nil
}
