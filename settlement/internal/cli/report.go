package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"mapfront/settlement/internal/calendar"
	"mapfront/settlement/internal/report"
)

// report prints a batch report, or writes it as CSV.
func (a *app) report(ctx context.Context, args []string) error {
	fs := a.newFlags("report")
	dateFlag := fs.String("date", "", "business date yyyyMMdd (required)")
	csvPath := fs.String("csv", "", `write CSV to this file ("-" for stdout) instead of the table`)
	fs.StringVar(&a.cfg.GRPCAddr, "grpc-addr", a.cfg.GRPCAddr, "mapfront gRPC address (MAPFRONT_GRPC_ADDR)")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	if *dateFlag == "" {
		return usageErr("--date is required")
	}
	date, err := calendar.ParseDate(*dateFlag)
	if err != nil {
		return usageErr("--date: %v", err)
	}
	if err := a.finishConfig(); err != nil {
		return err
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer a.close()
	rep, err := a.job(conn).GetBatch(ctx, date)
	if err != nil {
		return explainCall("GetBatch "+date.String(), err, "")
	}
	switch *csvPath {
	case "":
		return report.Batch(a.env.Stdout, rep)
	case "-":
		return report.BatchCSV(a.env.Stdout, rep)
	}
	if err := writeFileAtomic(*csvPath, func(f *os.File) error { return report.BatchCSV(f, rep) }); err != nil {
		return err
	}
	fmt.Fprintf(a.env.Stdout, "Report of %s written to %s\n", date, *csvPath)
	return nil
}

// writeFileAtomic writes path through a temporary file in the same
// directory, so that a reader never sees half a report.
func writeFileAtomic(path string, write func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
