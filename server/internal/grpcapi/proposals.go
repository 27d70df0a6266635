package grpcapi

import (
	"context"
	"encoding/json"
	"time"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/server/internal/mapfront"
)

// Proposals is what the four-eyes RPCs need of the application service
// (mapfront.AdminService, SPEC section 7).
type Proposals interface {
	// SubmitResolution resolves, or proposes activate/refund_owed: 10001,
	// 10006, 10010, 10015, 10018.
	SubmitResolution(ctx context.Context, r mapfront.Resolution) (*mapfront.Exception, bool, *mapfront.Proposal, error)
	// SubmitTopUp tops up, or proposes when the top-up, alone or with the
	// account's direct top-ups of the last 24 hours, is above the limit:
	// 10001, 10003, 10005, 10006, 10015.
	SubmitTopUp(ctx context.Context, mobile string, amount int64, reference string) (string, int64, *mapfront.Proposal, error)
	// ListProposals: 10001.
	ListProposals(ctx context.Context, f mapfront.ProposalFilter) ([]mapfront.Proposal, error)
	// ApproveProposal, RejectProposal: mapfront.ErrSelfApproval (10002,
	// PermissionDenied), 10006
	// expired, 10010, the action's errcodes.
	ApproveProposal(ctx context.Context, id int64, note string) (*mapfront.Proposal, bool, error)
	RejectProposal(ctx context.Context, id int64, note string) (*mapfront.Proposal, bool, error)
}

// ProposalOut is p as the API shows it (nil for nil); state "expired" for a
// pending proposal past its expiry at now.
func ProposalOut(p *mapfront.Proposal, now time.Time) *mapfrontv1.Proposal {
	if p == nil {
		return nil
	}
	var args []byte
	if p.Resolution != nil {
		args, _ = json.Marshal(p.Resolution)
	} else if p.TopUp != nil {
		args, _ = json.Marshal(p.TopUp)
	}
	out := &mapfrontv1.Proposal{Id: p.ID, Kind: string(p.Kind), Target: p.Target, ArgsJson: string(args),
		Proposer: p.Proposer, ProposerRole: p.ProposerRole, State: p.State, Decider: p.Decider, DeciderRole: p.DeciderRole,
		DecisionNote: p.DecisionNote, Result: p.Result, CreatedAt: p.CreatedAt.Format(time.RFC3339),
		ExpiresAt: p.ExpiresAt.Format(time.RFC3339)}
	if p.Expired(now) {
		out.State = "expired"
	}
	if p.DecidedAt != nil {
		out.DecidedAt = p.DecidedAt.Format(time.RFC3339)
	}
	return out
}

// ListProposals implements the RPC of the same name.
func (s *AdminServer) ListProposals(ctx context.Context, in *mapfrontv1.ListProposalsRequest) (*mapfrontv1.ListProposalsResponse, error) {
	ps, err := s.Store.ListProposals(ctx, mapfront.ProposalFilter{State: in.State, Target: in.Target, Limit: int(in.Limit)})
	if err != nil {
		return nil, s.fail(ctx, "ListProposals", err)
	}
	out := &mapfrontv1.ListProposalsResponse{}
	now := time.Now()
	for i := range ps {
		out.Proposals = append(out.Proposals, ProposalOut(&ps[i], now))
	}
	return out, nil
}

// ApproveProposal implements the RPC of the same name.
func (s *AdminServer) ApproveProposal(ctx context.Context, in *mapfrontv1.ApproveProposalRequest) (*mapfrontv1.ApproveProposalResponse, error) {
	p, already, err := s.Store.ApproveProposal(ctx, in.Id, in.Note)
	if err != nil {
		return nil, s.fail(ctx, "ApproveProposal", err)
	}
	return &mapfrontv1.ApproveProposalResponse{Proposal: ProposalOut(p, time.Now()), Already: already}, nil
}

// RejectProposal implements the RPC of the same name.
func (s *AdminServer) RejectProposal(ctx context.Context, in *mapfrontv1.RejectProposalRequest) (*mapfrontv1.RejectProposalResponse, error) {
	p, already, err := s.Store.RejectProposal(ctx, in.Id, in.Note)
	if err != nil {
		return nil, s.fail(ctx, "RejectProposal", err)
	}
	return &mapfrontv1.RejectProposalResponse{Proposal: ProposalOut(p, time.Now()), Already: already}, nil
}
