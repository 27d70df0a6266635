package main

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"mapfront/internal/mtls"
	"mapfront/internal/mtls/mtlstest"
	"mapfront/server/internal/config"
)

// listServices asks conn's reflection service (v1) for the service names.
func listServices(ctx context.Context, conn *grpc.ClientConn) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	// A stream the server refuses at once may be closed before the send:
	// Send then says io.EOF, and Recv has the status (grpc-go's ClientStream
	// contract); the test flaked on the EOF under load.
	if err := s.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	r, err := s.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, sv := range r.GetListServicesResponse().GetService() {
		names = append(names, sv.GetName())
	}
	return names, nil
}

// TestReflection: every identity with a role lists the API's services by
// reflection and gets the descriptors grpcurl needs (describe, call without
// proto files); an identity without a role, and a caller without a client
// certificate, are refused; health stays open.
func TestReflection(t *testing.T) {
	var p *mtlstest.PKI
	cfg := startGRPC(t, func(c *config.Config) { p = withTestTLS(t, c) })
	ctx := context.Background()
	want := []string{"mapfront.v1.OfflineService", "mapfront.v1.AdminService", "mapfront.v1.SettlementService", "grpc.health.v1.Health"}
	for _, id := range []string{"gateway", "settlement", "operator", "admin", "auditor"} {
		names, err := listServices(ctx, dialWith(t, cfg.GRPCAddr, p.Client(id), ""))
		if err != nil {
			t.Errorf("%s: reflection: %v", id, err)
			continue
		}
		for _, w := range want {
			if !slices.Contains(names, w) {
				t.Errorf("%s: reflection lists %v, without %s", id, names, w)
			}
		}
	}

	// describe: the file that defines AdminService, with its methods.
	conn := dialWith(t, cfg.GRPCAddr, p.Client("auditor"), "")
	s, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "mapfront.v1.AdminService"}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, raw := range r.GetFileDescriptorResponse().GetFileDescriptorProto() {
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(raw, &fd); err != nil {
			t.Fatal(err)
		}
		for _, sv := range fd.GetService() {
			if sv.GetName() == "AdminService" {
				for _, m := range sv.GetMethod() {
					methods = append(methods, m.GetName())
				}
			}
		}
	}
	if !slices.Contains(methods, "GetCustomer") || !slices.Contains(methods, "TopUpCash") {
		t.Errorf("AdminService by reflection has methods %v", methods)
	}

	// The older protocol version answers too.
	old, err := reflectionv1alpha.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Send(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if r, err := old.Recv(); err != nil || len(r.GetListServicesResponse().GetService()) < 3 {
		t.Errorf("v1alpha reflection: %v, %v", r, err)
	}

	// Refused: a valid certificate without a role, and no certificate.
	if _, err := listServices(ctx, dialWith(t, cfg.GRPCAddr, p.Client("nobody"), "")); status.Code(err) != codes.PermissionDenied {
		t.Errorf("identity without a role: %v, want PermissionDenied", err)
	}
	anon := dialWith(t, cfg.GRPCAddr, mtls.Files{}, p.CAFile())
	if _, err := listServices(ctx, anon); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no client certificate: %v, want Unauthenticated", err)
	}
	if r, err := healthpb.NewHealthClient(anon).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health without a client certificate: %v, %v", r, err)
	}
}
