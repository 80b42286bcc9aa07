#!/usr/bin/env bash
# CI gate for the API: proto files formatted and lint-clean, the generated
# TypeScript (src/gen, and the TypeScript client's clients/ts/src/gen)
# identical to what proto/ generates, and no breaking change against the
# baseline.
#
# Baseline for `buf breaking`: $BUF_BREAKING_AGAINST when set (any buf input,
# e.g. '.git#branch=main'); otherwise the merge base with `main` when on
# another branch; on main itself HEAD when proto/ or buf.yaml have uncommitted
# changes, else the previous commit. When the baseline has no API yet (or the
# history is too shallow to hold it), the check is skipped with a note.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

fail=0

echo "== buf format"
if ! buf format --diff --exit-code; then
  echo "proto files are not formatted: run 'buf format --write' (node_modules/.bin/buf)." >&2
  fail=1
fi

echo "== buf lint + generate"
bash scripts/generate.sh

echo "== generated code drift"
GENERATED=(src/gen clients/ts/src/gen)
changes="$(git status --porcelain --untracked-files=all -- "${GENERATED[@]}")"
if [[ -n "$changes" ]]; then
  echo "${GENERATED[*]} do not match proto/. Run 'npm run generate' and commit the result. Changed files:" >&2
  echo "$changes" >&2
  git --no-pager diff --stat -- "${GENERATED[@]}" >&2 || true
  git --no-pager diff -- "${GENERATED[@]}" | head -n 400 >&2 || true
  fail=1
else
  echo "${GENERATED[*]} are up to date."
fi

echo "== buf breaking"
baseline_commit() {
  local head main
  head="$(git rev-parse --verify -q HEAD)" || return 1
  if main="$(git rev-parse --verify -q refs/heads/main || git rev-parse --verify -q refs/remotes/origin/main)" &&
    [[ "$main" != "$head" ]]; then
    git merge-base "$head" "$main"
  elif ! git diff --quiet HEAD -- buf.yaml proto ||
    [[ -n "$(git ls-files --others --exclude-standard -- buf.yaml proto)" ]]; then
    echo "$head"
  else
    git rev-parse --verify -q "HEAD~1^{commit}"
  fi
}

if [[ -n "${BUF_BREAKING_AGAINST:-}" ]]; then
  buf breaking --against "$BUF_BREAKING_AGAINST" || fail=1
elif base="$(baseline_commit)" && [[ -n "$base" ]] &&
  [[ -n "$(git ls-tree -r --name-only "$base" -- buf.yaml)" ]] &&
  [[ -n "$(git ls-tree -r --name-only "$base" -- proto)" ]]; then
  # A plain export of the baseline's API avoids buf cloning the repository,
  # which needs a deep enough history for arbitrary commits.
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  git archive "$base" -- buf.yaml proto | tar -x -C "$tmp"
  echo "against $(git rev-parse --short "$base")"
  buf breaking --against "$tmp" || fail=1
else
  echo "no baseline commit with an API (buf.yaml and proto/) yet: skipped."
fi

exit "$fail"
