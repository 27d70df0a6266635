# mapfront: the two commands are `make run` and `make test`.
# Everything else here is what they are made of.

SHELL := /bin/bash
GO    ?= go
BIN   := bin

.PHONY: run run-single run-demo-day demo-settle test soak generate check-gen lint build stop-db clean

## run: private PostgreSQL (unless MAPFRONT_DATABASE_URL/DATABASE_URL is set),
## master key, demo PKI (.data/pki: CA, certificates, roles), migrations, demo
## data, then server and gateway together, each with its own certificate.
PKI := $(CURDIR)/.data/pki
## The server and the gateway run in sessions of their own (setsid), so that
## Ctrl-C reaches only this recipe, which stops them once each, in order
## (gateway first, then server), waits for both and exits 0. make itself is
## interrupted by the same Ctrl-C and so ends with the shell's 130, silently.
## .data/run.env records the business-day rule (zone, cutover) the server
## runs with, for `make demo-settle`.
run: build .data/master.key
	@set -euo pipefail; \
	db=$$(scripts/devdb.sh url mapfront); \
	export MAPFRONT_DATABASE_URL="$$db"; \
	if [ -z "$${MAPFRONT_MASTER_KEY:-}" ]; then export MAPFRONT_MASTER_KEY_FILE="$${MAPFRONT_MASTER_KEY_FILE:-$(CURDIR)/.data/master.key}"; fi; \
	export MAPFRONT_ZONE="$${MAPFRONT_ZONE:-Asia/Shanghai}" MAPFRONT_CUTOVER="$${MAPFRONT_CUTOVER:-00:00}"; \
	$(BIN)/server certs -dir "$(PKI)"; \
	$(BIN)/server migrate; \
	$(BIN)/server demo; \
	scripts/console-users.sh $(BIN)/server; \
	printf 'MAPFRONT_ZONE=%s\nMAPFRONT_CUTOVER=%s\n' "$$MAPFRONT_ZONE" "$$MAPFRONT_CUTOVER" > .data/run.env; \
	srv=; gw=; \
	stop() { trap - INT TERM HUP EXIT; \
	  for p in $$gw $$srv; do kill -TERM $$p 2>/dev/null || true; wait $$p 2>/dev/null || true; done; }; \
	trap 'stop; exit 0' INT TERM HUP; trap stop EXIT; \
	if [ "$${MAPFRONT_RUN_SINGLE:-}" = 1 ]; then \
	  export MAPFRONT_LEGACY_ADDR=127.0.0.1:8080 MAPFRONT_LEGACY_CLIENT_CERT_FILE="$(PKI)/gateway.crt" MAPFRONT_LEGACY_CLIENT_KEY_FILE="$(PKI)/gateway.key"; \
	fi; \
	MAPFRONT_GRPC_CA_FILE="$(PKI)/ca.crt" MAPFRONT_GRPC_CERT_FILE="$(PKI)/server.crt" MAPFRONT_GRPC_KEY_FILE="$(PKI)/server.key" \
	  MAPFRONT_ROLES_FILE="$(PKI)/roles" MAPFRONT_CONSOLE_ADDR="$${MAPFRONT_CONSOLE_ADDR:-127.0.0.1:8090}" setsid $(BIN)/server serve & srv=$$!; \
	for i in $$(seq 1 50); do (echo > /dev/tcp/127.0.0.1/9090) 2>/dev/null && break; sleep 0.2; done; \
	if [ "$${MAPFRONT_RUN_SINGLE:-}" != 1 ]; then \
	  MAPFRONT_GRPC_CA_FILE="$(PKI)/ca.crt" MAPFRONT_GRPC_CERT_FILE="$(PKI)/gateway.crt" MAPFRONT_GRPC_KEY_FILE="$(PKI)/gateway.key" \
	    setsid $(BIN)/gateway & gw=$$!; \
	fi; \
	echo "mapfront: gRPC 127.0.0.1:9090, legacy JSON http://127.0.0.1:8080/front/offline/... ($${MAPFRONT_RUN_SINGLE:+single binary, }business day: cutover $$MAPFRONT_CUTOVER $$MAPFRONT_ZONE; Ctrl-C stops)"; \
	echo "mapfront: console http://$${MAPFRONT_CONSOLE_ADDR:-127.0.0.1:8090}/ (accounts in .data/console-passwords)"; \
	rc=0; wait -n $$srv $$gw || rc=$$?; \
	echo "mapfront: a process stopped (exit $$rc); stopping the other" >&2; exit 1

## run-single: `make run` as one process: the server serves the legacy JSON
## paths on 127.0.0.1:8080 itself (single binary, -legacy-addr), calling its
## own gRPC API in-process with the gateway's certificate; no bin/gateway.
run-single: export MAPFRONT_RUN_SINGLE = 1
run-single: run

## run-demo-day: `make run` with the business-day cutover 3 minutes after
## start (MAPFRONT_CUTOVER, in MAPFRONT_ZONE), so that `make demo-settle` can
## settle the day of its sales a few minutes later. Demo only.
run-demo-day: export MAPFRONT_CUTOVER = $(shell TZ=$${MAPFRONT_ZONE:-Asia/Shanghai} date -d '+3 min' +%H:%M)
run-demo-day: run

## demo-settle: against a running `make run-demo-day`: card sales through the
## legacy path (one split), that day's settlement file, the settlement once
## the day has ended, the report and the activated cards (scripts/demosettle).
demo-settle:
	@test -x $(BIN)/settlement || $(MAKE) --no-print-directory build
	$(GO) run ./scripts/demosettle

## .data/master.key: a local master key for the demo, generated once, never committed.
.data/master.key:
	@mkdir -p .data && umask 077 && $(GO) run ./server keygen > $@ && echo "generated a local demo master key in $@"

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./server ./gateway ./settlement

## test: every test, with the race detector, against a real PostgreSQL: the one
## in MAPFRONT_TEST_DATABASE_URL, else a private cluster under .data/.
test:
	@set -euo pipefail; \
	admin=$$(scripts/devdb.sh admin); \
	MAPFRONT_TEST_DATABASE_URL="$$admin" $(GO) test -race -count=1 -timeout 20m ./...

## soak: the model histories (server/model_test.go) in rounds for SOAK
## (default 30m), printing how many histories and operations ran.
SOAK ?= 30m
soak:
	@set -euo pipefail; \
	admin=$$(scripts/devdb.sh admin); \
	MAPFRONT_TEST_DATABASE_URL="$$admin" $(GO) test -count=1 -timeout 0 -run 'TestModel' ./server/ -v -args -model.soak=$(SOAK) | \
	  grep --line-buffered -v -E '^=== (RUN|NAME|PAUSE|CONT)'

## generate: gen/ from proto/ with buf and the local plugins pinned in go.mod,
## then the legacy paths' OpenAPI document built from them
## (internal/legacyopenapi/legacy.swagger.json, served by the gateway).
LEGACY_OPENAPI := internal/legacyopenapi/legacy.swagger.json
generate:
	rm -rf gen/mapfront gen/openapi/*.swagger.json
	$(GO) tool buf generate
	$(GO) test -count=1 -run '^TestCheckedIn$$' ./internal/legacyopenapi -update

## check-gen: fail when gen/ is not what proto/ generates.
check-gen: generate
	@git diff --exit-code --stat -- gen/ $(LEGACY_OPENAPI) && test -z "$$(git status --porcelain -- gen/ $(LEGACY_OPENAPI))" || \
	  { echo "gen/ or $(LEGACY_OPENAPI) is stale: run 'make generate' and commit"; exit 1; }

lint:
	$(GO) tool buf lint
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); exit 1; }

stop-db:
	scripts/devdb.sh stop

clean:
	rm -rf $(BIN)

## bench-compare: from one run, pgbench -N next to mapfront's pays through the
## gateway and through the single binary on the same PostgreSQL, with ratios,
## latency, CPU per pay and the ledger verdicts (bench/README.md). BENCH_ARGS,
## e.g. "-customers 2000 -d 15" or "-tool wrk". `make bench` is the same.
.PHONY: bench bench-compare
bench-compare:
	bench/compare.sh $(BENCH_ARGS)
bench: bench-compare
