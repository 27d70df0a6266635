package console

// WrapVerify replaces the server's password check with wrap(check), for
// tests that count or hold checks. Call it before the server serves.
func (s *Server) WrapVerify(wrap func(check func(hash, password string) (bool, error)) func(hash, password string) (bool, error)) {
	s.verify = wrap(s.verify)
}
