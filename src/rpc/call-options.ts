import type { HandlerContext } from "@connectrpc/connect";
import type { CallOptions } from "../oci/target.ts";

/**
 * The RPC's cancellation and deadline, handed to every coordinator call so they reach each registry
 * request: the context's signal fires when the client goes away, the deadline passes or the
 * server is stopped.
 */
export function callOptions(ctx: Pick<HandlerContext, "signal" | "timeoutMs">): CallOptions {
  const timeout = ctx.timeoutMs();
  return { signal: ctx.signal, deadline: timeout === undefined ? undefined : Date.now() + timeout };
}
