#!/usr/bin/env bash
# CI gate for the dashboard: web/dist (committed, served by the process and copied into the image)
# must be exactly what web/ builds to, so `npm start` never serves a stale or hand-edited build.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

vite build --config web/vite.config.ts --logLevel warn
changes="$(git status --porcelain --untracked-files=all -- web/dist)"
if [[ -n "$changes" ]]; then
  echo "web/dist does not match web/: run 'npm run build:web' and commit the result. Changed files:" >&2
  echo "$changes" >&2
  exit 1
fi
echo "web/dist is up to date."
