# kjump build, test and demo entry points. See README.md.
GO        ?= go
BIN       := bin
KJUMP_CACHE ?= /var/cache/kjump
export KJUMP_CACHE
GOFLAGS_STATIC := CGO_ENABLED=0

.PHONY: all build test unit e2e demo bench kernel deps vet fmt clean

all: build

build:
	$(GOFLAGS_STATIC) $(GO) build -trimpath -o $(BIN)/ ./cmd/hibernate ./cmd/resume

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

unit:
	$(GO) test -count=1 ./...

test: vet unit

clean:
	rm -rf $(BIN)
