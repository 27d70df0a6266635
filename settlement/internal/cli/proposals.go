package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// proposals is `settlement proposals`: the four-eyes proposals (SPEC
// section 7) that money moved by hand waits in. Approving or rejecting needs
// a certificate whose identity has the supervisor role and did not propose.
func (a *app) proposals(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("want list, approve ID or reject ID")
	}
	switch args[0] {
	case "list":
		return a.proposalsList(ctx, args[1:])
	case "approve", "reject":
		return a.proposalsDecide(ctx, args[0] == "approve", args[1:])
	}
	return usageErr("unknown proposals command %q: want list, approve or reject", args[0])
}

func (a *app) proposalsList(ctx context.Context, args []string) error {
	fs := a.newFlags("proposals list")
	state := fs.String("state", "pending", "pending, approved, rejected, or all")
	limit := fs.Int("limit", 100, "at most this many (1 to 1000)")
	fs.StringVar(&a.cfg.GRPCAddr, "grpc-addr", a.cfg.GRPCAddr, "mapfront gRPC address (MAPFRONT_GRPC_ADDR)")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	switch *state {
	case "pending", "approved", "rejected":
	case "all":
		*state = ""
	default:
		return usageErr("--state %q: want pending, approved, rejected or all", *state)
	}
	if *limit < 1 || *limit > 1000 {
		return usageErr("--limit %d: want 1 to 1000", *limit)
	}
	client, err := a.admin()
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	resp, err := client.ListProposals(ctx, &mapfrontv1.ListProposalsRequest{State: *state, Limit: int32(*limit)})
	if err != nil {
		return explainCall("ListProposals", err, "")
	}
	if len(resp.GetProposals()) == 0 {
		fmt.Fprintln(a.env.Stdout, "No proposals.")
		return nil
	}
	w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tKIND\tTARGET\tPROPOSER\tDECIDER\tEXPIRES\tACTION\tRESULT")
	for _, p := range resp.GetProposals() {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.GetId(), p.GetState(), p.GetKind(), p.GetTarget(),
			p.GetProposer(), p.GetDecider(), p.GetExpiresAt(), p.GetArgsJson(), p.GetResult())
	}
	return w.Flush()
}

func (a *app) proposalsDecide(ctx context.Context, approve bool, args []string) error {
	name := map[bool]string{true: "approve", false: "reject"}[approve]
	fs := a.newFlags("proposals " + name)
	note := fs.String("note", "", "why (recorded)")
	fs.StringVar(&a.cfg.GRPCAddr, "grpc-addr", a.cfg.GRPCAddr, "mapfront gRPC address (MAPFRONT_GRPC_ADDR)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageErr("want one proposal ID")
	}
	id, err := strconv.ParseInt(rest[0], 10, 64)
	if err != nil || id <= 0 {
		return usageErr("proposal ID %q: want a positive number", rest[0])
	}
	client, err := a.admin()
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	var p *mapfrontv1.Proposal
	var already bool
	if approve {
		r, err := client.ApproveProposal(ctx, &mapfrontv1.ApproveProposalRequest{Id: id, Note: *note})
		if err != nil {
			return explainCall(fmt.Sprintf("ApproveProposal %d", id), err, approvalHint(id, err))
		}
		p, already = r.GetProposal(), r.GetAlready()
	} else {
		r, err := client.RejectProposal(ctx, &mapfrontv1.RejectProposalRequest{Id: id, Note: *note})
		if err != nil {
			return explainCall(fmt.Sprintf("RejectProposal %d", id), err, "")
		}
		p, already = r.GetProposal(), r.GetAlready()
	}
	if already {
		fmt.Fprintf(a.env.Stdout, "Proposal %d had already been %s by %s; nothing changed.\n", id, p.GetState(), p.GetDecider())
		return nil
	}
	fmt.Fprintf(a.env.Stdout, "Proposal %d %s by %s (proposed by %s).\n", id, p.GetState(), p.GetDecider(), p.GetProposer())
	if p.GetResult() != "" {
		fmt.Fprintln(a.env.Stdout, p.GetResult())
	}
	return nil
}

// approvalHint says what to do after the server refused to approve
// proposal id because its action is refused now (a FailedPrecondition such
// as 10011 "该笔开卡付款已撤销，无需退款": the payment was repealed after the
// proposal was filed): nothing moved and the proposal stays pending until
// it is rejected or expires. An expired proposal (its message says so) and
// any other refusal get no hint.
func approvalHint(id int64, err error) string {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return ""
	}
	if d := errorDetail(st); d != nil && strings.Contains(d.GetErrmsg(), "过期") {
		return ""
	}
	return fmt.Sprintf("Nothing moved; proposal %d stays pending. If its action no longer applies, reject it:\n"+
		"  settlement proposals reject %d --note 'why'\n"+
		"then handle its target otherwise (a queue item: settlement exceptions show ID, then\n"+
		"  settlement exceptions resolve ID --action %s).", id, id, resolveActions())
}
