package console_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mapfront/server/internal/console"
)

const lockAfter = 5

// attempt is one sign-in's answer.
type attempt struct {
	code      int
	loc, body string
	err       error
	right     bool
}

// readyClient is a client that has fetched the sign-in form (its cookie and
// CSRF token).
func readyClient(t *testing.T, base string) *client {
	c := newClient(t, base)
	c.do("GET", "/login", nil)
	if c.csrf == "" {
		t.Fatal("no CSRF token on the sign-in form")
	}
	return c
}

// post signs in without t (it runs on other goroutines).
func (c *client) post(user, password string) attempt {
	form := url.Values{"csrf": {c.csrf}, "user": {user}, "password": {password}}
	req, err := http.NewRequest("POST", c.base+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return attempt{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return attempt{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return attempt{code: resp.StatusCode, loc: resp.Header.Get("Location"), body: string(b), err: err}
}

func (a attempt) signedIn() bool { return a.code == http.StatusSeeOther && a.loc == "/" }

// lockedOut: refused as locked without its password being checked.
func (a attempt) lockedOut() bool {
	return a.code == http.StatusOK && strings.Contains(a.body, "账户已锁定，请")
}

// checkedAndRefused: its password was checked and was wrong.
func (a attempt) checkedAndRefused() bool {
	return a.code == http.StatusOK && (strings.Contains(a.body, "用户名或密码错误") || strings.Contains(a.body, "失败次数过多"))
}

// countingConsole is a console (lockAfter, the test clock) whose password
// checks are counted as they start and then wait until gate is closed.
func countingConsole(t *testing.T, s *system, o console.Options) (url string, checks *atomic.Int64, release func()) {
	t.Helper()
	o.Admin, o.Batches, o.Users, o.Now, o.LockAfter = s.admin, s.store, s.store, s.clock.Now, lockAfter
	h, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	checks = new(atomic.Int64)
	gate := make(chan struct{})
	h.WrapVerify(func(check func(string, string) (bool, error)) func(string, string) (bool, error) {
		return func(hash, password string) (bool, error) {
			checks.Add(1)
			<-gate
			return check(hash, password)
		}
	})
	url = httptestServer(t, h)
	release = sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release) // before the server closes: a failed test does not hang
	return url, checks, release
}

// The review's probe: many sign-ins to one account at once, 23 wrong
// passwords and the right one. Each attempt is counted before its password
// is checked, in the statement that checks the lock, so no more than
// lockAfter passwords are checked in a run; the right one signs in only if
// it was one of those, and then the count it cleared is consistent.
func TestConcurrentSignInsCannotPassTheLock(t *testing.T) {
	s := newSystem(t)
	base, checks, release := countingConsole(t, s, console.Options{SignIns: 4, SignInWait: time.Minute})
	release()
	const n = 24
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = readyClient(t, base)
	}
	start := make(chan struct{})
	res := make([]attempt, n)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			pw := "wrong-password-" + string(rune('a'+i))
			if i == n/2 {
				pw = s.password("alice")
			}
			<-start
			res[i] = c.post("alice", pw)
			res[i].right = i == n/2
		})
	}
	close(start)
	wg.Wait()
	var rightIn bool
	var refusedChecked, locked int
	for i, a := range res {
		switch {
		case a.err != nil:
			t.Fatalf("attempt %d: %v", i, a.err)
		case a.signedIn():
			if !a.right {
				t.Fatalf("attempt %d: a wrong password signed in", i)
			}
			rightIn = true
		case a.lockedOut():
			locked++
		case a.checkedAndRefused():
			if a.right {
				t.Fatalf("the right password was checked and refused")
			}
			refusedChecked++
		default:
			t.Fatalf("attempt %d (right %v): unexpected answer %d %q\n%s", i, a.right, a.code, a.loc, a.body)
		}
	}
	checked := refusedChecked
	if rightIn {
		checked++
	}
	if got := int(checks.Load()); got != checked {
		t.Errorf("%d passwords checked, but %d answers say theirs was", got, checked)
	}
	u, err := s.store.ConsoleUser(s.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	isLocked := u.LockedUntil != nil && u.LockedUntil.After(s.clock.Now())
	t.Logf("right password signed in: %v; checked %d, refused as locked %d; account failures %d locked %v", rightIn, checked, locked, u.Failures, isLocked)
	if !rightIn {
		// One run, never reset: exactly lockAfter checked, the rest refused
		// unchecked, and the account locked.
		if checked != lockAfter || !isLocked || u.Failures != lockAfter {
			t.Fatalf("checked %d (want %d), account locked %v failures %d", checked, lockAfter, isLocked, u.Failures)
		}
	} else {
		// The right password was one of a run's lockAfter; its success
		// cleared that run; the attempts after it make a run of their own.
		if checked > 2*lockAfter || u.Failures > lockAfter || isLocked != (u.Failures == lockAfter) {
			t.Fatalf("checked %d (at most %d), account locked %v failures %d", checked, 2*lockAfter, isLocked, u.Failures)
		}
	}
	// Whatever happened, while it is locked the right password is refused
	// without a check.
	if isLocked {
		before := checks.Load()
		if a := readyClient(t, base).post("alice", s.password("alice")); !a.lockedOut() {
			t.Errorf("the right password on the locked account: %d %q", a.code, a.loc)
		}
		if checks.Load() != before {
			t.Error("a password was checked on a locked account")
		}
	}
}

// The race the review found, made certain: wrong guesses are in flight
// (counted, their checks held) when the right password arrives. Before the
// fix the lock was read first and failures counted only after the check,
// so the right password passed the lock and cleared it. Now the attempts
// that reached the limit locked the account as they were counted, and the
// right one is refused unchecked. When the lock expires (the store's clock)
// a new run starts and the right password signs in.
func TestSignInCountedBeforeTheCheck(t *testing.T) {
	s := newSystem(t)
	base, checks, release := countingConsole(t, s, console.Options{SignIns: 12, SignInWait: time.Minute})
	const wrong = 10
	clients := make([]*client, wrong)
	for i := range clients {
		clients[i] = readyClient(t, base)
	}
	res := make(chan attempt, wrong)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { res <- c.post("alice", "wrong-password") })
	}
	// Wait until every wrong attempt is either held in its check or refused
	// as locked: the lockAfter-th count has locked the account.
	deadline := time.Now().Add(30 * time.Second)
	for checks.Load() < lockAfter || len(res) < wrong-lockAfter {
		if time.Now().After(deadline) {
			t.Fatalf("checks %d, answers %d", checks.Load(), len(res))
		}
		time.Sleep(10 * time.Millisecond)
	}
	u, err := s.store.ConsoleUser(s.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.Failures != lockAfter || u.LockedUntil == nil {
		t.Fatalf("with %d checks in flight: failures %d locked until %v, want %d and locked", lockAfter, u.Failures, u.LockedUntil, lockAfter)
	}
	rc, rightc := readyClient(t, base), make(chan attempt, 1)
	go func() { rightc <- rc.post("alice", s.password("alice")) }()
	var right attempt
	select {
	case right = <-rightc: // answered without a check
	case <-time.After(5 * time.Second): // held in a check: it passed the lock
		release()
		right = <-rightc
	}
	release()
	wg.Wait()
	close(res)
	if !right.lockedOut() {
		t.Fatalf("the right password while %d wrong ones were being checked: %d %q, want refused as locked\n%s", lockAfter, right.code, right.loc, right.body)
	}
	var lockedNow, refused int
	for a := range res {
		switch {
		case a.lockedOut():
			refused++
		case a.checkedAndRefused():
			if strings.Contains(a.body, "失败次数过多") {
				lockedNow++
			}
		default:
			t.Errorf("a wrong password: %d %q", a.code, a.loc)
		}
	}
	if checks.Load() != lockAfter || refused != wrong-lockAfter || lockedNow != 1 {
		t.Errorf("checked %d (want %d), refused unchecked %d (want %d), 'now locked' answers %d (want 1)", checks.Load(), lockAfter, refused, wrong-lockAfter, lockedNow)
	}
	// The lock expires by the store's clock: a new run, and the right
	// password signs in and clears the count.
	s.clock.set(s.clock.Now().Add(16 * time.Minute))
	if a := readyClient(t, base).post("alice", s.password("alice")); !a.signedIn() {
		t.Fatalf("after the lock expired: %d %q\n%s", a.code, a.loc, a.body)
	}
	if u, err := s.store.ConsoleUser(s.ctx, "alice"); err != nil || u.Failures != 0 || u.LockedUntil != nil {
		t.Errorf("after signing in: %v failures %d locked until %v", err, u.Failures, u.LockedUntil)
	}
}

// At most SignIns passwords are checked at once: a sign-in that finds no
// slot within SignInWait is answered 503 "busy, try again" with the
// sign-in form, and is not counted against the account.
func TestSignInsBounded(t *testing.T) {
	s := newSystem(t)
	base, checks, release := countingConsole(t, s, console.Options{SignIns: 1, SignInWait: 200 * time.Millisecond})
	first := make(chan attempt, 1)
	c1 := readyClient(t, base)
	go func() { first <- c1.post("alice", "wrong-password") }()
	for deadline := time.Now().Add(30 * time.Second); checks.Load() < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first sign-in never reached its check")
		}
	}
	// The one slot is held by the first check: an unknown name and the
	// right password alike are turned away, unchecked and uncounted.
	for _, user := range []string{"alice", "nobody"} {
		c := readyClient(t, base)
		code, _, body := c.do("POST", "/login", url.Values{"csrf": {c.csrf}, "user": {user}, "password": {s.password("alice")}})
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "繁忙") || !strings.Contains(body, `name="csrf"`) {
			t.Errorf("%s while the slot is taken: %d, want 503 with the busy message and the form\n%s", user, code, body)
		}
	}
	if u, err := s.store.ConsoleUser(s.ctx, "alice"); err != nil || u.Failures != 1 {
		t.Errorf("failures while busy: %v %d, want 1 (the held attempt only)", err, u.Failures)
	}
	release()
	if a := <-first; !a.checkedAndRefused() {
		t.Errorf("the held wrong password: %d %q", a.code, a.loc)
	}
	// The slot is free again.
	if code, loc, _ := newClient(t, base).signIn("alice", s.password("alice")); code != http.StatusSeeOther || loc != "/" {
		t.Errorf("after the slot came free: %d %q", code, loc)
	}
	if n := checks.Load(); n != 2 {
		t.Errorf("%d checks, want 2 (the busy ones unchecked)", n)
	}
}
