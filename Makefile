# The README test command is `make test`: it brings the real services up and runs every test
# against them, failing (not skipping) when one is missing, and every benchmark once (-benchtime
# 1x: a benchmark that no longer works fails here, not in the next person's measurement).
GO ?= go
export MQTTSTORE_REQUIRE_SERVICES ?= 1

.PHONY: test test-short services services-down bench fuzz vet e2ebench

test: services
	eval "$$(scripts/services env)" && $(GO) test -race -count=1 -bench . -benchtime 1x ./...

# test-short runs the tests without the services (those needing one skip).
test-short:
	MQTTSTORE_REQUIRE_SERVICES=0 $(GO) test -race -count=1 ./...

services:
	scripts/services up

services-down:
	scripts/services down

vet:
	gofmt -l . | (! grep .) && $(GO) vet ./...

bench: services
	eval "$$(scripts/services env)" && $(GO) test -run '^$$' -bench . -benchmem ./...

# Short runs of every fuzz target (one package and target at a time, as go test requires).
FUZZTIME ?= 10s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

# End-to-end benchmark through real brokers (issue 16): see examples/e2ebench. E2EFLAGS picks
# targets and sizes, e.g. E2EFLAGS='-targets mochi,sqlite -messages 20000'.
E2EFLAGS ?=
e2ebench: services
	eval "$$(scripts/services env)" && cd examples/e2ebench && $(GO) run . -repo ../.. $(E2EFLAGS)
