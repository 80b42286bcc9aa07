#!/usr/bin/env bash
# Builds the pinned OpenTofu CLI from source with Go (through the Go module proxy) for the end-to-end
# test of the http backend (test/tfhttp/tofu-e2e.test.ts), and caches it per version, so a rerun is
# instant. `go install module@version` refuses OpenTofu (its go.mod has replace directives), so the
# module is downloaded and built inside its own directory, with the flags of OpenTofu's releases.
#
#   scripts/install-tofu.sh          build if missing, then print the binary's path
#   scripts/install-tofu.sh --path   print where the binary is (or will be); build nothing
#
# OCI_TFSTATE_TOOLS_DIR overrides the cache directory (default ~/.cache/oci-tfstate).
set -euo pipefail

TOFU_VERSION="v1.12.6"
TOOLS_DIR="${OCI_TFSTATE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oci-tfstate}"
TOFU_DIR="${TOOLS_DIR}/tofu-${TOFU_VERSION}"
TOFU_BIN="${TOFU_DIR}/tofu"

if [[ "${1:-}" == "--path" ]]; then
  echo "$TOFU_BIN"
  exit 0
fi

# The version is read in full before it is matched: with pipefail, `tofu version | grep -q` fails
# when grep stops reading early and tofu gets SIGPIPE, which would rebuild a good binary.
if [[ -x "$TOFU_BIN" ]] &&
  grep -qx "OpenTofu ${TOFU_VERSION}" <<<"$(CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null "$TOFU_BIN" version 2>/dev/null)"; then
  echo "$TOFU_BIN"
  exit 0
fi

command -v go >/dev/null || { echo "install-tofu: go is not on PATH" >&2; exit 1; }
started=$SECONDS
module_dir="$(go mod download -json "github.com/opentofu/opentofu@${TOFU_VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -n "$module_dir" && -f "$module_dir/go.mod" ]] || {
  echo "install-tofu: could not download github.com/opentofu/opentofu@${TOFU_VERSION}" >&2
  exit 1
}

mkdir -p "$TOFU_DIR"
tmp="$(mktemp "${TOFU_DIR}/tofu.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
(
  cd "$module_dir"
  CGO_ENABLED=0 go build -mod=readonly -trimpath \
    -ldflags "-s -w -X 'github.com/opentofu/opentofu/version.dev=no'" \
    -o "$tmp" ./cmd/tofu
)
chmod 0755 "$tmp"
mv -f "$tmp" "$TOFU_BIN"
trap - EXIT
echo "install-tofu: built OpenTofu ${TOFU_VERSION} in $((SECONDS - started)) s" >&2
echo "$TOFU_BIN"
