package mapfront

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"mapfront/server/internal/pinblock"
)

// Service is the application service of the offline front: one method per
// OfflineService call (SPEC section 5). Each reads as the same story:
// validate the request; ask the store for the state it needs (one call,
// which holds the locks); apply the rules, pure functions of that state and
// the clock; ask the store to persist the outcome (one call, which commits).
// The service also does what needs the master key (opening PIN blocks,
// verifying and hashing passwords), so that the store holds SQL only.
type Service struct {
	store  OfflineStore
	keys   Keys
	clock  Clock
	policy Policy
	log    *slog.Logger
	group  *payGroup // group commit of pays; nil: off (GroupPays)
	budget PINBudget
	// suspended counts the requests refused because their terminal is
	// suspended (metrics); nil: not counted.
	suspended func()
}

// attempts bounds the tries of one request on transient store errors (a
// serialization failure, a deadlock, a creation race): within the call's
// deadline, then 10018.
const attempts = 4

// NewService returns the service over store.
func NewService(store OfflineStore, keys Keys, clock Clock, policy Policy, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	if clock.Now == nil {
		clock.Now = time.Now
	}
	if clock.Zone == nil {
		clock.Zone = time.UTC
	}
	return &Service{store: store, keys: keys, clock: clock, policy: policy, log: log, budget: DefaultPINBudget()}
}

// WithPINBudget sets the terminal wrong-PIN budget (SPEC section 7; default
// DefaultPINBudget) and a counter of the requests it refuses (nil: none).
func (s *Service) WithPINBudget(b PINBudget, refused func()) *Service {
	s.budget, s.suspended = b, refused
	return s
}

// pinBudget refuses a password-bearing request from a suspended terminal
// (10002) before its PIN block is opened, logging the security event
// (terminal, never the PIN block).
func (s *Service) pinBudget(t TerminalState, o Origin, now time.Time) error {
	if err := CheckTerminal(t, o); err != nil {
		return nil // the terminal's own answer comes from Authenticate
	}
	err := CheckPINBudget(t, o, now, s.clock.Zone)
	if err != nil {
		s.log.Warn("security: request from a terminal suspended for wrong PINs refused",
			"terminal", o.TerminalID, "seller", o.SellerID, "store", o.StoreID, "until", t.PINGuard.SuspendedUntil)
		if s.suspended != nil {
			s.suspended()
		}
	}
	return err
}

// countPINFailure adds a wrong PIN to the terminal's budget in the
// customer's password change (a wrong PIN always changes the customer's
// count, so change is non-nil then).
func (s *Service) countPINFailure(change *PasswordChange, decline error, o Origin, now time.Time) {
	if change == nil {
		return
	}
	change.Terminal = CountPINFailure(decline, o, s.budget, now)
}

// Pay spends from one account (SPEC section 5): by accountId that account,
// by mobile the account the policy chooses; a pay never splits. A repeat of
// the key answers the stored outcome and moves nothing. With group commit on
// (GroupPays) concurrent pays share one transaction, with the same rules
// and answers. Errors: 10001-10011, 10014, 10015, 10017, 10018.
func (s *Service) Pay(ctx context.Context, r *PayRequest) (*PaymentAnswer, error) {
	if err := r.Validate(s.policy); err != nil {
		return nil, err
	}
	fp := r.Fingerprint()
	if s.group != nil {
		return s.payGrouped(ctx, r, fp)
	}
	return s.paySingle(ctx, r, fp)
}

// paySingle is a pay as its own transaction: the path without group commit,
// and the one a rolled-back batch falls back to for each of its pays.
func (s *Service) paySingle(ctx context.Context, r *PayRequest, fp []byte) (*PaymentAnswer, error) {
	return s.payOne(ctx, r, fp, nil)
}

// payOne is paySingle telling loaded, if set, each time its load returned
// (group commit's batch of one: the next batch may then be taken).
func (s *Service) payOne(ctx context.Context, r *PayRequest, fp []byte, loaded func()) (*PaymentAnswer, error) {
	var a *PaymentAnswer
	var decline error
	err := Retry(ctx, attempts, func() error {
		a, decline = nil, nil
		st, u, err := s.store.LoadPay(ctx, r)
		if loaded != nil {
			loaded()
		}
		if err != nil {
			return err
		}
		defer u.Rollback()
		var done bool
		if a, decline, done = ReplayPay(st, fp, s.clock); done {
			return nil
		}
		now := s.clock.Now()
		if decline = s.pinBudget(st.Terminal, r.Origin, now); decline != nil {
			a = nil
			return nil // nothing to keep: the key stays free
		}
		cred, err := s.credentials(st.Terminal, r.TerminalID, r.PINBlock, r.ConsumerID, st.Customer)
		if err != nil {
			return err
		}
		var out *PayOutcome
		out, a, decline = DecidePay(r, st, cred, s.policy, s.clock, now, fp)
		s.countPINFailure(out.Password, decline, r.Origin, now)
		if decline != nil && out.Declined == nil && out.Password == nil {
			return nil // nothing to keep: the key stays free
		}
		return u.Persist(ctx, out)
	})
	return answerOr(a, decline, err)
}

// CancelPay voids a pay (消费撤销, SPEC section 5): only on the pay's own
// seller/store/terminal, within its business day, for a pay that still
// stands; the full amount goes back to the same account and the cancel is a
// new order. Errors: 10001, 10002, 10003, 10010, 10011, 10012, 10018.
func (s *Service) CancelPay(ctx context.Context, r *CancelPayRequest) (*CancelAnswer, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	fp := r.Fingerprint()
	var a *CancelAnswer
	var decline error
	err := Retry(ctx, attempts, func() error {
		a, decline = nil, nil
		st, u, err := s.store.LoadCancel(ctx, r)
		if err != nil {
			return err
		}
		defer u.Rollback()
		if st.Key != nil {
			a = new(CancelAnswer)
			decline = ReplayKey(st.Key, fp, a)
			return internalOnly(&decline)
		}
		var out *CancelOutcome
		out, a, decline = DecideCancel(r, st, s.clock, s.clock.Now(), fp)
		if out == nil {
			return internalOnly(&decline)
		}
		return u.Persist(ctx, out)
	})
	return answerOr(a, decline, err)
}

// UndoPay reverses a pay named by its terminal key (消费冲正, SPEC section 5).
// The load takes the key's lock, as every pay of the key does, so the pay
// and its reversal run one after the other: they end as
// approved-then-reversed or tombstoned-then-declined, never money moved and
// reversal lost. A repeat answers the first reversal's answer.
// Errors: 10001, 10002, 10018.
func (s *Service) UndoPay(ctx context.Context, r *UndoPayRequest) (*PaymentAnswer, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var a *PaymentAnswer
	err := Retry(ctx, attempts, func() error {
		st, u, err := s.store.LoadUndo(ctx, r)
		if err != nil {
			return err
		}
		defer u.Rollback()
		out, answer, err := DecideUndo(r, st, s.clock, s.clock.Now())
		if err != nil {
			return err
		}
		a = answer
		if out == nil {
			return nil
		}
		return u.Persist(ctx, out)
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// OpenCard records one open_card payment (SPEC section 5): the customer is
// found or created, the payment joins the customer's filling order for the
// product (or starts one with a pending card account), and under the
// immediate policy a fully paid card is activated and credited at once.
// Errors: 10001, 10002, 10003, 10004, 10015, 10016, 10018.
func (s *Service) OpenCard(ctx context.Context, r *OpenCardRequest) (*CardOrderAnswer, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	fp := r.Fingerprint()
	var err error
	if r.ID, err = SealID(s.keys, r.Mobile, r.IDNumber); err != nil {
		return nil, err
	}
	sealedFP, err := SealKeyFingerprint(s.keys, KindOpenCard, r.Key(), fp)
	if err != nil {
		return nil, err
	}
	var a *CardOrderAnswer
	var decline error
	err = Retry(ctx, attempts, func() error {
		a, decline = nil, nil
		st, u, err := s.store.LoadOpenCard(ctx, r)
		if err != nil {
			return err
		}
		defer u.Rollback()
		if st.Key != nil {
			rec, err := OpenKeyRecord(s.keys, KindOpenCard, r.Key(), st.Key)
			if err != nil {
				return err
			}
			a = new(CardOrderAnswer)
			decline = ReplayKey(rec, fp, a)
			if rec.State == KeyReversed && ErrorCode(decline) == CodeAlreadyUndone {
				// A card sale is repealed (开卡撤销) or refunded by people,
				// never reversed (冲正): say which.
				decline = Errorf(CodeAlreadyUndone, "该笔开卡付款已撤销或已记为应退款")
			}
			return internalOnly(&decline)
		}
		var pwHash []byte
		if st.Customer == nil {
			if pwHash, err = s.initialPasswordHash(r.IDNumber); err != nil {
				return err
			}
		}
		var out *OpenCardOutcome
		out, a, decline = DecideOpenCard(r, st, s.policy, s.clock, s.clock.Now(), sealedFP, pwHash)
		if out == nil {
			return internalOnly(&decline)
		}
		return u.Persist(ctx, out)
	})
	return answerOr(a, decline, err)
}

// RepealCard withdraws one open_card payment named by its terminal key (SPEC
// section 5): allowed while the payment is unsettled and the card unspent;
// value already credited is taken back and a card with nothing paid is
// closed. A repeat finds the payment repealed and answers the same.
// Errors: 10001, 10002, 10010, 10013, 10018.
func (s *Service) RepealCard(ctx context.Context, r *RepealCardRequest) (*CardOrderAnswer, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var a *CardOrderAnswer
	err := Retry(ctx, attempts, func() error {
		st, u, err := s.store.LoadRepeal(ctx, r)
		if err != nil {
			return err
		}
		defer u.Rollback()
		out, answer, err := DecideRepeal(r, st, s.clock.Now())
		if err != nil {
			return err
		}
		a = answer
		if out == nil {
			return nil
		}
		return u.Persist(ctx, out)
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// GetAccountInfo answers a balance query after the password check (SPEC
// section 5): a mobile number queries the cash account, an accountId that
// account. A wrong password is counted as in pay.
// Errors: 10001, 10002, 10005, 10007, 10008, 10014, 10017, 10018.
func (s *Service) GetAccountInfo(ctx context.Context, r *AccountQuery) (*AccountInfo, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var info *AccountInfo
	var decline error
	err := Retry(ctx, attempts, func() error {
		st, u, err := s.store.LoadAccountQuery(ctx, r)
		if err != nil {
			return err
		}
		defer u.Rollback()
		now := s.clock.Now()
		if decline = s.pinBudget(st.Terminal, r.Origin, now); decline != nil {
			info = nil
			return nil
		}
		cred, err := s.credentials(st.Terminal, r.TerminalID, r.PINBlock, r.ConsumerID, st.Customer)
		if err != nil {
			return err
		}
		var change *PasswordChange
		change, info, decline = DecideAccountQuery(r, st, cred, s.policy.MaxPasswordFailures)
		s.countPINFailure(change, decline, r.Origin, now)
		return u.Persist(ctx, change)
	})
	return answerOr(info, decline, err)
}

// DownloadProduct answers download_product: the products on sale, for a
// registered terminal. Errors: 10001, 10002, 10018.
func (s *Service) DownloadProduct(ctx context.Context, r *DownloadProductRequest) ([]Product, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var ps []Product
	err := Retry(ctx, attempts, func() error {
		t, products, err := s.store.ProductsFor(ctx, r.Origin)
		if err != nil {
			return err
		}
		if err := CheckTerminal(t, r.Origin); err != nil {
			return err
		}
		ps = products
		return nil
	})
	return ps, err
}

// credentials opens the PIN block under the terminal's key and verifies the
// PIN against the customer's password hash. A block that does not open
// (bad hex, bad format, no key, a key that does not unseal) is 10017 later,
// never a wrong password; an unusable stored hash is an internal error.
func (s *Service) credentials(t TerminalState, terminalID, block, consumerID string, c *Customer) (Credentials, error) {
	var cred Credentials
	if !t.Found || !t.Enabled {
		return cred, nil
	}
	if t.SealedTPK == nil {
		s.log.Warn("terminal has no PIN key", "terminal", terminalID)
		return cred, nil
	}
	key, err := s.keys.OpenTPK(terminalID, t.SealedTPK)
	if err != nil {
		s.log.Error("terminal PIN key does not open", "terminal", terminalID, "err", err)
		return cred, nil
	}
	keying := pinblock.DoubleLength
	if t.LegacyDES {
		keying = pinblock.LegacySingle
	}
	pin, err := pinblock.Open(block, consumerID, key, keying)
	clear(key)
	if err != nil {
		return cred, nil
	}
	cred.PINOpened = true
	if c != nil && c.PwHash != nil && !c.Locked {
		if cred.PasswordOK, err = s.keys.VerifyPassword(c.PwHash, pin); err != nil {
			return cred, fmt.Errorf("verify password of customer %d: %w", c.ID, err)
		}
		if cred.PasswordOK && !s.keys.IsCurrent(c.PwHash) {
			// Verified under an old master key: hash it again under the
			// current one, written with the outcome (SPEC section 7).
			if cred.Rehash, err = s.keys.HashPassword(pin); err != nil {
				return cred, err
			}
		}
	}
	return cred, nil
}

// initialPasswordHash hashes the policy's initial password for a new
// customer with that ID number; nil under policy none.
func (s *Service) initialPasswordHash(idNumber string) ([]byte, error) {
	return InitialPasswordHasher(s.policy, s.keys)(idNumber)
}

// internalOnly keeps an internal error as the attempt's error (so that the
// transaction is rolled back and the caller gets 10000) and leaves a
// business decline where it is.
func internalOnly(decline *error) error {
	if *decline != nil && ErrorCode(*decline) == CodeInternal {
		err := *decline
		*decline = nil
		return err
	}
	return nil
}

// answerOr returns the answer, or the decline, or the error of the attempt.
func answerOr[A any](a *A, decline, err error) (*A, error) {
	if err != nil {
		return nil, err
	}
	if decline != nil {
		return nil, decline
	}
	if a == nil {
		return nil, errors.New("no answer and no decline")
	}
	return a, nil
}
