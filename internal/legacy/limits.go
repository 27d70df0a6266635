package legacy

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// Limit is a token bucket written "N/period" (20/10s, 10/1m): bursts of up
// to N requests, refilled at N per period. The zero Limit, written "off",
// limits nothing.
type Limit struct {
	N   int
	Per time.Duration
}

func (l Limit) off() bool { return l.N <= 0 || l.Per <= 0 }

func (l Limit) MarshalText() ([]byte, error) {
	if l.off() {
		return []byte("off"), nil
	}
	return []byte(strconv.Itoa(l.N) + "/" + shortDuration(l.Per)), nil
}

// shortDuration writes 1m for 1m0s and 2h for 2h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// UnmarshalText reads "N/period" (period a Go duration; a bare unit such as
// "s" or "m" means one of it) or "off".
func (l *Limit) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "off" || s == "0" {
		*l = Limit{}
		return nil
	}
	ns, per, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n <= 0 {
		return fmt.Errorf("limit %q: want N/period such as 20/10s, or off", s)
	}
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return fmt.Errorf("limit %q: bad period %q", s, per)
	}
	*l = Limit{N: n, Per: d}
	return nil
}

func (l Limit) String() string {
	b, _ := l.MarshalText()
	return string(b)
}

// Limits are the admission limits of the edge (SPEC section 7): per terminal
// (terminalId is unique across sellers, SPEC section 4), open_card per
// terminal on top of that (each may create a customer), and per source
// address (the whole POSP comes from a few addresses, so this one is wide).
// A request over a limit is answered 10018 and nothing is sent to the
// server.
type Limits struct {
	Terminal, OpenCard, Source Limit
}

// DefaultLimits: a POS terminal sends a request every few seconds at most,
// so 20 in 10 s is far above honest use and far below a scripted attack (the
// issue's 80 wrong PINs in 0.8 s); open_card creates customers, 10 a minute;
// the POSP as a whole may send 2000 a second from one address.
func DefaultLimits() Limits {
	return Limits{
		Terminal: Limit{N: 20, Per: 10 * time.Second},
		OpenCard: Limit{N: 10, Per: time.Minute},
		Source:   Limit{N: 2000, Per: time.Second},
	}
}

// maxBuckets bounds the memory of one bucket set: terminal ids and source
// addresses come from the network, so an unbounded map would be a way to
// exhaust memory. A deployment has far fewer terminals.
const maxBuckets = 100_000

// buckets is one token bucket per key under one Limit, at most maxBuckets
// of them, kept in order of last use.
//
// The key is checked before the server validates it (a terminalId from the
// body), so anyone the allowlist admits can send made-up keys. A full set
// therefore never refuses a key: refusing new keys once full let a flood of
// made-up terminal ids lock every real terminal out (10018). Instead a
// bucket whose tokens are back to full is forgotten (it answers exactly as a
// new one would, so no answer changes), and when the set is still full the
// least recently used bucket is forgotten. That one has seen maxBuckets
// other keys since its last use: at the default source limit (2000/s) that
// is 50 s from one source, long past the terminal limit's period (10 s), by
// which time its bucket is full again anyway.
type buckets struct {
	limit Limit
	mu    sync.Mutex
	m     map[string]*list.Element // of *bucket, in lru
	lru   list.List                // front: the most recently used
}

type bucket struct {
	key string
	l   *rate.Limiter
}

func newBuckets(l Limit) *buckets {
	return &buckets{limit: l, m: map[string]*list.Element{}}
}

// allow takes a token from key's bucket at now; false means over the limit.
func (b *buckets) allow(key string, now time.Time) bool {
	if b.limit.off() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Forget full buckets from the least recently used end, up to the
	// first that is not full: a bucket left alone for a whole period is
	// full, so the set holds about the keys of the last period. Each
	// bucket is forgotten once, so this costs O(1) a call on average.
	for e := b.lru.Back(); e != nil; e = b.lru.Back() {
		bk := e.Value.(*bucket)
		if bk.l.TokensAt(now) < float64(bk.l.Burst()) {
			break
		}
		b.forget(e)
	}
	e, ok := b.m[key]
	if ok {
		b.lru.MoveToFront(e)
	} else {
		if len(b.m) >= maxBuckets {
			b.forget(b.lru.Back())
		}
		l := rate.NewLimiter(rate.Limit(float64(b.limit.N)/b.limit.Per.Seconds()), b.limit.N)
		e = b.lru.PushFront(&bucket{key: key, l: l})
		b.m[key] = e
	}
	return e.Value.(*bucket).l.AllowN(now, 1)
}

func (b *buckets) forget(e *list.Element) {
	delete(b.m, e.Value.(*bucket).key)
	b.lru.Remove(e)
}

const msgRateLimited = "请求过于频繁，请稍后重试"

// rateRefusal is the answer to a request over a limit: the edge's own 10018,
// carried like the server's so that outcome maps it the same way.
func rateRefusal() error {
	st, err := status.New(codes.ResourceExhausted, "rate limited").
		WithDetails(&mapfrontv1.ErrorDetail{Errcode: codeBusy, Errmsg: msgRateLimited})
	if err != nil {
		return errors.New(msgRateLimited) // WithDetails fails only for an unmarshalable detail
	}
	return st.Err()
}

// limitedClient checks the per-terminal limits after the body is decoded
// and before anything is sent: a refused call never reaches next.
type limitedClient struct {
	next     mapfrontv1.OfflineServiceClient
	terminal *buckets
	openCard *buckets
	now      func() time.Time
	refused  func(reason string)
}

func (c *limitedClient) admit(terminalID string, openCard bool) error {
	now := c.now()
	if !c.terminal.allow(terminalID, now) {
		c.refuse(RefusedTerminalRate)
		return rateRefusal()
	}
	if openCard && !c.openCard.allow(terminalID, now) {
		c.refuse(RefusedOpenCardRate)
		return rateRefusal()
	}
	return nil
}

func (c *limitedClient) refuse(reason string) {
	if c.refused != nil {
		c.refused(reason)
	}
}

func (c *limitedClient) OpenCard(ctx context.Context, in *mapfrontv1.OpenCardRequest, opts ...grpc.CallOption) (*mapfrontv1.OpenCardResponse, error) {
	if err := c.admit(in.GetTerminalId(), true); err != nil {
		return nil, err
	}
	return c.next.OpenCard(ctx, in, opts...)
}

func (c *limitedClient) RepealCard(ctx context.Context, in *mapfrontv1.RepealCardRequest, opts ...grpc.CallOption) (*mapfrontv1.RepealCardResponse, error) {
	if err := c.admit(in.GetTerminalId(), false); err != nil {
		return nil, err
	}
	return c.next.RepealCard(ctx, in, opts...)
}

func (c *limitedClient) Pay(ctx context.Context, in *mapfrontv1.PayRequest, opts ...grpc.CallOption) (*mapfrontv1.PayResponse, error) {
	if err := c.admit(in.GetOrder().GetTerminalId(), false); err != nil {
		return nil, err
	}
	return c.next.Pay(ctx, in, opts...)
}

func (c *limitedClient) CancelPay(ctx context.Context, in *mapfrontv1.CancelPayRequest, opts ...grpc.CallOption) (*mapfrontv1.CancelPayResponse, error) {
	if err := c.admit(in.GetOrder().GetTerminalId(), false); err != nil {
		return nil, err
	}
	return c.next.CancelPay(ctx, in, opts...)
}

func (c *limitedClient) UndoPay(ctx context.Context, in *mapfrontv1.UndoPayRequest, opts ...grpc.CallOption) (*mapfrontv1.UndoPayResponse, error) {
	if err := c.admit(in.GetOrder().GetTerminalId(), false); err != nil {
		return nil, err
	}
	return c.next.UndoPay(ctx, in, opts...)
}

func (c *limitedClient) GetAccountInfo(ctx context.Context, in *mapfrontv1.GetAccountInfoRequest, opts ...grpc.CallOption) (*mapfrontv1.GetAccountInfoResponse, error) {
	if err := c.admit(in.GetQuery().GetTerminalId(), false); err != nil {
		return nil, err
	}
	return c.next.GetAccountInfo(ctx, in, opts...)
}

func (c *limitedClient) DownloadProduct(ctx context.Context, in *mapfrontv1.DownloadProductRequest, opts ...grpc.CallOption) (*mapfrontv1.DownloadProductResponse, error) {
	if err := c.admit(in.GetTerminalId(), false); err != nil {
		return nil, err
	}
	return c.next.DownloadProduct(ctx, in, opts...)
}
