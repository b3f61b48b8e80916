# kjump build, test and demo entry points. See README.md.
GO        ?= go
BIN       := bin
KJUMP_CACHE ?= /var/cache/kjump
export KJUMP_CACHE
GOFLAGS_STATIC := CGO_ENABLED=0

.PHONY: all build test unit e2e demo bench bench-projection bench-vm kernel kernels distro-kernel deps vet fmt clean

all: build

# What --version prints (packaging/deb.sh names the package the same way).
VERSION ?= 0.1.0~git$(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null).$(shell git rev-parse --short HEAD 2>/dev/null)
export VERSION

build:
	$(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN)/ ./cmd/hibernate ./cmd/resume

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

unit:
	$(GO) test -count=1 -timeout 30m ./...

test: deps vet unit e2e

# Test kernel (built once, cached under $(KJUMP_CACHE)/kernel/<key>/); prints its path.
kernel:
	@kernel/build.sh

# Every kernel the scenarios boot, built or fetched before any scenario
# starts so no build eats into a scenario's timeout: the 6.1 test kernel,
# the 7.3 one (reworked kexec-jump convention), Debian's stock kernel, and
# Debian 13's 6.12 with Debian's config plus KEXEC_JUMP, drivers as modules
# (kernel/distro-vm.sh: 2401 CPU seconds, about 20 min of 2 quiet cores).
kernels:
	kernel/build.sh 6.1 >/dev/null
	kernel/build.sh 7.3 >/dev/null
	kernel/stock.sh >/dev/null
	kernel/distro-vm.sh 6.12 >/dev/null

# A kernel with KEXEC_JUMP for distributions that leave it unset, as .debs:
# the running release's linux-source with its own config (docs/setup.md).
# make distro-kernel DISTRO_ARGS='--localmodconfig --out /var/tmp/kjump-kernel'
DISTRO_ARGS ?=
distro-kernel:
	kernel/distro.sh $(DISTRO_ARGS)

# VM scenarios: one "SCENARIO name: PASS|FAIL reason" line each; fails if any
# failed. Pending scenarios run only when named: make e2e KJUMP_E2E=all (or
# KJUMP_E2E=name,name). They run concurrently within KJUMP_E2E_JOBS CPU
# tokens (default: twice the host's CPU count; KJUMP_E2E_JOBS=1 runs them one by one).
KJUMP_E2E ?=
export KJUMP_E2E
e2e: kernels
	$(GO) vet -tags e2e ./e2e/...
	$(GO) test -tags e2e -c -o out/e2e.test ./e2e
	out/e2e.test -test.run '^TestScenarios$$' -test.timeout 80m

# Debian packages and Go modules (idempotent; apt runs only when something is missing).
deps:
	@./.ci/deps.sh
	$(GO) mod download

# The main job: a full hibernate -> power off -> new VM -> resume cycle.
demo: deps
	kernel/build.sh 6.1 >/dev/null
	$(GO) test -tags e2e -c -o out/e2e.test ./e2e
	KJUMP_E2E=hibernate-resume KJUMP_DEMO=1 out/e2e.test -test.run '^TestScenarios$$' -test.timeout 60m

clean:
	rm -rf $(BIN)

# bench: kjump image capture/restore vs zstd on a realistic guest memory dump
# (built once under $(KJUMP_CACHE)/bench by bench/mkdump.sh). See docs/benchmarks.md.
bench:
	bench/deps.sh
	BENCH_THREADS_TSV=out/bench/threads.tsv bench/bench.sh
	bench/charts.sh threads out/bench/threads.tsv

# bench-projection: modelled hibernate and resume times of kjump and swsusp on
# real machines (8-32 GB, NVMe to USB stick) from per-core rates measured here
# on make bench's dump. A model, not a measurement. See docs/benchmarks.md.
bench-projection:
	bench/deps.sh
	[ -f $(KJUMP_CACHE)/bench/guest-1g-vmcoreinfo.elf ] || bench/mkdump.sh $(KJUMP_CACHE)/bench/guest-1g-vmcoreinfo.elf
	$(GO) run ./bench/projection -dump $(KJUMP_CACHE)/bench/guest-1g-vmcoreinfo.elf -rates out/bench/rates.json

# bench-vm: the same VM hibernated and resumed by in-kernel swsusp and by
# kjump, alternating, medians (not part of make test). See docs/benchmarks.md.
BENCH_VM_REPEAT ?= 5
BENCH_VM_METHODS ?= swsusp,kjump,kjump-direct,swsusp-default
bench-vm: deps
	bench/deps.sh
	kernel/build.sh 6.1 >/dev/null
	$(GO) run ./bench/vm -repeat $(BENCH_VM_REPEAT) -methods $(BENCH_VM_METHODS) -results out/bench-vm/results.tsv
	bench/charts.sh vm out/bench-vm/results.tsv

# fuzz: run each image parser fuzzer and the kjump.conf one for FUZZTIME
# (default 1m). Every input that finds new code is minimized first, for up to
# FUZZMINIMIZE (go test's default, 60s, let minimizing take whole runs).
FUZZTIME ?= 1m
FUZZMINIMIZE ?= 2s
IMAGE_FUZZERS := FuzzHeader FuzzChunk FuzzS2Chunk FuzzAutoChunk FuzzEncryptedChunk FuzzImage FuzzImageFields
fuzz:
	for f in $(IMAGE_FUZZERS); do $(GO) test ./internal/image -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) || exit 1; done
	$(GO) test ./internal/config -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE)

.PHONY: fuzz

include packaging/packaging.mk
