import { createContextKey } from "@connectrpc/connect";

/**
 * Who makes a request, as the server's authenticator established it. With no authentication
 * configured everyone is the anonymous principal.
 */
export interface Principal {
  /** How the caller was identified, e.g. "anonymous", "basic", "bearer", "mtls". */
  readonly method: string;
  /** A name fit for logs and audit records (never a secret). */
  readonly name: string;
}

export const ANONYMOUS: Principal = Object.freeze({ method: "anonymous", name: "anonymous" });

/** The caller of an RPC, set by the server's request gate before the handler runs. */
export const principalKey = createContextKey<Principal>(ANONYMOUS, { description: "authenticated caller" });
