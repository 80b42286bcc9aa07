#!/usr/bin/env bash
# Checks that each client installs and works the way its README says, outside the repository:
#
#   ts      `npm pack` of clients/ts, installed from the tarball into an empty project; the README's
#           TypeScript example typechecks there (strict tsc) and runs on the pinned Node 24
#   go      a throwaway module that `replace`s the client module with this checkout, as
#           clients/go/README.md says; the README's Go example is vetted, built and run
#   python  a wheel of clients/python, installed into a clean virtualenv (its dependencies at the
#           pinned versions of requirements-dev.txt); every module imports, and the README's
#           Python example runs
#
#   scripts/test-packages.sh              all three
#   scripts/test-packages.sh ts python    only those
#
# The examples are the first ```ts, ```go or ```python block of README.md's "## Clients" section
# and the first one of clients/<dir>/README.md (once when they agree). Each runs against the
# repository's service (on an OCI layout) with the example URL replaced by the service's, `token`
# from $OCI_TFSTATE_TOKEN, and a state in `default`; the watching ones must show a lock taken and
# released meanwhile. Any failing command fails its suite; every suite runs (scripts/lib/suites.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ROOT="$PWD"
# shellcheck source=scripts/lib/suites.sh
source scripts/lib/suites.sh
# shellcheck source=scripts/lib/service.sh
source scripts/lib/service.sh

suites=("$@")
((${#suites[@]} > 0)) || suites=(ts go python)
for suite in "${suites[@]}"; do
  case "$suite" in
  ts | go | python) ;;
  *)
    echo "test-packages: unknown suite '$suite' (ts, go or python)" >&2
    exit 2
    ;;
  esac
done

[[ -x node_modules/.bin/node ]] || { echo "test-packages: node_modules/.bin/node missing: run npm ci" >&2; exit 1; }
bash scripts/install-client-tools.sh
export NODE="$ROOT/node_modules/.bin/node"
export OCI_TFSTATE_TOKEN="readme-example-token"
# The URL the README examples use; replaced by the running service's.
export EXAMPLE_URL="https://tfstate.example.com"

# A fresh directory for the suite, removed with everything it started when the suite ends.
suite_dir() {
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/oci-tfstate-package-$1-XXXXXX")"
  EXAMPLE_PID=""
  trap 'suite_cleanup' EXIT
}

suite_cleanup() {
  if [[ -n "${EXAMPLE_PID:-}" ]]; then kill -KILL "$EXAMPLE_PID" 2>/dev/null || true; fi
  stop_service || true
  rm -rf "$WORK"
}

# readme_examples LANG DIR: the first ```LANG block of README.md's "## Clients" section and the
# first one of clients/DIR/README.md, each with the README's URL replaced by the service's; sets
# EXAMPLES to the distinct ones (one when both READMEs agree), each a string.
readme_examples() {
  local lang="$1" dir="$2" root_block client_block
  root_block="$(first_block "$lang" '^## Clients' "$ROOT/README.md")"
  client_block="$(first_block "$lang" '' "$ROOT/clients/$dir/README.md")"
  [[ -n "$root_block" ]] || { echo "README.md has no \`\`\`$lang block in its '## Clients' section" >&2; return 1; }
  [[ -n "$client_block" ]] || { echo "clients/$dir/README.md has no \`\`\`$lang block" >&2; return 1; }
  EXAMPLES=("${root_block//"$EXAMPLE_URL"/"$SERVICE_URL"}")
  if [[ "$client_block" != "$root_block" ]]; then
    echo "README.md and clients/$dir/README.md show different $lang examples: both run"
    EXAMPLES+=("${client_block//"$EXAMPLE_URL"/"$SERVICE_URL"}")
  fi
}

# first_block LANG SECTION-REGEX FILE: the first ```LANG block, inside the `## ` section whose
# heading matches SECTION-REGEX (anywhere in FILE when it is empty).
first_block() {
  awk -v lang="$1" -v section="$2" '
    /^## / && section != "" { inside = ($0 ~ section); next }
    (section == "" || inside) && !open && $0 == "```" lang { open = 1; next }
    open && /^```/ { exit }
    open { print }
  ' "$3"
}

# Stores a small state in `default`, as the examples read it; prints its length in bytes.
seed_state() {
  local state='{"version":4,"serial":1,"lineage":"readme-example","resources":[]}'
  rpc StateService/PutState "{\"workspace\":\"default\",\"state\":\"$(printf '%s' "$state" | base64 -w0)\"}" >/dev/null
  printf '%s' "${#state}"
}

# For the examples that watch `default` until interrupted: a lock taken and released meanwhile must
# show up twice in OUTPUT (the second time as a pushed change); then the example is stopped.
lock_and_watch() {
  local output="$1" lock_id
  lock_id="$(rpc StateService/Lock '{"workspace":"default","lock":{"who":"readme-check@ci"}}' |
    "$NODE" -p 'JSON.parse(require("node:fs").readFileSync(0, "utf8")).lock.id')"
  wait_for_output "$output" 'readme-check@ci' 1
  rpc StateService/Unlock "{\"workspace\":\"default\",\"lockId\":\"$lock_id\"}" >/dev/null
  wait_for_output "$output" 'readme-check@ci' 2
  kill -0 "$EXAMPLE_PID" || { echo "the example exited early:" >&2; cat "$output" >&2; return 1; }
  kill -TERM "$EXAMPLE_PID"
  wait "$EXAMPLE_PID" || true
  EXAMPLE_PID=""
}

test_ts() {
  suite_dir ts
  local tarball listing
  cmp "$ROOT/LICENSE" "$ROOT/clients/ts/LICENSE"
  cd "$ROOT"
  # prepack builds dist/.
  npm pack --workspace @oci-tfstate/client --pack-destination "$WORK" --loglevel=error >/dev/null
  tarball="$(echo "$WORK"/oci-tfstate-client-*.tgz)"
  [[ -f "$tarball" ]] || { echo "npm pack made no tarball in $WORK" >&2; return 1; }
  listing="$(tar -tzf "$tarball" | sort)"
  echo "$listing"
  # Compiled JavaScript and declarations only: no TypeScript sources, tests or examples.
  if grep -vE '^package/(package\.json|README\.md|LICENSE|dist/.+\.(js|d\.ts))$' <<<"$listing"; then
    echo "the tarball holds the files above, which a package must not ship" >&2
    return 1
  fi
  for f in dist/index.js dist/node.js dist/web.js dist/node.d.ts dist/gen/tfstate/v1/state_service_pb.js LICENSE; do
    grep -qx "package/$f" <<<"$listing" || { echo "the tarball lacks $f" >&2; return 1; }
  done

  mkdir "$WORK/app"
  cd "$WORK/app"
  printf '{ "name": "readme-example", "private": true, "type": "module" }\n' >package.json
  local typescript types_node
  typescript="$("$NODE" -p 'require(process.argv[1]).devDependencies.typescript' "$ROOT/package.json")"
  types_node="$("$NODE" -p 'require(process.argv[1]).devDependencies["@types/node"]' "$ROOT/package.json")"
  npm install --no-audit --no-fund --prefer-offline --loglevel=error \
    "$tarball" "typescript@$typescript" "@types/node@$types_node"
  cat >tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "target": "ES2023",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "types": ["node"],
    "strict": true,
    "exactOptionalPropertyTypes": true,
    "noUncheckedIndexedAccess": true,
    "verbatimModuleSyntax": true,
    "noEmit": true
  },
  "include": ["example-*.ts"]
}
JSON
  # Every entry point loads from the installed package.
  # shellcheck disable=SC2016 # JavaScript, not shell
  "$NODE" --input-type=module -e '
    for (const entry of ["@oci-tfstate/client", "@oci-tfstate/client/node", "@oci-tfstate/client/web"]) {
      const m = await import(entry);
      if (typeof m.createTfstateClient !== "function" || typeof m.StateService !== "object")
        throw new Error(`${entry} lacks its exports`);
    }
  '
  start_service "$WORK"
  local bytes i
  bytes="$(seed_state)"
  readme_examples ts ts
  for i in "${!EXAMPLES[@]}"; do
    printf 'const token = process.env.OCI_TFSTATE_TOKEN;\n%s\n' "${EXAMPLES[$i]}" >"example-$i.ts"
    cat "example-$i.ts"
  done
  # The package's declarations, as a strict project sees them (its own dependencies' too).
  node_modules/.bin/tsc -p tsconfig.json
  "$NODE" --version
  for i in "${!EXAMPLES[@]}"; do
    "$NODE" "example-$i.ts" >"example-$i.out" 2>&1 &
    EXAMPLE_PID=$!
    wait_for_output "example-$i.out" "^$bytes bytes"
    lock_and_watch "example-$i.out"
    cat "example-$i.out"
  done
  stop_service
}

test_go() {
  suite_dir go
  local module="github.com/oci-tfstate/oci-tfstate/clients/go" bytes i
  # A module zip holds only its own directory, so the module carries the license itself.
  cmp "$ROOT/LICENSE" "$ROOT/clients/go/LICENSE"
  go version
  start_service "$WORK"
  bytes="$(seed_state)"
  readme_examples go go
  for i in "${!EXAMPLES[@]}"; do
    mkdir "$WORK/app-$i"
    cd "$WORK/app-$i"
    go mod init example.com/readme-example
    # What clients/go/README.md tells a user to do until the module is published.
    go mod edit -replace="$module=$ROOT/clients/go"
    {
      cat <<'GO'
package main

import (
	"context"
	"fmt"
	"os"

	"connectrpc.com/connect"
	tfstatev1 "github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1"
	"github.com/oci-tfstate/oci-tfstate/clients/go/tfstate"
)

func main() {
	ctx := context.Background()
	token := os.Getenv("OCI_TFSTATE_TOKEN")
GO
      # shellcheck disable=SC2001 # indents every line
      sed 's/^/\t/' <<<"${EXAMPLES[$i]}"
      cat <<'GO'
	if _, held := tfstate.LockHolder(err); err != nil && !held {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
GO
    } >main.go
    cat main.go
    go mod tidy
    cat go.mod
    go vet ./...
    go build -o readme-example .
    # First run: reads the state and takes the lock; the second finds it held by the first.
    ./readme-example | tee first.out
    grep -q "^$bytes bytes" first.out || { echo "the example did not print the state's size ($bytes bytes)" >&2; return 1; }
    rpc StateService/GetLock '{"workspace":"default"}' | tee lock.json
    grep -q '"state":"LOCK_STATE_LOCKED"' lock.json
    grep -q '"who":"ci@runner"' lock.json
    ./readme-example | tee second.out
    grep -q "locked by ci@runner" second.out || { echo "the second run did not report the holder" >&2; return 1; }
    rpc StateService/Unlock '{"workspace":"default","force":true}' >/dev/null
  done
  stop_service
}

test_python() {
  suite_dir python
  local wheel venv="$WORK/venv" i
  cmp "$ROOT/LICENSE" "$ROOT/clients/python/LICENSE"
  "$ROOT/.tools/venv/bin/python" -m pip wheel --disable-pip-version-check --no-input --quiet \
    --no-deps --no-build-isolation --no-index --wheel-dir "$WORK/dist" "$ROOT/clients/python"
  wheel="$(echo "$WORK"/dist/oci_tfstate-*.whl)"
  [[ -f "$wheel" ]] || { echo "no wheel was built in $WORK/dist" >&2; return 1; }
  "$ROOT/.tools/venv/bin/python" -m zipfile -l "$wheel"

  # A clean environment: the wheel and its declared dependencies, at the pinned versions.
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
    --only-binary=:all: --constraint "$ROOT/clients/python/requirements-dev.txt" "$wheel"
  "$venv/bin/python" -m pip check
  cd "$WORK"
  "$venv/bin/python" - "$venv" <<'PY'
import importlib, pkgutil, sys
from importlib import metadata
import oci_tfstate

assert oci_tfstate.__file__.startswith(sys.argv[1]), f"imported from {oci_tfstate.__file__}, not the venv"
names = [m.name for m in pkgutil.walk_packages(oci_tfstate.__path__, "oci_tfstate.")]
for name in names:
    importlib.import_module(name)
for needed in ("oci_tfstate.gen.tfstate.v1.state_service_pb", "oci_tfstate.gen.tfstate.v1.state_service_connect"):
    assert needed in names, f"{needed} is not in the wheel"
files = [str(f) for f in metadata.files("oci-tfstate") or []]
assert any(f.endswith("py.typed") for f in files), "py.typed is not in the wheel"
assert any(f.endswith("LICENSE") for f in files), "LICENSE is not in the wheel"
print(f"{len(names)} modules import from {oci_tfstate.__file__}")
PY
  start_service "$WORK"
  seed_state >/dev/null
  readme_examples python python
  for i in "${!EXAMPLES[@]}"; do
    printf 'import os\ntoken = os.environ["OCI_TFSTATE_TOKEN"]\n%s\n' "${EXAMPLES[$i]}" >"example-$i.py"
    cat "example-$i.py"
    "$venv/bin/python" -u "example-$i.py" >"example-$i.out" 2>&1 &
    EXAMPLE_PID=$!
    wait_for_output "example-$i.out" 'readme-example'
    lock_and_watch "example-$i.out"
    cat "example-$i.out"
  done
  stop_service
}

run_suites package "${suites[@]}"
