package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"mapfront/server/internal/config"
)

// commands are the server's subcommands, one line each: what `server help`
// prints and what an unknown command is told. main's switch must name the
// same (TestHelpListsEveryCommand), and so must the README's Operations →
// Commands block (TestReadmeCommands).
var commands = []struct{ name, what string }{
	{"serve", "run the gRPC server (the default when no command is given)"},
	{"migrate", "apply the embedded migrations, seal the ID numbers and open_card fingerprints still in clear, and exit"},
	{"demo", "load the demo data and exit (idempotent)"},
	{"rotate-keys", "re-seal ID numbers, terminal PIN keys and open_card fingerprints under the current master key (--check: only report; exit 1 while values are left under other keys)"},
	{"console-user", "add NAME ROLE: create or reset an operations-console account (password on standard input)"},
	{"verify-ledger", "ask a running server to prove the ledger; exit 1 if it does not"},
	{"pinblock", "print the paymentCodeDES a terminal would send for a PIN"},
	{"keygen", "print a new random master key"},
	{"certs", "create a local CA, the demo's gRPC certificates and roles file"},
	{"help", "print this help (also -h, --help)"},
}

// commandNames lists the commands for an error message.
func commandNames() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// isHelp reports whether the first argument asks for help.
func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "-help" || arg == "--help"
}

// usage prints the commands, then serve's flags (which migrate, demo,
// rotate-keys and console-user read too).
func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: server [command] [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.what)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exit codes: 0 done; 1 failed, or not done (rotate-keys: values left under other")
	fmt.Fprintln(w, "keys; verify-ledger: the ledger does not prove); 2 usage or configuration (unknown")
	fmt.Fprintln(w, "command or flag, no MAPFRONT_DATABASE_URL, no master key, missing TLS files).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Flags of serve, also read by migrate, demo, rotate-keys and console-user")
	fmt.Fprintln(w, "(server verify-ledger -h, server pinblock -h, server certs -h: theirs):")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, _ = config.Load(fs, nil) // only to register the flags: the values do not matter here
	fs.SetOutput(w)
	fs.PrintDefaults()
}
