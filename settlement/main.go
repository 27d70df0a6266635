// Command settlement is mapfront's nightly settlement (日切交割, SPEC section
// 6): it fetches the POSP's file of a business date over FTP, parses it and
// submits it to SettlementService, once (cron, a systemd timer) with `run`,
// or every business day with `daemon`; it also works the manual-handling
// queue (`exceptions`) and exports batch reports (`report`).
//
// main only wires the process to the command in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	// The zone database inside the binary: business dates must not depend
	// on the host having tzdata installed.
	_ "time/tzdata"

	"mapfront/settlement/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.OSEnv())
	stop()
	os.Exit(code)
}
