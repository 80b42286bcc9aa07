#!/usr/bin/env bash
# Lints the API in proto/ and regenerates the TypeScript code: src/gen for the
# server (buf.gen.yaml) and clients/ts/src/gen for the TypeScript client
# (buf.gen.ts-client.yaml). Uses only npm-installed tools (buf, protoc-gen-es);
# Go and Python clients are generated separately from buf.gen.clients.yaml.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

buf lint
buf generate
buf generate --template buf.gen.ts-client.yaml
