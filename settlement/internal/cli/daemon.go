package cli

import (
	"context"
	"errors"

	"mapfront/settlement/internal/daemon"
	"mapfront/settlement/internal/settle"
)

// daemon settles every business day until the process is stopped.
func (a *app) daemon(ctx context.Context, args []string) error {
	fs := a.newFlags("daemon")
	a.sourceFlags(fs)
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	if err := a.finishConfig(); err != nil {
		return err
	}
	if a.cfg.Source() == nil {
		return usageErr("no file source: set MAPFRONT_FTP_ADDR or MAPFRONT_SETTLE_DIR")
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer a.close()
	job := a.job(conn)
	// A daemon's stderr is a journal, not a person: no progress line.
	job.Progress = nil

	a.log.Info("settlement daemon starting", "grpc", a.cfg.GRPCAddr, "source", job.Source.Name(a.cfg.Calendar.LastEnded(a.env.Now())),
		"zone", a.cfg.Calendar.Zone.String(), "cutover", a.cfg.Calendar.Cutover, "offset", a.cfg.Calendar.Offset,
		"deadline", a.cfg.Calendar.Deadline, "catch_up_days", a.cfg.CatchUpDays)
	d := &daemon.Daemon{
		Calendar:      a.cfg.Calendar,
		Runner:        dayRunner{job: job, app: a},
		Now:           a.env.Now,
		Sleep:         a.env.Sleep,
		RetryInterval: a.cfg.RetryInterval,
		CatchUpDays:   a.cfg.CatchUpDays,
		Retryable:     settle.Retryable,
		Log:           a.log,
	}
	err = d.Run(ctx)
	if errors.Is(err, context.Canceled) {
		// SIGINT or SIGTERM: a clean stop.
		a.log.Info("settlement daemon stopped")
		return nil
	}
	return err
}
