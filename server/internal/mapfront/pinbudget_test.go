package mapfront

import (
	"strings"
	"testing"
	"time"
)

func TestCheckPINBudget(t *testing.T) {
	zone, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC) // 10:00 in Shanghai
	o := Origin{TerminalID: "T1"}
	for _, c := range []struct {
		name  string
		until time.Time
		want  string // "" no refusal
	}{
		{"never suspended", time.Time{}, ""},
		{"suspension over", now.Add(-time.Second), ""},
		{"ends now", now, ""},
		{"suspended", now.Add(10 * time.Minute), "终端T1支付密码错误次数过多，已暂停至2026-11-26 10:10:00"},
		{"one second left", now.Add(time.Second), "已暂停至2026-11-26 10:00:01"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckPINBudget(TerminalState{Found: true, Enabled: true, PINGuard: PINGuard{SuspendedUntil: c.until}}, o, now, zone)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if ErrorCode(err) != CodeTerminal || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want 10002 with %q", err, c.want)
			}
		})
	}
}

func TestCountPINFailure(t *testing.T) {
	now := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	o := Origin{TerminalID: "T1"}
	b := DefaultPINBudget()
	for _, c := range []struct {
		name    string
		decline error
		budget  PINBudget
		counted bool
	}{
		{"approved", nil, b, false},
		{"wrong password", Errorf(CodeWrongPassword, "x"), b, true},
		{"locked", Errorf(CodePasswordLocked, "x"), b, false},
		{"the wrong password that locks", ErrPasswordJustLocked, b, true},
		{"PIN block does not open", Errorf(CodePINBlock, "x"), b, false},
		{"no such consumer", Errorf(CodeNotFound, "x"), b, false},
		{"insufficient balance", Errorf(CodeInsufficient, "x"), b, false},
		{"budget off", Errorf(CodeWrongPassword, "x"), PINBudget{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := CountPINFailure(c.decline, o, c.budget, now)
			if (f != nil) != c.counted {
				t.Fatalf("counted %v, want %v", f != nil, c.counted)
			}
			if f != nil && (f.TerminalID != "T1" || !f.WindowFrom.Equal(now.Add(-10*time.Minute)) ||
				!f.SuspendUntil.Equal(now.Add(10*time.Minute)) || f.Limit != 20) {
				t.Fatalf("failure %+v", f)
			}
		})
	}
}

// The rule the store's statement applies (terminalPINFailureSQL), step by
// step: the 20th wrong PIN within the window suspends; an old window
// restarts at 1.
func TestPINGuardNext(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	b := DefaultPINBudget()
	fail := func(at time.Time) PINFailure {
		return *CountPINFailure(Errorf(CodeWrongPassword, "x"), Origin{TerminalID: "T1"}, b, at)
	}
	var g PINGuard
	for i := 1; i < 20; i++ {
		g = g.Next(fail(t0.Add(time.Duration(i) * time.Second)))
		if g.Failures != i || !g.SuspendedUntil.IsZero() || !g.WindowStart.Equal(t0.Add(time.Second)) {
			t.Fatalf("after %d: %+v", i, g)
		}
	}
	g = g.Next(fail(t0.Add(30 * time.Second)))
	if g.Failures != 20 || !g.SuspendedUntil.Equal(t0.Add(30*time.Second+10*time.Minute)) {
		t.Fatalf("20th: %+v", g)
	}
	// Past the window (which began at t0+1s) the count restarts; the old
	// suspension stays as it was.
	later := t0.Add(time.Second + 10*time.Minute)
	g = g.Next(fail(later))
	if g.Failures != 1 || !g.WindowStart.Equal(later) || !g.SuspendedUntil.Equal(t0.Add(30*time.Second+10*time.Minute)) {
		t.Fatalf("new window: %+v", g)
	}
	if err := (PINBudget{Limit: 5}).Validate(); err == nil {
		t.Fatal("a budget without a window validated")
	}
	if err := (PINBudget{Limit: -1}).Validate(); err == nil {
		t.Fatal("a negative limit validated")
	}
	if err := (PINBudget{}).Validate(); err != nil {
		t.Fatalf("budget off: %v", err)
	}
}
