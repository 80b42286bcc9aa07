# shellcheck shell=bash
# Sourced by the scripts that run several test suites (scripts/test-clients.sh,
# scripts/test-packages.sh):
#
#   run_suites LABEL NAME...   runs the function test_NAME for each NAME, in order
#
# Each suite runs in a fresh `bash -euo pipefail` that inherits the caller's functions and exported
# variables, so every failing command in it fails the suite. A subshell would not do: bash ignores
# errexit inside anything run as a condition (`if (f)`, `f || …`, `f && …`, `! f`), however deep, so
# only a suite's last command would count; a fresh process is not part of a condition, wherever
# run_suites itself is called from. Every suite runs even when an earlier one failed; run_suites
# returns 1 when any failed, after naming them.

run_suites() {
  local label="$1"
  shift
  local suite started status
  local -a failed=()
  # The suites run in other processes: they see functions and variables only when exported.
  # shellcheck disable=SC2046 # one function name per word
  export -f $(compgen -A function)
  for suite in "$@"; do
    printf '\n== %s %s\n' "$suite" "$label"
    started=$SECONDS
    status=0
    bash -euo pipefail -c '"$0"' "test_$suite" || status=$?
    if ((status == 0)); then
      echo "== $suite $label: passed in $((SECONDS - started)) s"
    else
      echo "== $suite $label: FAILED (exit $status) after $((SECONDS - started)) s" >&2
      failed+=("$suite")
    fi
  done
  if ((${#failed[@]} > 0)); then
    echo "$label suites failed: ${failed[*]}" >&2
    return 1
  fi
}
