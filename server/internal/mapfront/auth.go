package mapfront

// CheckTerminal applies the registry rule of SPEC section 4: the terminal
// must exist with that seller and store, and all three be enabled (10002).
func CheckTerminal(t TerminalState, o Origin) error {
	if !t.Found {
		return Errorf(CodeTerminal, "终端%s未登记或与商户、门店不符", o.TerminalID)
	}
	if !t.Enabled {
		return Errorf(CodeTerminal, "终端%s已停用", o.TerminalID)
	}
	return nil
}

// Credentials is what the service learned with the keys: whether the PIN
// block opened under the terminal's key, and whether the PIN in it matches
// the customer's password hash.
type Credentials struct {
	PINOpened  bool
	PasswordOK bool
	// Rehash is the password hashed under the current master key when it
	// verified under an old one; Authenticate stores it on success.
	Rehash []byte
}

// Authenticate applies the rules that pay and get_account_info share, in
// their order (SPEC section 5): the terminal (10002), the PIN block (10017,
// never counted as a wrong password), the consumer (10005), the password
// (10008 locked, 10014 not set, 10007 wrong with the tries left). It returns
// the failure count and lock to store, if they change, whatever the outcome.
func Authenticate(t TerminalState, o Origin, c *Customer, cred Credentials, maxFailures int) (*PasswordChange, error) {
	if err := CheckTerminal(t, o); err != nil {
		return nil, err
	}
	if !cred.PINOpened {
		return nil, Errorf(CodePINBlock, "支付密码密文无法解析")
	}
	if c == nil {
		return nil, Errorf(CodeNotFound, "消费号码不存在")
	}
	failures, locked, err := CheckPassword(c.PwHash != nil, c.Locked, c.Failures, cred.PasswordOK, maxFailures)
	var change *PasswordChange
	if failures != c.Failures || locked != c.Locked || (err == nil && cred.Rehash != nil) {
		change = &PasswordChange{CustomerID: c.ID, Failures: failures, Locked: locked}
		if err == nil {
			change.Rehash = cred.Rehash
		}
	}
	return change, err
}

// CheckPassword applies the payment password rules of SPEC section 5 to a
// customer's state and the verification result, returning the failure count
// and lock to store and the decline, if any. maxFailures wrong in a row lock:
// the wrong password that locks it is answered 10008 (ErrPasswordJustLocked,
// as ISO 8583's "PIN tries exceeded" answers the try that exhausts them),
// the ones before it 10007 with the tries left; a success resets the count.
func CheckPassword(set, locked bool, failures int, ok bool, maxFailures int) (newFailures int, newLocked bool, err error) {
	switch {
	case locked:
		return failures, true, Errorf(CodePasswordLocked, "支付密码已锁定，请联系客服解锁")
	case !set:
		return failures, false, Errorf(CodeNoPassword, "未设置支付密码")
	case ok:
		return 0, false, nil
	}
	failures++
	if failures >= maxFailures {
		return failures, true, ErrPasswordJustLocked
	}
	return failures, false, Errorf(CodeWrongPassword, "支付密码错误，还可尝试%d次", maxFailures-failures)
}

// DecideAccountQuery answers get_account_info (SPEC section 5) from what was
// read: the password rules first, then the account. It returns the password
// change to store whatever the outcome.
func DecideAccountQuery(r *AccountQuery, st *AccountQueryState, cred Credentials, maxFailures int) (*PasswordChange, *AccountInfo, error) {
	change, err := Authenticate(st.Terminal, r.Origin, st.Customer, cred, maxFailures)
	if err != nil {
		return change, nil, err
	}
	if st.Account == nil {
		return change, nil, Errorf(CodeNotFound, "消费号码不存在")
	}
	a := *st.Account
	return change, &a, nil
}
