#!/usr/bin/env bash
# Regenerates the Go and Python clients (clients/go/gen, clients/python/src/oci_tfstate/gen) from
# proto/ with buf.gen.clients.yaml, using the pinned local plugins that install-client-tools.sh puts
# in .tools/ (no remote plugins). The TypeScript client uses src/gen, made by scripts/generate.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-client-tools.sh
# The project's own plugins first, so no other protoc-gen-* on PATH can stand in for them.
export PATH="$PWD/.tools/bin:$PWD/.tools/venv/bin:$PWD/node_modules/.bin:$PATH"

buf generate --template buf.gen.clients.yaml
