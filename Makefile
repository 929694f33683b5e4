# pgshard: the commands a contributor and CI use. See README.md.
GO ?= go
PKGS ?= ./...
TEST_TIMEOUT ?= 9m

.PHONY: test vet fmt bench fuzz deps run

## test: install what the tests need, then vet and run every test with the race detector.
test: deps vet
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

## deps: the PostgreSQL server binaries the test harness starts.
deps:
	@./scripts/ensure-postgres.sh

vet:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w .

## bench: every benchmark, with allocations.
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## fuzz: each fuzz target for FUZZTIME.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseRange$$' -fuzztime $(FUZZTIME) ./shard
	$(GO) test -run '^$$' -fuzz '^FuzzNewMap$$' -fuzztime $(FUZZTIME) ./shard
