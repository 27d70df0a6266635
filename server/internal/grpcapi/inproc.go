package grpcapi

import (
	"context"

	"google.golang.org/grpc"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// LocalOfflineClient is an OfflineServiceClient that calls the server in the
// same process: no serialization, no network hop. The server uses it to serve
// the legacy JSON paths itself in a single-binary deployment
// (MAPFRONT_LEGACY_ADDR); the errors it returns are the same status errors
// the remote gateway receives.
type LocalOfflineClient struct {
	Server mapfrontv1.OfflineServiceServer
}

var _ mapfrontv1.OfflineServiceClient = LocalOfflineClient{}

// OpenCard calls the server directly.
func (c LocalOfflineClient) OpenCard(ctx context.Context, in *mapfrontv1.OpenCardRequest, _ ...grpc.CallOption) (*mapfrontv1.OpenCardResponse, error) {
	return c.Server.OpenCard(ctx, in)
}

// RepealCard calls the server directly.
func (c LocalOfflineClient) RepealCard(ctx context.Context, in *mapfrontv1.RepealCardRequest, _ ...grpc.CallOption) (*mapfrontv1.RepealCardResponse, error) {
	return c.Server.RepealCard(ctx, in)
}

// Pay calls the server directly.
func (c LocalOfflineClient) Pay(ctx context.Context, in *mapfrontv1.PayRequest, _ ...grpc.CallOption) (*mapfrontv1.PayResponse, error) {
	return c.Server.Pay(ctx, in)
}

// CancelPay calls the server directly.
func (c LocalOfflineClient) CancelPay(ctx context.Context, in *mapfrontv1.CancelPayRequest, _ ...grpc.CallOption) (*mapfrontv1.CancelPayResponse, error) {
	return c.Server.CancelPay(ctx, in)
}

// UndoPay calls the server directly.
func (c LocalOfflineClient) UndoPay(ctx context.Context, in *mapfrontv1.UndoPayRequest, _ ...grpc.CallOption) (*mapfrontv1.UndoPayResponse, error) {
	return c.Server.UndoPay(ctx, in)
}

// GetAccountInfo calls the server directly.
func (c LocalOfflineClient) GetAccountInfo(ctx context.Context, in *mapfrontv1.GetAccountInfoRequest, _ ...grpc.CallOption) (*mapfrontv1.GetAccountInfoResponse, error) {
	return c.Server.GetAccountInfo(ctx, in)
}

// DownloadProduct calls the server directly.
func (c LocalOfflineClient) DownloadProduct(ctx context.Context, in *mapfrontv1.DownloadProductRequest, _ ...grpc.CallOption) (*mapfrontv1.DownloadProductResponse, error) {
	return c.Server.DownloadProduct(ctx, in)
}
