package legacy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// okClient is an in-process OfflineService that approves everything with an
// empty answer: under fuzzing, any errcode but 0 and 10001 is the edge's.
type okClient struct{}

func (okClient) OpenCard(context.Context, *mapfrontv1.OpenCardRequest, ...grpc.CallOption) (*mapfrontv1.OpenCardResponse, error) {
	return &mapfrontv1.OpenCardResponse{}, nil
}

func (okClient) RepealCard(context.Context, *mapfrontv1.RepealCardRequest, ...grpc.CallOption) (*mapfrontv1.RepealCardResponse, error) {
	return &mapfrontv1.RepealCardResponse{}, nil
}

func (okClient) Pay(context.Context, *mapfrontv1.PayRequest, ...grpc.CallOption) (*mapfrontv1.PayResponse, error) {
	return &mapfrontv1.PayResponse{}, nil
}

func (okClient) CancelPay(context.Context, *mapfrontv1.CancelPayRequest, ...grpc.CallOption) (*mapfrontv1.CancelPayResponse, error) {
	return &mapfrontv1.CancelPayResponse{}, nil
}

func (okClient) UndoPay(context.Context, *mapfrontv1.UndoPayRequest, ...grpc.CallOption) (*mapfrontv1.UndoPayResponse, error) {
	return &mapfrontv1.UndoPayResponse{}, nil
}

func (okClient) GetAccountInfo(context.Context, *mapfrontv1.GetAccountInfoRequest, ...grpc.CallOption) (*mapfrontv1.GetAccountInfoResponse, error) {
	return &mapfrontv1.GetAccountInfoResponse{}, nil
}

func (okClient) DownloadProduct(context.Context, *mapfrontv1.DownloadProductRequest, ...grpc.CallOption) (*mapfrontv1.DownloadProductResponse, error) {
	return &mapfrontv1.DownloadProductResponse{}, nil
}

// FuzzHandler sends any body to any legacy path through the whole handler
// (decoder, grpc-gateway, encoder). Every answer must be the envelope, with
// an errcode of SPEC section 3 and never 10000 (the backend approves all, so
// only the client can be at fault), and echo the body exactly (invalid
// UTF-8 replaced). The seeds (the document's examples and the bad-input
// corpus) run as a normal test; `go test -fuzz FuzzHandler` explores.
func FuzzHandler(f *testing.F) {
	h, err := NewHandler(okClient{}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	for i, p := range paths {
		b, err := os.ReadFile("testdata/" + p + ".json")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	for _, c := range badBodies {
		f.Add(pathIndex(c.path), []byte(c.body))
	}
	f.Add(uint8(2), []byte(`{"order":{"operatorId":"\u0000"}}`))
	f.Add(uint8(0), []byte("\ufeff{\"ID\":\"1\",}"))
	f.Add(uint8(99), []byte(`{}`))

	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := "/front/offline/" + paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var a struct {
			Errcode *int    `json:"errcode"`
			Errmsg  *string `json:"errmsg"`
			Request *string `json:"request"`
		}
		out := rec.Body.Bytes()
		if !utf8.Valid(out) || json.Unmarshal(out, &a) != nil || a.Errcode == nil || a.Errmsg == nil || a.Request == nil {
			t.Fatalf("HTTP %d: not the envelope: %.300q", rec.Code, out)
		}
		if *a.Errcode != 0 && *a.Errcode != codeMalformed {
			t.Fatalf("errcode %d %q for body %.200q: want 0 or 10001", *a.Errcode, *a.Errmsg, body)
		}
		if rec.Code >= 500 {
			t.Fatalf("HTTP %d", rec.Code)
		}
		if len(body) <= DefaultMaxBodyBytes && *a.Request != replaceInvalid(body) {
			t.Fatalf("request echo %.200q, want %.200q", *a.Request, body)
		}
	})
}

func pathIndex(name string) uint8 {
	for i, p := range paths {
		if p == name {
			return uint8(i)
		}
	}
	return 0
}

// replaceInvalid is s with each byte of invalid UTF-8 replaced by U+FFFD,
// as appendString writes it.
func replaceInvalid(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}
