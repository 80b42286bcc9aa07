#!/usr/bin/env bash
# CI gate for the generated clients: regenerating clients/go/gen and clients/python/src/oci_tfstate/gen
# from proto/ with the pinned plugins must change nothing, and the Go module's go.mod and go.sum must
# be tidy. Run after scripts/check-generated.sh, which covers buf lint, src/gen and buf breaking.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
GENERATED=(clients/go/gen clients/python/src/oci_tfstate/gen)

bash scripts/generate-clients.sh

fail=0
echo "== generated client code drift"
changes="$(git status --porcelain --untracked-files=all -- "${GENERATED[@]}")"
if [[ -n "$changes" ]]; then
  echo "the generated clients do not match proto/. Run 'npm run generate:clients' and commit the result. Changed files:" >&2
  echo "$changes" >&2
  git --no-pager diff --stat -- "${GENERATED[@]}" >&2 || true
  git --no-pager diff -- "${GENERATED[@]}" | head -n 400 >&2 || true
  fail=1
else
  echo "clients/go/gen and clients/python/src/oci_tfstate/gen are up to date."
fi

echo "== go.mod and go.sum of clients/go"
if ! (cd clients/go && go mod tidy -diff); then
  echo "clients/go/go.mod or go.sum is not tidy: run 'go mod tidy' in clients/go and commit the result." >&2
  fail=1
else
  echo "tidy."
fi

exit "$fail"
