/**
 * The one authentication point. Every request except the probes (/healthz, /readyz and gRPC health
 * checking, which come without credentials) passes through the server's Authenticator before any
 * handler runs: RPCs through the Connect request gate, other routes in the dispatcher. The default
 * lets everyone in as the anonymous principal; real schemes plug in here.
 */
import { ANONYMOUS, type Principal } from "../rpc/principal.ts";

export interface AuthRequest {
  /** HTTP method. */
  method: string;
  /** Path without the query string, e.g. `/tfstate.v1.StateService/GetState`. */
  path: string;
  headers: Headers;
  /** The peer's address, when known. */
  remoteAddress: string | undefined;
  /** True when the connection is TLS. */
  secure: boolean;
  /** "rpc" for Connect, gRPC and gRPC-Web calls; "http" for the other routes. */
  kind: "rpc" | "http";
}

/**
 * Resolves to the caller, or rejects with UnauthenticatedError (no or bad credentials) or
 * PermissionDeniedError (known caller, not allowed). Error messages reach the client.
 */
export type Authenticator = (req: AuthRequest) => Promise<Principal>;

export const allowAll: Authenticator = async () => ANONYMOUS;
