import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { CallOptions } from "../call-options.ts";

/**
 * The RPC's cancellation and deadline, handed to every coordinator call so they reach each registry
 * request: the signal fires when the client goes away or the server is stopped, the deadline is
 * the call's own (whole milliseconds: the edge rounds timeouts up where they come in, and this
 * does again for calls that come in another way).
 *
 * Connect also aborts the context's signal when the deadline passes. Handed down as it is, that
 * abort races the deadline's own timer below, and a call that ran out of time could end as
 * CANCELED "canceled by the caller". So the signal handed down leaves the deadline to `deadline`.
 */
export function callOptions(ctx: Pick<HandlerContext, "signal" | "timeoutMs">): CallOptions {
  const timeout = ctx.timeoutMs();
  if (timeout === undefined) return { signal: ctx.signal, deadline: undefined };
  return { signal: withoutDeadline(ctx.signal), deadline: Date.now() + Math.ceil(timeout) };
}

/** `signal`, except for an abort because the deadline passed. */
function withoutDeadline(signal: AbortSignal): AbortSignal {
  const out = new AbortController();
  const follow = () => {
    if (!isDeadline(signal.reason)) out.abort(signal.reason);
  };
  if (signal.aborted) follow();
  else signal.addEventListener("abort", follow, { once: true });
  return out.signal;
}

function isDeadline(reason: unknown): boolean {
  return reason instanceof ConnectError && reason.code === Code.DeadlineExceeded;
}
