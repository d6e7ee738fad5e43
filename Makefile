# emailclient-infra: the single entry point. `make help` lists the targets.
GO ?= go
STACK ?= dev
# Fuzz budgets in executions, not seconds: a duration (-fuzztime 20s) races Go's fuzz coordinator
# before Go 1.27 (golang/go#75804), which then fails a target with "context deadline exceeded" and no
# failing input when the machine is loaded. About 15 s each on an idle 2-core machine, up to 30 s in CI.
FUZZ_RENDER_EXECS ?= 200000x
FUZZ_SETTINGS_EXECS ?= 60000x

.PHONY: help test fuzz unit lint up preview outputs destroy pin-names config base-images
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The multi-host tier runs on its own after the others: it starts three extra Docker engines and loads
# images through the machine's engine, load that must not fall on the timing-sensitive engine tier.
test: lint ## all test tiers this machine supports (unit, real Redis, real Celery, Docker, several hosts, Pulumi engine), the fuzzers, then one line per tier
	@report=$$(mktemp); status=0; \
	EMAILCLIENT_TIER_REPORT=$$report $(GO) test -count=1 -timeout 60m $$($(GO) list ./... | grep -v '/tests/multihost$$') || status=$$?; \
	[ $$status -ne 0 ] || EMAILCLIENT_TIER_REPORT=$$report $(GO) test -count=1 -timeout 20m ./tests/multihost || status=$$?; \
	[ $$status -ne 0 ] || $(MAKE) --no-print-directory fuzz || status=$$?; \
	echo "== tiers (ran, or not run and why)"; echo "tier unit: ran"; sort -u $$report; rm -f $$report; \
	exit $$status

fuzz: ## the fuzzers, bounded by executions (FUZZ_RENDER_EXECS, FUZZ_SETTINGS_EXECS; a duration such as 30s works too)
	$(GO) test -run '^$$' -fuzz FuzzRender -fuzztime $(FUZZ_RENDER_EXECS) ./components/redisconf
	$(GO) test -run '^$$' -fuzz FuzzSettings -fuzztime $(FUZZ_SETTINGS_EXECS) ./tests/reliability

unit: ## the unit tier only (Pulumi mocks, validation, golden files)
	$(GO) test -count=1 ./stacks/... ./components/... ./tests/declared/...

lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

up: ## deploy STACK (default dev) with local file state in .pulumi-state/
	bash deployment/scripts/deploy.sh up $(STACK)

preview: ## preview STACK
	bash deployment/scripts/deploy.sh preview $(STACK)

outputs: ## show STACK's outputs (secrets hidden; see deploy.sh output)
	bash deployment/scripts/deploy.sh output $(STACK)

destroy: ## destroy STACK (the data volume is kept)
	bash deployment/scripts/deploy.sh destroy $(STACK)

pin-names: ## keep the Docker names of a STACK deployed before names were scoped by stack (see README)
	bash deployment/scripts/deploy.sh pin-names $(STACK)

config: ## print the redis.conf STACK runs
	$(GO) run ./deployment/cmd/redis-config --stack $(STACK)

base-images: ## build the offline base images the Docker tier uses
	bash deployment/scripts/build-base-images.sh

.PHONY: bench
bench: ## benchmarks with ratios against baselines in the same run; writes BENCHMARKS.md (sizes: see deployment/scripts/bench.sh)
	bash deployment/scripts/bench.sh
