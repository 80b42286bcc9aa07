import type { Coordinator } from "../coordinator/types.ts";
import type { Logger } from "../log.ts";
import type { HttpRequest } from "./types.ts";

/** What one request's handler works with: the parsed target and the request's cancellation. */
export interface HandlerContext {
  coordinator: Coordinator;
  logger: Logger;
  maxStateSize: number;
  /** How long a LOCK on a held lock waits in line before its 423 (0: at once). */
  lockWaitMs: number;
  req: HttpRequest;
  workspace: string;
  query: URLSearchParams;
  /** Aborts when the client goes away before the answer is sent. */
  signal: AbortSignal;
}
