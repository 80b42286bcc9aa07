#!/usr/bin/env bash
# Tests the generated clients against the running service: each suite starts the repository's own
# server (src/cli.ts on the pinned Node from node_modules) on random loopback ports, on a real
# docker-registry and on an OCI layout directory over TLS, and stops what it started.
#
#   scripts/test-clients.sh              all three: go, python, ts
#   scripts/test-clients.sh go python    only those
#
# Each suite also runs its language's static checks (gofmt and go vet; ruff and mypy; tsc and biome).
# A missing toolchain (go, python3 3.11+, node_modules) is a failure, never a skip. Any failing
# command fails its suite (scripts/lib/suites.sh); every suite runs even when an earlier one failed,
# and the exit status is non-zero when any failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ROOT="$PWD"
# shellcheck source=scripts/lib/suites.sh
source scripts/lib/suites.sh

suites=("$@")
((${#suites[@]} > 0)) || suites=(go python ts)
for suite in "${suites[@]}"; do
  case "$suite" in
  go | python | ts) ;;
  *)
    echo "test-clients: unknown suite '$suite' (go, python or ts)" >&2
    exit 2
    ;;
  esac
done

[[ -x node_modules/.bin/node ]] || { echo "test-clients: node_modules/.bin/node missing: run npm ci" >&2; exit 1; }
command -v docker-registry >/dev/null || { echo "test-clients: docker-registry is not installed" >&2; exit 1; }
bash scripts/install-client-tools.sh
export PATH="$ROOT/.tools/bin:$ROOT/.tools/venv/bin:$ROOT/node_modules/.bin:$PATH"

# The Go client module, and the benchmark's Go watcher (bench/watch-go), which builds on it.
test_go() {
  go version
  local dir unformatted
  for dir in clients/go bench/watch-go; do
    cd "$ROOT/$dir"
    unformatted="$(gofmt -l .)"
    if [[ -n "$unformatted" ]]; then
      echo "gofmt would change these files in $dir (run gofmt -w):" >&2
      echo "$unformatted" >&2
      return 1
    fi
    go vet ./...
    go test -count=1 ./...
  done
}

test_python() {
  cd "$ROOT/clients/python"
  python --version
  ruff check .
  ruff format --check .
  mypy
  pytest
}

# The example imports the package by name, as users do, so it typechecks and runs against the
# compiled dist/ (`npm test` builds it again first: its pretest).
test_ts() {
  cd "$ROOT"
  node --version
  npm run build --workspace @oci-tfstate/client
  tsc --noEmit -p clients/ts/tsconfig.json
  biome check clients/ts
  npm test --workspace @oci-tfstate/client
}

run_suites client "${suites[@]}"
