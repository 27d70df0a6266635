package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/enumtext"
	"mapfront/settlement/internal/calendar"
	"mapfront/settlement/internal/report"
)

// resolveActions lists the actions that resolve a queue item (SPEC
// section 6, 人工处理): the words of the API's ExceptionAction.
func resolveActions() string {
	return strings.Join(enumtext.Words[mapfrontv1.ExceptionAction](), ", ")
}

// exceptions is the manual-handling queue over AdminService.
func (a *app) exceptions(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("want list, show ID or resolve ID")
	}
	switch args[0] {
	case "list":
		return a.exceptionsList(ctx, args[1:])
	case "show":
		return a.exceptionsShow(ctx, args[1:])
	case "resolve":
		return a.exceptionsResolve(ctx, args[1:])
	}
	return usageErr("unknown exceptions command %q: want list, show or resolve", args[0])
}

func (a *app) admin() (mapfrontv1.AdminServiceClient, error) {
	if err := a.finishConfig(); err != nil {
		return nil, err
	}
	conn, err := a.dial()
	if err != nil {
		return nil, err
	}
	return mapfrontv1.NewAdminServiceClient(conn), nil
}

func (a *app) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.cfg.CallTimeout)
}

func (a *app) exceptionsList(ctx context.Context, args []string) error {
	fs := a.newFlags("exceptions list")
	state := fs.String("state", "open", "open, resolved, or all")
	date := fs.String("date", "", "business date yyyyMMdd (default all)")
	limit := fs.Int("limit", 100, "at most this many")
	fs.StringVar(&a.cfg.GRPCAddr, "grpc-addr", a.cfg.GRPCAddr, "mapfront gRPC address (MAPFRONT_GRPC_ADDR)")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	req := &mapfrontv1.ListExceptionsRequest{Limit: int32(*limit)}
	if s, ok := enumtext.Parse[mapfrontv1.ExceptionState](*state); ok {
		req.State = s
	} else if *state != "all" && *state != "" {
		return usageErr("--state %q: want %s or all", *state, strings.Join(enumtext.Words[mapfrontv1.ExceptionState](), ", "))
	}
	if *limit < 1 || *limit > 10000 {
		return usageErr("--limit %d: want 1 to 10000", *limit)
	}
	if *date != "" {
		d, err := calendar.ParseDate(*date)
		if err != nil {
			return usageErr("--date: %v", err)
		}
		req.BusinessDate = d.String()
	}
	client, err := a.admin()
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	resp, err := client.ListExceptions(ctx, req)
	if err != nil {
		return explainCall("ListExceptions", err, "")
	}
	return report.Exceptions(a.env.Stdout, resp.GetExceptions())
}

func parseID(args []string) (int64, error) {
	if len(args) != 1 {
		return 0, usageErr("want one exception ID")
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErr("exception ID %q: want a positive number", args[0])
	}
	return id, nil
}

func (a *app) exceptionsShow(ctx context.Context, args []string) error {
	fs := a.newFlags("exceptions show")
	fs.StringVar(&a.cfg.GRPCAddr, "grpc-addr", a.cfg.GRPCAddr, "mapfront gRPC address (MAPFRONT_GRPC_ADDR)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	id, err := parseID(rest)
	if err != nil {
		return err
	}
	client, err := a.admin()
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	resp, err := client.GetException(ctx, &mapfrontv1.GetExceptionRequest{Id: id})
	if err != nil {
		return explainCall(fmt.Sprintf("GetException %d", id), err, "")
	}
	return report.Exception(a.env.Stdout, resp.GetException())
}

func (a *app) exceptionsResolve(ctx context.Context, args []string) error {
	fs := a.newFlags("exceptions resolve")
	action := fs.String("action", "", resolveActions())
	operator := fs.String("operator", "", "a display name recorded after your certificate's identity (optional: the server records the identity)")
	note := fs.String("note", "", "why (recorded)")
	order := fs.String("order", "", "order ID: required for link_order, optional for activate")
	fs.StringVar(&a.cfg.GRPCAddr, "grpc-addr", a.cfg.GRPCAddr, "mapfront gRPC address (MAPFRONT_GRPC_ADDR)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	id, err := parseID(rest)
	if err != nil {
		return err
	}
	actionValue, known := enumtext.Parse[mapfrontv1.ExceptionAction](*action)
	switch {
	case !known:
		return usageErr("--action %q: want one of %s", *action, resolveActions())
	case *action == "link_order" && *order == "":
		return usageErr("--action link_order needs --order")
	case *order != "" && *action != "link_order" && *action != "activate":
		return usageErr("--order goes with --action link_order or activate")
	}
	client, err := a.admin()
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	resp, err := client.ResolveException(ctx, &mapfrontv1.ResolveExceptionRequest{
		Id:       id,
		Action:   actionValue,
		Operator: strings.TrimSpace(*operator),
		Note:     *note,
		OrderId:  *order,
	})
	if err != nil {
		return explainCall(fmt.Sprintf("ResolveException %d", id), err, "")
	}
	if p := resp.GetProposal(); p != nil {
		// activate and refund_owed move money: four eyes (SPEC section 7).
		fmt.Fprintf(a.env.Stdout, "Exception %d: %s needs a supervisor's approval; proposal %d filed by %s, expires %s.\n"+
			"Nothing has moved yet. A supervisor approves it with: settlement proposals approve %d\n\n",
			id, *action, p.GetId(), p.GetProposer(), p.GetExpiresAt(), p.GetId())
	} else if resp.GetAlready() {
		// Resolving twice is once (SPEC section 6): say so rather than
		// pretend this call did it.
		fmt.Fprintf(a.env.Stdout, "Exception %d had already been resolved; nothing changed.\n\n", id)
	} else {
		fmt.Fprintf(a.env.Stdout, "Exception %d resolved.\n\n", id)
	}
	return report.Exception(a.env.Stdout, resp.GetException())
}
