# Mecha: the two commands of the quick start are `make run` and `make test`.
GO      ?= go
BIN     ?= bin/mecha
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build run test test-short bench lint fuzz generate proto clean

all: build

## build: bin/mecha, and bin/mecha-sqlengine, the embedded SQL engine it starts when needed
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mecha
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(dir $(BIN))mecha-sqlengine ./cmd/mecha-sqlengine

## run: start Mecha on its built-in defaults (or CONFIG=file.yaml)
run: build
	./$(BIN) run $(if $(CONFIG),-c $(CONFIG))

## test: vet, then every test with the race detector (starts its own servers)
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

## test-short: the unit tests only, no real clients or servers
test-short:
	$(GO) test -short -count=1 ./...

## bench: Mecha side by side with the direct backend and a peer (see docs/performance.md);
## BENCH=redis, s3, mysql or grpc runs one harness, BENCHFLAGS go to each harness run,
## REDISBENCHFLAGS, S3BENCHFLAGS, MYSQLBENCHFLAGS and GRPCBENCHFLAGS to one
BENCH ?= redis s3 mysql grpc
bench: build
	$(if $(filter redis,$(BENCH)),$(GO) run ./bench/redisbench -mecha $(BIN) $(BENCHFLAGS) $(REDISBENCHFLAGS))
	$(if $(filter s3,$(BENCH)),$(GO) run ./bench/s3bench -mecha $(BIN) $(BENCHFLAGS) $(S3BENCHFLAGS))
	$(if $(filter mysql,$(BENCH)),$(GO) run ./bench/mysqlbench -mecha $(BIN) $(BENCHFLAGS) $(MYSQLBENCHFLAGS))
	$(if $(filter grpc,$(BENCH)),$(GO) run ./bench/grpcbench -mecha $(BIN) $(BENCHFLAGS) $(GRPCBENCHFLAGS))

## lint: formatting and vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## fuzz: fuzz the RESP parser and reply scanner (FUZZTIME=1m)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(or $(FUZZTIME),1m) -fuzzminimizetime 5s ./frontends/redis/resp
	$(GO) test -run '^$$' -fuzz '^FuzzReplyScanner$$' -fuzztime $(or $(FUZZTIME),1m) -fuzzminimizetime 5s ./frontends/redis/resp

## generate: regenerate the Redis command table from a local redis-server
generate:
	$(GO) generate ./frontends/redis/resp

## proto: regenerate grpcapi/runtimev1 from grpcapi/proto with the pinned generators
## (needs protoc: apt-get install protobuf-compiler)
PROTOC_GEN_GO_VERSION      := v1.36.6
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
proto:
	GOBIN=$(CURDIR)/bin/tools $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CURDIR)/bin/tools $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(CURDIR)/bin/tools:$$PATH protoc -I grpcapi/proto \
	  --go_out=. --go_opt=module=github.com/mecha-gateway/mecha \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/mecha-gateway/mecha \
	  grpcapi/proto/mecha/runtime/v1/*.proto

clean:
	rm -rf bin
