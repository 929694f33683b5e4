# pgshard: the commands a contributor and CI use. See README.md.
GO ?= go
PKGS ?= ./...
TEST_TIMEOUT ?= 9m

.PHONY: test test-docker docker-image deploy deploy-down deploy-test capacity vet fmt bench fuzz deps run soak chaos reshard-demo

## test: install what the tests need, then vet and run every test with the race detector.
test: deps vet
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

## test-docker: every test, the short chaos suite included, against dockerised PostgreSQL
## (PGSHARD_PG_BACKEND=docker). As root it installs docker.io and mmdebstrap if missing,
## starts a Docker engine if none answers (and stops it afterwards), and builds the image.
test-docker: deps vet
	GO=$(GO) PKGS="$(PKGS)" TEST_TIMEOUT=$(TEST_TIMEOUT) ./scripts/with-docker.sh ./scripts/test-docker.sh

## docker-image: the docker backend's image, pgshard/postgres:15 (or $$PGSHARD_PG_IMAGE), built
## from Debian's packages with no registry when the running Docker engine lacks it.
docker-image:
	./scripts/with-docker.sh $(GO) run ./internal/pgcluster/pgimage

## deploy: the scaled-out architecture in Docker (HAProxy, 3 server instances, 2 shards x (primary +
## 2 streaming replicas), Prometheus), every image built here; prints the URLs and runs until ^C.
deploy:
	./scripts/with-docker.sh $(GO) run ./examples/deploy up

## deploy-down: removes whatever a killed deploy, deploy-test or capacity run left.
deploy-down:
	./scripts/with-docker.sh $(GO) run ./examples/deploy down

## deploy-test: loadgen through HAProxy for 60 s while an instance is killed and restarted and a
## replica paused; checks no write is lost and no read-your-writes is broken; writes RELIABILITY.md.
deploy-test:
	./scripts/with-docker.sh $(GO) run ./examples/deploy test

## capacity: measures the deployment and writes docs/capacity.md for USERS users at RPM requests a
## minute with a PEAK x peak.
USERS ?= 1000000
RPM ?= 10
PEAK ?= 3
capacity:
	./scripts/with-docker.sh $(GO) run ./examples/capacity -users $(USERS) -rpm $(RPM) -peak $(PEAK)

## deps: the PostgreSQL server binaries the test harness starts, curl and jq for the README's
## quick start, and Chromium for the dashboard's browser test (skipped when it cannot be had).
deps:
	@./scripts/ensure-postgres.sh
	@./examples/scripts/ensure-tools.sh
	@./examples/scripts/ensure-chromium.sh

## run: the reference server with a dev cluster (2 shards x 1 replica) on 127.0.0.1:8080, until
## Ctrl-C (exit status 0). Only PostgreSQL is installed if missing; the server is built and run as
## its own process (not with go run, which reports an interrupted program as a failure), and it
## takes the terminal's foreground so that Ctrl-C stops it alone, not make.
RUN_BIN ?= $(or $(TMPDIR),/tmp)/pgshard-server
run:
	@./scripts/ensure-postgres.sh
	@./examples/scripts/ensure-tools.sh
	$(GO) build -o $(RUN_BIN) ./examples/server
	@PGSHARD_TAKE_TERMINAL=1 $(RUN_BIN) $(RUN_FLAGS)

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
FUZZ_TARGETS = \
	FuzzParseRange:./shard FuzzNewMap:./shard \
	FuzzParseLSN:./replica FuzzParseSession:./router \
	FuzzReadJSONName:./examples/server/app FuzzParseID:./examples/server/app FuzzParseTopology:./examples/server/app \
	FuzzHandler:./examples/server/app FuzzIdempotencyKey:./examples/server/app FuzzParseFile:./topology FuzzClientIP:./examples/server/app \
	FuzzParseEmail:./examples/server/app FuzzSplitter:./reshard
fuzz: deps
	@for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; pkg=$${t#*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

## soak: 10 minutes of loadgen at a steady rate against a dev server (4 shards x 1 replica) run as its
## own process; prints a markdown summary (SOAK_OUT=file keeps a copy). Exits 1 on any error or violation.
SOAK_DURATION ?= 10m
SOAK_RATE ?= 1000
soak: deps
	$(GO) run ./examples/soak -duration $(SOAK_DURATION) -rate $(SOAK_RATE) $(if $(SOAK_OUT),-out $(SOAK_OUT))

## chaos: the chaos suite at full length (about 10 minutes); regenerates RELIABILITY.md.
chaos: deps
	$(GO) test -run '^TestChaos$$' -count=1 -timeout 30m -v ./e2e -chaos=full -chaos.report=RELIABILITY.md

## reshard-demo: a dev cluster of 2 shards under loadgen, 4 shards added to it, each half of the
## keyspace split onto two of them online (copy, stream, verify, switch-writes, complete); prints what
## happened and what the clients saw, and exits 1 on a failed request, a lost write or a difference.
reshard-demo:
	@./scripts/ensure-postgres.sh
	$(GO) run ./examples/reshard
