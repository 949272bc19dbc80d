# ulvs build and test entry points. `make test` is what CI runs (.ci/run).
GO      ?= go
BIN     := bin
PKGS    := ./...
# Every binary is pure Go: no cgo in anything we ship.
BUILD_ENV := CGO_ENABLED=0

.PHONY: all build test test-deps bench lint demo clean

all: build

build:
	@mkdir -p $(BIN)
	$(BUILD_ENV) $(GO) build -trimpath -o $(BIN)/ ./cmd/...

# Installs what the tests need (as root, with apt-get) and runs every test,
# the network-namespace ones included (they need root; under CI=true they
# must run). -race needs cgo for the race runtime only; binaries stay pure Go.
# -p 1: one package at a time, so that the lab tests (100 ms heartbeats,
# traffic through veths) do not compete with each other for the CPUs.
test: test-deps
	$(GO) vet $(PKGS)
	$(BUILD_ENV) $(GO) build ./...
	$(GO) test -race -count=1 -p 1 -timeout 18m $(PKGS)

test-deps:
	@scripts/test-deps.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	$$( command -v staticcheck || echo $$($(GO) env GOPATH)/bin/staticcheck ) $(PKGS)

# Builds a lab per forwarding method (NAT, DR, TUN), runs ulvsd in it, sends
# HTTP requests through the VIP and prints where they went. Needs root.
demo: build
	$(BIN)/ulvslab demo

clean:
	rm -rf $(BIN)
