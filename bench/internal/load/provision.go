package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mapfront/bench/internal/identity"
	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// ProvisionConfig says what provision creates.
type ProvisionConfig struct {
	Customers   int    // customers 0..Customers-1
	Concurrency int    // customers provisioned at once
	Password    string // payment password set for every customer
	TopUp       int64  // fen credited once per customer (reference bench-<mobile>)
	TPKHex      string // the bench terminals' PIN key
	Terminals   int    // bench terminals BENCH0001..
	Timeout     time.Duration
}

// ProvisionReport is what provision did.
type ProvisionReport struct {
	Customers int
	Failed    int
	Calls     int64
	Elapsed   time.Duration
	KCV       string
	Errors    []string // the first few failures
}

// busyRetries bounds the retries of an admin call that the server answers
// with 10018 (busy, no effect) or that finds no server for a moment.
const busyRetries = 5

// Provision registers the bench seller, store and terminals, then creates
// the customers with their password and cash balance. Every step is
// idempotent: CreateCustomer returns an existing customer with the same
// mobile and ID, SetPaymentPassword just sets it again, and TopUpCash with an
// already used reference moves nothing. So re-running is harmless and
// finishes an interrupted provisioning. progress gets a line every ten
// seconds.
func Provision(ctx context.Context, admin mapfrontv1.AdminServiceClient, cfg ProvisionConfig, progress io.Writer) (*ProvisionReport, error) {
	if cfg.Customers < 0 || cfg.Customers > identity.MaxCustomers {
		return nil, fmt.Errorf("customers %d: want 0..%d", cfg.Customers, identity.MaxCustomers)
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > maxConcurrency {
		return nil, fmt.Errorf("concurrency %d: want 1..%d", cfg.Concurrency, maxConcurrency)
	}
	if cfg.Terminals < 1 || cfg.Terminals > 9999 {
		return nil, fmt.Errorf("terminals %d: want 1..9999", cfg.Terminals)
	}
	if cfg.TopUp <= 0 {
		return nil, errors.New("top-up must be positive")
	}
	rep := &ProvisionReport{Customers: cfg.Customers}
	start := time.Now()
	var calls atomic.Int64
	call := func(name string, f func(context.Context) error) error {
		var err error
		for attempt := 0; attempt <= busyRetries; attempt++ {
			cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			err = f(cctx)
			cancel()
			calls.Add(1)
			if err == nil || !retriable(err) || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("%s: %s", name, describe(err))
		}
		return nil
	}

	if err := call("UpsertSeller", func(c context.Context) error {
		_, err := admin.UpsertSeller(c, &mapfrontv1.UpsertSellerRequest{SellerId: BenchSeller, Name: "bench seller", Enabled: true})
		return err
	}); err != nil {
		return nil, err
	}
	if err := call("UpsertStore", func(c context.Context) error {
		_, err := admin.UpsertStore(c, &mapfrontv1.UpsertStoreRequest{SellerId: BenchSeller, StoreId: BenchStore, Name: "bench store", Enabled: true})
		return err
	}); err != nil {
		return nil, err
	}
	for i := range cfg.Terminals {
		t := BenchTerminal(i)
		if err := call("UpsertTerminal "+t.TerminalID, func(c context.Context) error {
			r, err := admin.UpsertTerminal(c, &mapfrontv1.UpsertTerminalRequest{TerminalId: t.TerminalID,
				SellerId: t.SellerID, StoreId: t.StoreID, Enabled: true, TpkHex: cfg.TPKHex})
			if err == nil {
				rep.KCV = r.Kcv
			}
			return err
		}); err != nil {
			return nil, err
		}
	}

	var next, done, failed atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() { // progress
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				d := done.Load()
				fmt.Fprintf(progress, "provision: %d/%d customers (%.0f/s), %d failed\n",
					d, cfg.Customers, float64(d)/time.Since(start).Seconds(), failed.Load())
			}
		}
	}()
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= cfg.Customers {
					return
				}
				if err := provisionCustomer(admin, call, cfg, i); err != nil {
					failed.Add(1)
					mu.Lock()
					if len(rep.Errors) < 10 {
						rep.Errors = append(rep.Errors, err.Error())
					}
					mu.Unlock()
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	rep.Failed = int(failed.Load())
	rep.Calls = calls.Load()
	rep.Elapsed = time.Since(start)
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("interrupted after %d customers: %w", done.Load(), err)
	}
	if rep.Failed > 0 {
		return rep, fmt.Errorf("%d of %d customers failed", rep.Failed, cfg.Customers)
	}
	return rep, nil
}

func provisionCustomer(admin mapfrontv1.AdminServiceClient, call func(string, func(context.Context) error) error, cfg ProvisionConfig, i int) error {
	mobile, id := identity.Mobile(i), identity.IDNumber(i)
	if err := call("CreateCustomer "+mobile, func(c context.Context) error {
		_, err := admin.CreateCustomer(c, &mapfrontv1.CreateCustomerRequest{MobileNum: mobile, IdNumber: id})
		return err
	}); err != nil {
		return err
	}
	if err := call("SetPaymentPassword "+mobile, func(c context.Context) error {
		_, err := admin.SetPaymentPassword(c, &mapfrontv1.SetPaymentPasswordRequest{MobileNum: mobile, Password: cfg.Password})
		return err
	}); err != nil {
		return err
	}
	return call("TopUpCash "+mobile, func(c context.Context) error {
		resp, err := admin.TopUpCash(c, &mapfrontv1.TopUpCashRequest{MobileNum: mobile, Amount: cfg.TopUp, Reference: "bench-" + mobile})
		if err == nil && resp.GetProposal() != nil {
			// Above the server's four-eyes threshold a top-up is only a
			// proposal: nothing was credited, and every pay would be 10009.
			return fmt.Errorf("top-up of %d fen needs a supervisor's approval (proposal %d): use a -topup at or below the server's -topup-approval-above", cfg.TopUp, resp.GetProposal().GetId())
		}
		return err
	})
}

// retriable: busy (10018, nothing happened) or no server for a moment.
func retriable(err error) bool {
	if code, _, ok := Errcode(err); ok {
		return code == 10018
	}
	return status.Code(err) == codes.Unavailable
}

// describe names an admin error by its errcode when it has one.
func describe(err error) string {
	if code, msg, ok := Errcode(err); ok {
		return fmt.Sprintf("errcode %d %s", code, msg)
	}
	return err.Error()
}

// Write prints the report.
func (r *ProvisionReport) Write(w io.Writer) {
	s := r.Elapsed.Seconds()
	fmt.Fprintf(w, "provisioned %d customers in %.1fs: %.0f customers/s, %d admin calls (%.0f calls/s), %d failed; terminal key KCV %s\n",
		r.Customers-r.Failed, s, float64(r.Customers-r.Failed)/s, r.Calls, float64(r.Calls)/s, r.Failed, r.KCV)
	for _, e := range r.Errors {
		fmt.Fprintln(w, "  ", e)
	}
}
