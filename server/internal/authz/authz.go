// Package authz decides who may call what on the gRPC API (SPEC section 7).
// The caller's identity is read from its verified client certificate
// (mtls.Identity: the URI SAN spiffe://mapfront/<name>, else the subject
// CN), never from a request field; its roles come from configuration
// (Roles, a file of identity=role[,role] lines); one table (table.go) maps
// every RPC to the roles allowed. Everything else is refused: a caller
// without a verified certificate gets Unauthenticated, one whose roles do
// not allow the method PermissionDenied. Only the gRPC health service is
// open to all; gRPC server reflection answers any identity with a role.
//
// The interceptors are the server's, in its one chain. The single-binary
// mode's legacy listener reaches the service through them too, in-process,
// as the identity of its configured client certificate (InProcessPeer).
package authz

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"mapfront/internal/mtls"
	"mapfront/server/internal/audit"
)

// DevIdentity is the identity of every plaintext caller when the server
// runs with MAPFRONT_INSECURE_DEV_PLAINTEXT=1 on loopback. It has no role
// unless the roles file gives it some, as for any identity.
const DevIdentity = "insecure-dev"

// Roles maps an identity to its roles.
type Roles map[string][]Role

// ParseRoles reads roles: one "identity=role[,role]" per line; blank lines
// and lines starting with # are ignored.
// Errors: a malformed line, an unknown role, an identity given twice.
func ParseRoles(r io.Reader) (Roles, error) {
	roles := Roles{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, list, ok := strings.Cut(line, "=")
		id = strings.TrimSpace(id)
		if !ok || id == "" {
			return nil, fmt.Errorf("roles line %d: want identity=role[,role]", n)
		}
		if _, dup := roles[id]; dup {
			return nil, fmt.Errorf("roles line %d: identity %q given twice", n, id)
		}
		var rs []Role
		for _, r := range strings.Split(list, ",") {
			role := Role(strings.TrimSpace(r))
			if !slices.Contains(AllRoles, role) {
				return nil, fmt.Errorf("roles line %d: unknown role %q (want %v)", n, role, AllRoles)
			}
			if !slices.Contains(rs, role) {
				rs = append(rs, role)
			}
		}
		roles[id] = rs
	}
	return roles, sc.Err()
}

// LoadRoles reads a roles file (ParseRoles).
func LoadRoles(path string) (Roles, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("roles file: %w", err)
	}
	defer f.Close()
	r, err := ParseRoles(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Authorizer holds the roles and applies the table. Create it with New.
type Authorizer struct {
	roles atomic.Pointer[Roles]
	// devPlaintext: a caller without TLS is DevIdentity (the server only
	// serves plaintext under the development flag, on loopback).
	devPlaintext bool
	log          *slog.Logger
	refused      func(method string, code codes.Code)
	now          func() time.Time
}

// Options are the Authorizer's collaborators.
type Options struct {
	// DevPlaintext must be true exactly when the server serves plaintext
	// (MAPFRONT_INSECURE_DEV_PLAINTEXT=1); callers are then DevIdentity.
	DevPlaintext bool
	Log          *slog.Logger
	// Refused is told of every refusal (metrics); may be nil.
	Refused func(method string, code codes.Code)
	// Now is the clock that a certificate's validity is checked against on
	// every call (nil: time.Now).
	Now func() time.Time
}

// New returns an Authorizer with roles.
func New(roles Roles, o Options) *Authorizer {
	a := &Authorizer{devPlaintext: o.DevPlaintext, log: o.Log, refused: o.Refused, now: o.Now}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.SetRoles(roles)
	return a
}

// SetRoles replaces the roles (a reload of the roles file); calls in flight
// keep the roles they were authorized with.
func (a *Authorizer) SetRoles(r Roles) {
	c := make(Roles, len(r))
	for id, rs := range r {
		c[id] = slices.Clone(rs)
	}
	a.roles.Store(&c)
}

// Reload re-reads the roles file at path (SIGHUP); a file that does not
// parse leaves the roles in force and is reported.
func (a *Authorizer) Reload(path string) (identities int, err error) {
	r, err := LoadRoles(path)
	if err != nil {
		return 0, err
	}
	a.SetRoles(r)
	return len(r), nil
}

// Unary is the unary server interceptor.
func (a *Authorizer) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := a.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

// Stream is the stream server interceptor.
func (a *Authorizer) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := a.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &stream{ServerStream: ss, ctx: ctx})
}

// stream carries the context with the caller to the handler.
type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

// authorize returns ctx with the caller (audit.Actor), or the refusal. It logs and counts
// refusals with the identity and the method, never the request.
func (a *Authorizer) authorize(ctx context.Context, method string) (context.Context, error) {
	if Open(method) {
		return ctx, nil
	}
	id, err := a.identity(ctx)
	if err != nil {
		a.refuse(method, "", codes.Unauthenticated, err.Error())
		return nil, status.Error(codes.Unauthenticated, "a client certificate signed by the configured CA is required")
	}
	roles := (*a.roles.Load())[id]
	allowed, known := Allowed(method)
	if !known || !slices.ContainsFunc(roles, func(r Role) bool { return slices.Contains(allowed, r) }) {
		why := "no role of the identity allows the method"
		if !known {
			why = "method not in the authorization table"
		}
		a.refuse(method, id, codes.PermissionDenied, why)
		return nil, status.Errorf(codes.PermissionDenied, "%s may not call %s", id, method)
	}
	// The audit trail records the identity and the role(s) that allowed the
	// call (server/internal/audit).
	var granted []string
	for _, r := range roles {
		if slices.Contains(allowed, r) {
			granted = append(granted, string(r))
		}
	}
	return audit.WithActor(ctx, audit.Actor{Identity: id, Role: strings.Join(granted, ","), Method: method}), nil
}

// identity reads the caller's identity from its verified certificate.
func (a *Authorizer) identity(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", fmt.Errorf("no peer")
	}
	if p.AuthInfo == nil || p.AuthInfo.AuthType() == "insecure" {
		if a.devPlaintext {
			return DevIdentity, nil
		}
		return "", fmt.Errorf("no TLS")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", fmt.Errorf("transport %s is not TLS", p.AuthInfo.AuthType())
	}
	// VerifiedChains is set only when the certificate verified against the
	// CA; a certificate merely presented is not an identity.
	if len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return "", fmt.Errorf("no verified client certificate")
	}
	// The chain was verified when the connection was made (or, in-process,
	// when the server started); a connection or a process can outlive a
	// certificate, so its validity is checked again on every call.
	now := a.now()
	for _, c := range info.State.VerifiedChains[0] {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return "", fmt.Errorf("certificate %q is not valid now (valid %s to %s)", c.Subject.CommonName,
				c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return mtls.Identity(info.State.VerifiedChains[0][0])
}

func (a *Authorizer) refuse(method, identity string, code codes.Code, why string) {
	a.log.Warn("gRPC call refused", "method", method, "identity", identity, "code", code.String(), "reason", why)
	if a.refused != nil {
		a.refused(method, code)
	}
}

// InProcessPeer is the caller a request of the single-binary mode's legacy
// listener is made as: it reaches the service in this process through the
// server's interceptors (not over a connection), carrying this peer as a
// mutual-TLS connection would. client's certificate and key are loaded
// (the key must match) and the certificate verified against client.CA for
// client authentication, as the server's TLS handshake verifies a client's;
// the peer then holds the verified chain, so Unary sees the identity and
// roles a client presenting this certificate over mTLS would have. With
// devPlaintext the peer is a plaintext one (DevIdentity), as an in-memory
// plaintext connection was.
// Errors: unreadable files, a key that does not match, a certificate that
// does not verify against the CA (expired, another CA, not for client
// authentication).
func InProcessPeer(client mtls.Files, devPlaintext bool) (*peer.Peer, error) {
	if devPlaintext {
		return &peer.Peer{Addr: inProcessAddr{}}, nil
	}
	if err := client.Check(); err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(client.Cert, client.Key)
	if err != nil {
		return nil, fmt.Errorf("client certificate %s / key %s: %w", client.Cert, client.Key, err)
	}
	ca, err := os.ReadFile(client.CA)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("CA %s: no PEM certificate in it", client.CA)
	}
	certs := make([]*x509.Certificate, len(pair.Certificate))
	for i, der := range pair.Certificate {
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", client.Cert, err)
		}
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, fmt.Errorf("client certificate %s: %w", client.Cert, err)
	}
	if _, err := mtls.Identity(certs[0]); err != nil {
		return nil, fmt.Errorf("client certificate %s: %w", client.Cert, err)
	}
	return &peer.Peer{Addr: inProcessAddr{}, AuthInfo: credentials.TLSInfo{
		State:          tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, PeerCertificates: certs, VerifiedChains: chains},
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}}, nil
}

// inProcessAddr is the address of an in-process caller.
type inProcessAddr struct{}

func (inProcessAddr) Network() string { return "in-process" }
func (inProcessAddr) String() string  { return "in-process" }
