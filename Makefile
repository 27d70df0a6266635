# mapfront: the two commands are `make run` and `make test`.
# Everything else here is what they are made of.

SHELL := /bin/bash
GO    ?= go
BIN   := bin

.PHONY: run test generate check-gen lint build demo-key stop-db clean

## run: private PostgreSQL (unless MAPFRONT_DATABASE_URL/DATABASE_URL is set),
## master key, demo PKI (.data/pki: CA, certificates, roles), migrations, demo
## data, then server and gateway together, each with its own certificate.
PKI := $(CURDIR)/.data/pki
run: build .data/master.key
	@set -euo pipefail; \
	db=$$(scripts/devdb.sh url mapfront); \
	export MAPFRONT_DATABASE_URL="$$db"; \
	if [ -z "$${MAPFRONT_MASTER_KEY:-}" ]; then export MAPFRONT_MASTER_KEY_FILE="$${MAPFRONT_MASTER_KEY_FILE:-$(CURDIR)/.data/master.key}"; fi; \
	$(BIN)/server certs -dir "$(PKI)"; \
	$(BIN)/server migrate; \
	$(BIN)/server demo; \
	scripts/console-users.sh $(BIN)/server; \
	MAPFRONT_GRPC_CA_FILE="$(PKI)/ca.crt" MAPFRONT_GRPC_CERT_FILE="$(PKI)/server.crt" MAPFRONT_GRPC_KEY_FILE="$(PKI)/server.key" \
	  MAPFRONT_ROLES_FILE="$(PKI)/roles" MAPFRONT_CONSOLE_ADDR="$${MAPFRONT_CONSOLE_ADDR:-127.0.0.1:8090}" $(BIN)/server serve & srv=$$!; \
	trap 'kill $$srv $$gw 2>/dev/null; wait' INT TERM EXIT; \
	for i in $$(seq 1 50); do (echo > /dev/tcp/127.0.0.1/9090) 2>/dev/null && break; sleep 0.2; done; \
	MAPFRONT_GRPC_CA_FILE="$(PKI)/ca.crt" MAPFRONT_GRPC_CERT_FILE="$(PKI)/gateway.crt" MAPFRONT_GRPC_KEY_FILE="$(PKI)/gateway.key" \
	  $(BIN)/gateway & gw=$$!; \
	echo "mapfront: gRPC 127.0.0.1:9090, legacy JSON http://127.0.0.1:8080/front/offline/... (Ctrl-C stops)"; \
	echo "mapfront: console http://$${MAPFRONT_CONSOLE_ADDR:-127.0.0.1:8090}/ (accounts in .data/console-passwords)"; \
	wait -n $$srv $$gw

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

## generate: gen/ from proto/ with buf and the local plugins pinned in go.mod.
generate:
	rm -rf gen/mapfront gen/openapi/*.swagger.json
	$(GO) tool buf generate

## check-gen: fail when gen/ is not what proto/ generates.
check-gen: generate
	@git diff --exit-code --stat -- gen/ && test -z "$$(git status --porcelain -- gen/)" || \
	  { echo "gen/ is stale: run 'make generate' and commit"; exit 1; }

lint:
	$(GO) tool buf lint
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); exit 1; }

stop-db:
	scripts/devdb.sh stop

clean:
	rm -rf $(BIN)

## bench: mapfront's pay throughput through the gateway next to pgbench -N on
## the same PostgreSQL (bench/README.md). BENCH_ARGS, e.g. "-customers 2000 -d 15".
.PHONY: bench
bench:
	bench/compare.sh $(BENCH_ARGS)
