#!/usr/bin/env bash
# Installs the pinned tools that generate and test the Go and Python clients, inside the repository:
#
#   .tools/bin   protoc-gen-go and protoc-gen-connect-go, built with `go install` from the Go module proxy
#   .tools/venv  a Python virtual environment with exactly clients/python/requirements-dev.txt (the
#                connectrpc runtime, the protoc-gen-py and protoc-gen-connectrpc generators, pytest,
#                ruff) and clients/python itself, installed editable
#
# A rerun with everything at the pinned versions does nothing. A missing Go or Python toolchain is an
# error, never a skip. scripts/generate-clients.sh and scripts/test-clients.sh call this first.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

PROTOC_GEN_GO_VERSION="v1.36.12"
PROTOC_GEN_CONNECT_GO_VERSION="v1.21.1"
# connectrpc needs Python 3.11 or newer.
PYTHON_MIN_MINOR=11

TOOLS_BIN="$ROOT/.tools/bin"
VENV="$ROOT/.tools/venv"
REQUIREMENTS="$ROOT/clients/python/requirements-dev.txt"

die() {
  echo "install-client-tools: $*" >&2
  exit 1
}

started=$SECONDS

# --- Go plugins ------------------------------------------------------------------------------------------
command -v go >/dev/null || die "go is not on PATH: the Go client needs Go 1.26 or newer"
mkdir -p "$TOOLS_BIN"

# Installs module/cmd@version unless the binary already reports that version ($3 is what it prints).
go_tool() {
  local name="$1" package="$2" expected="$3" version="$4"
  if [[ -x "$TOOLS_BIN/$name" ]] && [[ "$("$TOOLS_BIN/$name" --version 2>/dev/null)" == "$expected" ]]; then
    return
  fi
  echo "installing $name $version"
  GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod go install "$package@$version"
  [[ "$("$TOOLS_BIN/$name" --version)" == "$expected" ]] || die "$name does not report $expected after install"
}
go_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go \
  "protoc-gen-go $PROTOC_GEN_GO_VERSION" "$PROTOC_GEN_GO_VERSION"
go_tool protoc-gen-connect-go connectrpc.com/connect/cmd/protoc-gen-connect-go \
  "${PROTOC_GEN_CONNECT_GO_VERSION#v}" "$PROTOC_GEN_CONNECT_GO_VERSION"

# --- Python environment ----------------------------------------------------------------------------------
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || die "$python is not on PATH: the Python client needs Python 3.$PYTHON_MIN_MINOR or newer"
"$python" -c "import sys; sys.exit(0 if sys.version_info >= (3, $PYTHON_MIN_MINOR) else 1)" ||
  die "$("$python" --version 2>&1) is too old: the Python client needs Python 3.$PYTHON_MIN_MINOR or newer"

# The stamp names the interpreter and the checkout (the editable install points into it) and hashes
# every input, so any change rebuilds the environment.
stamp="$("$python" -c '
import hashlib, sys
h = hashlib.sha256(f"{sys.executable} {sys.version} {sys.argv[1]}".encode())
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        h.update(f.read())
print(h.hexdigest())
' "$ROOT" "$REQUIREMENTS" "$ROOT/clients/python/pyproject.toml")"
if [[ -f "$VENV/.installed" ]] && [[ "$(cat "$VENV/.installed")" == "$stamp" ]] && [[ -x "$VENV/bin/python" ]]; then
  :
else
  echo "creating the Python environment in .tools/venv"
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  pip=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input --quiet)
  # --no-deps: the requirements list every package, so no unpinned version can slip in; pip check
  # below proves the list is complete.
  "${pip[@]}" install --no-deps --only-binary=:all: -r "$REQUIREMENTS"
  "${pip[@]}" install --no-deps --no-build-isolation --editable "$ROOT/clients/python"
  "${pip[@]}" check || die "clients/python/requirements-dev.txt is incomplete (see pip check above)"
  echo "$stamp" >"$VENV/.installed"
fi

for tool in protoc-gen-py protoc-gen-connectrpc pytest ruff mypy; do
  [[ -x "$VENV/bin/$tool" ]] || die "$tool missing from .tools/venv"
done

if ((SECONDS - started > 1)); then
  echo "install-client-tools: done in $((SECONDS - started)) s" >&2
fi
