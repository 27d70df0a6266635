package load

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Op is one kind of terminal transaction the load generator sends.
type Op int

// The operations, in the order reports list them.
const (
	OpPay Op = iota
	OpQuery
	OpCancel
	OpUndo
	numOps
)

// opNames are the names used in -mix; paths the legacy paths they drive.
var (
	opNames = [numOps]string{"pay", "query", "cancel", "undo"}
	paths   = [numOps]string{"pay", "get_account_info", "pay_cancel", "pay_undo"}
)

// String is the -mix name of op.
func (op Op) String() string {
	if op < 0 || op >= numOps {
		return "Op(" + strconv.Itoa(int(op)) + ")"
	}
	return opNames[op]
}

// Path is the legacy path of op, under /front/offline/.
func (op Op) Path() string { return paths[op] }

// Mix is the relative weight of each operation.
type Mix [numOps]int

// DefaultMix is pay only: the number compared with pgbench is pay throughput.
var DefaultMix = Mix{OpPay: 100}

// ParseMix reads "pay=80,query=10,cancel=5,undo=5". Weights are
// non-negative integers (relative, they need not sum to 100); an operation
// left out weighs 0; at least one weight must be positive. An empty string is
// DefaultMix.
func ParseMix(s string) (Mix, error) {
	var m Mix
	if strings.TrimSpace(s) == "" {
		return DefaultMix, nil
	}
	seen := [numOps]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return Mix{}, fmt.Errorf("mix %q: want name=weight, got %q", s, part)
		}
		op := Op(-1)
		for i, n := range opNames {
			if strings.TrimSpace(name) == n {
				op = Op(i)
			}
		}
		if op < 0 {
			return Mix{}, fmt.Errorf("mix %q: unknown operation %q (pay, query, cancel, undo)", s, name)
		}
		if seen[op] {
			return Mix{}, fmt.Errorf("mix %q: %s given twice", s, op)
		}
		seen[op] = true
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 || w > 1_000_000 {
			return Mix{}, fmt.Errorf("mix %q: weight of %s must be an integer 0..1000000", s, op)
		}
		m[op] = w
	}
	if m.total() == 0 {
		return Mix{}, fmt.Errorf("mix %q: every weight is zero", s)
	}
	return m, nil
}

func (m Mix) total() int {
	t := 0
	for _, w := range m {
		t += w
	}
	return t
}

// Pick draws an operation with probability proportional to its weight.
func (m Mix) Pick(r *rand.Rand) Op {
	n := r.IntN(m.total())
	for op, w := range m {
		if n < w {
			return Op(op)
		}
		n -= w
	}
	return OpPay // unreachable for a parsed Mix
}

// String writes m back in the -mix syntax, zero weights left out.
func (m Mix) String() string {
	var parts []string
	for op, w := range m {
		if w > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", Op(op), w))
		}
	}
	return strings.Join(parts, ",")
}
