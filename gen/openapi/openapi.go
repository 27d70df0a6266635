// Package openapi embeds the OpenAPI document of the legacy offline API.
//
// This file is hand-written; it only embeds offline.swagger.json, which
// protoc-gen-openapiv2 generates beside it (buf generate). It describes the
// gRPC messages; the document the gateway serves, of the legacy paths as they
// are on the wire, is internal/legacyopenapi's, which takes its field
// descriptions from this one.
package openapi

import _ "embed"

// Spec is the generated OpenAPI (Swagger 2.0) document, as JSON. Callers
// must treat it as read-only.
//
//go:embed offline.swagger.json
var Spec []byte
