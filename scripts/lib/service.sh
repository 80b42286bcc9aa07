# shellcheck shell=bash
# Sourced by scripts/test-packages.sh: the repository's service for a check, and calls to it. Needs
# $ROOT (the checkout) and the pinned Node in node_modules/.bin; no curl (CI does not install it).
#
#   start_service DIR [FLAG...]   starts src/cli.ts on a random loopback port, its OCI layout in
#                                 DIR/layout and its log in DIR/service.log; sets SERVICE_URL, SERVICE_PID
#   stop_service                  SIGTERM; fails unless the service exits 0
#   rpc SERVICE.METHOD JSON       one Connect unary call with a JSON body; prints the JSON answer,
#                                 fails on any other status than 200
#   wait_for_output FILE REGEX [COUNT] [SECONDS]
#                                 waits until COUNT lines of FILE match the extended REGEX (default
#                                 1 line, 30 s); fails with FILE's tail otherwise

start_service() {
  local dir="$1"
  shift
  local -a command=("$ROOT/node_modules/.bin/node" "$ROOT/src/cli.ts" --listen 127.0.0.1:0
    "--repository=oci-layout:$dir/layout" "$@")
  # Linux kills the service when the shell that started it dies, even by SIGKILL.
  if command -v setpriv >/dev/null; then command=(setpriv --pdeathsig SIGKILL -- "${command[@]}"); fi
  # Only what the service needs from the environment: no OCI_TFSTATE_* or OTEL_* of the caller.
  : >"$dir/service.log"
  env -i PATH="$PATH" HOME="$dir" "${command[@]}" >>"$dir/service.log" 2>&1 &
  SERVICE_PID=$!
  SERVICE_URL=""
  local deadline=$((SECONDS + 30))
  while [[ -z "$SERVICE_URL" ]]; do
    SERVICE_URL="$(sed -n 's/^{.*"msg":"listening","url":"\([^"]*\)".*/\1/p' "$dir/service.log" | head -n 1)"
    if [[ -z "$SERVICE_URL" ]]; then
      if ! kill -0 "$SERVICE_PID" 2>/dev/null || ((SECONDS > deadline)); then
        echo "the service did not start:" >&2
        tail -n 20 "$dir/service.log" >&2
        return 1
      fi
      sleep 0.1
    fi
  done
  echo "service at $SERVICE_URL (pid $SERVICE_PID)"
}

stop_service() {
  [[ -n "${SERVICE_PID:-}" ]] || return 0
  local pid="$SERVICE_PID" status=0
  SERVICE_PID=""
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || status=$?
  if ((status != 0)); then
    echo "the service exited with status $status on SIGTERM" >&2
    return 1
  fi
}

rpc() {
  # shellcheck disable=SC2016 # JavaScript, not shell
  "$ROOT/node_modules/.bin/node" --input-type=module -e '
    const [url, method, body] = process.argv.slice(1);
    const res = await fetch(`${url}/tfstate.v1.${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const text = await res.text();
    if (res.status !== 200) {
      console.error(`${method}: HTTP ${res.status}: ${text}`);
      process.exit(1);
    }
    console.log(text);
  ' "$SERVICE_URL" "$1" "$2"
}

wait_for_output() {
  local file="$1" regex="$2" count="${3:-1}" deadline=$((SECONDS + ${4:-30}))
  while (($(grep -cE -- "$regex" "$file" || true) < count)); do
    if ((SECONDS > deadline)); then
      echo "no $count line(s) matching /$regex/ in $file within ${4:-30} s; it holds:" >&2
      tail -n 30 "$file" >&2
      return 1
    fi
    sleep 0.1
  done
}
