package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The settlement command is a client of the server's gRPC API, not a part of
// the server (issue 8, show 3): it imports no server package and not the
// gateway program. Rules both sides need live in module-level internal/
// packages.
func TestSettlementImportsNoServerOrGateway(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "mapfront/gen/mapfront/v1") {
		t.Fatalf("go list -deps does not list the gRPC API the command calls: %v", deps)
	}
	for _, dep := range deps {
		for _, banned := range []string{"mapfront/server", "mapfront/gateway"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("the settlement command imports %s", dep)
			}
		}
	}
}
