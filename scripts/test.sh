#!/usr/bin/env bash
# The project's test command (see README): formatting, vet, every test with
# the race detector (integration and compat tests use the real Redis,
# RabbitMQ and Python Celery; under CI=true a missing one fails), then each
# fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."

# An execution count, not a duration: Go 1.26's fuzz coordinator can fail a
# duration-bounded run with a spurious "context deadline exceeded" at the
# deadline on a loaded machine (golang/go#75804, fixed in Go 1.27). A real
# hang still fails through -timeout.
fuzztime=${FUZZTIME:-30000x}

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 -timeout 20m ./...

# Fuzz every decoder for a short, bounded time (seeds come from testdata).
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -timeout 5m "$pkg" >/tmp/celerity-fuzz.log 2>&1 || {
      cat /tmp/celerity-fuzz.log >&2
      exit 1
    }
  done
done
echo "fuzz: all targets ran without a failure"
