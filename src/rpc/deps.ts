import type { Coordinator } from "../coordinator/types.ts";
import { InvalidArgumentError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { StateInsights } from "../summary/state-insights.ts";

/** What the RPC handlers need; built once by the server. */
export interface RpcDeps {
  coordinator: Coordinator;
  logger: Logger;
  /** Largest message read or written, in bytes; unary states must fit in one. */
  maxMessageBytes: number;
  /** The server's maximum state size in bytes (checked before any registry work where possible). */
  maxStateSize: number;
  /** Summaries, outputs and diffs; built on `coordinator` when not given. */
  insights?: StateInsights | undefined;
}

/** What the tfstate services are built with: RpcDeps with everything filled in. */
export type ServiceDeps = RpcDeps & { insights: StateInsights };

/** A version number where zero means the current state (undefined). */
export function optionalVersionArg(version: bigint, field = "version"): number | undefined {
  if (version === 0n) return undefined;
  if (version < 0n) throw new InvalidArgumentError(`${field} must not be negative, got ${version}`);
  return versionArg(version, field);
}

/** A positive version number from an int64 field. */
export function versionArg(version: bigint, field = "version"): number {
  if (version <= 0n) throw new InvalidArgumentError(`${field} must be positive, got ${version}`);
  if (version > BigInt(Number.MAX_SAFE_INTEGER))
    throw new InvalidArgumentError(`${field} ${version} is too large`);
  return Number(version);
}
