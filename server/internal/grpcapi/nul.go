package grpcapi

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// RefusalRecorder writes the audit record of a change refused before it
// reached the store (postgres.Store.AuditRefusal).
type RefusalRecorder interface {
	AuditRefusal(ctx context.Context, c audit.Change, cause error)
}

// adminPrefix is the full-name prefix of AdminService's methods.
var adminPrefix = "/" + mapfrontv1.AdminService_ServiceDesc.ServiceName + "/"

// RefuseNUL refuses an AdminService request holding U+0000 in any string
// field, nested messages, repeated fields and map keys and values included:
// proto3 allows it, PostgreSQL text does not, so it is the caller's mistake
// (10001 naming the field, e.g. "字段reference格式错误：含有控制字符U+0000"),
// never a database error (10000). A refused change (audited(method): the
// methods whose changes the store records) gets its audit record here,
// refused with 10001, the field in its args and an empty target (the
// request was not read); a refused read is answered only. It runs after
// authorization, which puts the caller in the context. Other services are
// left alone: the POSP's requests are checked by the domain (control
// characters, mapfront.HasControl), and a settlement file's bad line may
// hold a NUL, which is stored as U+FFFD.
func RefuseNUL(log *slog.Logger, rec RefusalRecorder, audited func(method string) bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, adminPrefix) {
			return h(ctx, req)
		}
		m, ok := req.(proto.Message)
		if !ok {
			return h(ctx, req)
		}
		field := nulField(m.ProtoReflect(), "")
		if field == "" {
			return h(ctx, req)
		}
		err := mapfront.Invalid(field, "含有控制字符U+0000")
		if rec != nil && audited != nil && audited(info.FullMethod) {
			op := strings.TrimPrefix(info.FullMethod, adminPrefix)
			rec.AuditRefusal(ctx, audit.Change{Op: op, Args: map[string]any{"field": field}}, err)
		}
		return nil, errorStatus(ctx, log, info.FullMethod, err)
	}
}

// nulField returns the JSON name of the first string field of m holding
// U+0000 ("reference", "product.name", "ids[2]", "labels[k]"), or "".
func nulField(m protoreflect.Message, prefix string) string {
	var found string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + fd.JSONName()
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				if found = nulValue(fd, l.Get(i), fmt.Sprintf("%s[%d]", name, i)); found != "" {
					break
				}
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				key := k.String()
				if strings.Contains(key, "\x00") {
					found = name
					return false
				}
				found = nulValue(fd.MapValue(), mv, name+"["+key+"]")
				return found == ""
			})
		default:
			found = nulValue(fd, v, name)
		}
		return found == ""
	})
	return found
}

func nulValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, name string) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if strings.Contains(v.String(), "\x00") {
			return name
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return nulField(v.Message(), name+".")
	}
	return ""
}
