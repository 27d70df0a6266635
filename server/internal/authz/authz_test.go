package authz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "mapfront/gen/mapfront/v1" // registers the services' descriptors
)

// serviceMethods lists the full method name of every RPC of every service
// in package mapfront.v1, from the generated descriptors.
func serviceMethods(t *testing.T) []string {
	t.Helper()
	var methods []string
	protoregistry.GlobalFiles.RangeFilesByPackage("mapfront.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				methods = append(methods, "/"+string(sd.FullName())+"/"+string(sd.Methods().Get(j).Name()))
			}
		}
		return true
	})
	if len(methods) < 30 {
		t.Fatalf("found only %d methods in mapfront.v1: %v", len(methods), methods)
	}
	return methods
}

// TestEveryMethodInTable fails when an RPC is added without deciding who
// may call it (it would be refused to everyone), or when the table names a
// method that does not exist.
func TestEveryMethodInTable(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range serviceMethods(t) {
		seen[m] = true
		roles, ok := Allowed(m)
		if !ok {
			t.Errorf("%s is not in the authorization table (table.go)", m)
			continue
		}
		if len(roles) == 0 {
			t.Errorf("%s: no role allowed", m)
		}
		if strings.Contains(m, ".OfflineService/") != (len(roles) == 1 && roles[0] == POSP) {
			t.Errorf("%s: roles %v; OfflineService is exactly posp's, and posp has nothing else", m, roles)
		}
	}
	for m := range methodRoles {
		if !seen[m] {
			t.Errorf("table names %s, which no service has", m)
		}
	}
}

// TestAuditorChangesNothing: the auditor role holds only reads, named
// List*, Get*, Find* or VerifyLedger.
func TestAuditorChangesNothing(t *testing.T) {
	for m, roles := range methodRoles {
		name := m[strings.LastIndex(m, "/")+1:]
		read := strings.HasPrefix(name, "List") || strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "Find") || name == "VerifyLedger"
		for _, r := range roles {
			if r == Auditor && !read {
				t.Errorf("auditor may call %s, which is not a read", m)
			}
		}
	}
}

func TestParseRoles(t *testing.T) {
	r, err := ParseRoles(strings.NewReader("# demo\n\ngateway=posp\n ops = operator, admin ,operator\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r["gateway"]; len(got) != 1 || got[0] != POSP {
		t.Errorf("gateway: %v", got)
	}
	if got := r["ops"]; len(got) != 2 || got[0] != Operator || got[1] != Admin {
		t.Errorf("ops: %v", got)
	}
	for _, bad := range []string{"gateway", "=posp", "x=root", "x=posp\nx=admin", "x="} {
		if _, err := ParseRoles(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// TestReload: a new roles file takes effect; one that does not parse
// leaves the roles in force.
func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roles")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a := New(Roles{"ops": {Operator}}, Options{})
	write("ops=auditor\n")
	if n, err := a.Reload(path); err != nil || n != 1 {
		t.Fatalf("reload: %d, %v", n, err)
	}
	if got := (*a.roles.Load())["ops"]; len(got) != 1 || got[0] != Auditor {
		t.Errorf("after reload ops has %v, want auditor", got)
	}
	write("ops=root\n")
	if _, err := a.Reload(path); err == nil {
		t.Error("a bad roles file reloaded")
	}
	if got := (*a.roles.Load())["ops"]; len(got) != 1 || got[0] != Auditor {
		t.Errorf("after a bad file ops has %v, want auditor still", got)
	}
}
