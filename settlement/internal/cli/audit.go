package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// audit is `settlement audit`: the audit trail of changes made through
// AdminService and the queue (SPEC section 7), newest first. It needs a
// certificate whose identity has the auditor, admin or supervisor role.
func (a *app) audit(ctx context.Context, args []string) error {
	fs := a.newFlags("audit")
	identity := fs.String("identity", "", "only this caller's records (a certificate identity)")
	target := fs.String("target", "", `only this target's records, e.g. "customer:13912345678", "exception:42"`)
	since := fs.String("since", "", "from this time on: RFC 3339, or yyyyMMdd (midnight in MAPFRONT_ZONE)")
	until := fs.String("until", "", "before this time: RFC 3339, or yyyyMMdd")
	limit := fs.Int("limit", 100, "at most this many (1 to 1000)")
	fs.StringVar(&a.cfg.GRPCAddr, "grpc-addr", a.cfg.GRPCAddr, "mapfront gRPC address (MAPFRONT_GRPC_ADDR)")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	if *limit < 1 || *limit > 1000 {
		return usageErr("--limit %d: want 1 to 1000", *limit)
	}
	req := &mapfrontv1.ListAuditRequest{Identity: *identity, Target: *target, Limit: int32(*limit)}
	for _, t := range []struct {
		name, v string
		out     *string
	}{{"since", *since, &req.Since}, {"until", *until, &req.Until}} {
		if t.v == "" {
			continue
		}
		v, err := a.auditTime(t.v)
		if err != nil {
			return usageErr("--%s %q: want RFC 3339 (2026-11-29T10:00:00+08:00) or yyyyMMdd", t.name, t.v)
		}
		*t.out = v
	}
	client, err := a.admin()
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	resp, err := client.ListAudit(ctx, req)
	if err != nil {
		return explainCall("ListAudit", err, "")
	}
	if len(resp.GetRecords()) == 0 {
		fmt.Fprintln(a.env.Stdout, "No audit records.")
		return nil
	}
	w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTIME\tIDENTITY\tROLE\tMETHOD\tTARGET\tOUTCOME\tARGS")
	for _, r := range resp.GetRecords() {
		at := r.GetAt()
		if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
			at = t.In(a.cfg.Calendar.Zone).Format("2006-01-02 15:04:05")
		}
		outcome := r.GetOutcome()
		if r.GetErrcode() != 0 {
			outcome = fmt.Sprintf("%s %d", outcome, r.GetErrcode())
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetId(), at, r.GetIdentity(), r.GetRole(),
			r.GetMethod(), r.GetTarget(), outcome, r.GetArgsJson())
	}
	return w.Flush()
}

// auditTime reads an RFC 3339 time, or a yyyyMMdd date as its midnight in
// the business zone, and returns it as RFC 3339.
func (a *app) auditTime(v string) (string, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.Format(time.RFC3339), nil
	}
	t, err := time.ParseInLocation("20060102", v, a.cfg.Calendar.Zone)
	if err != nil {
		return "", err
	}
	return t.Format(time.RFC3339), nil
}
