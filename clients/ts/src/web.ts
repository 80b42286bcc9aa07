/**
 * The client for browsers (and any runtime with fetch): Connect or gRPC-Web over
 * @connectrpc/connect-web. Browsers cannot speak gRPC proper (it needs HTTP/2 trailers).
 *
 *   const client = createWebClient({ baseUrl: "https://tfstate.example.com", token });
 *   for await (const event of client.state.watchLock({ workspace: "default" })) render(event);
 *
 * A page on another origin needs the service behind a proxy that answers CORS for it; the bearer
 * token travels in the Authorization header, so it must be an allowed request header there.
 */
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { createTfstateClient, type TfstateClient, type TokenSource } from "./index.js";
import { checkBaseUrl, interceptorsFor } from "./internal.js";

export * from "./index.js";

export interface WebClientOptions {
  /** The server's URL, e.g. `https://tfstate.example.com`. */
  baseUrl: string;
  /**
   * Sent as `Authorization: Bearer <token>` with every call: a string, or a TokenSource (a function
   * returning the token or a promise of it) asked for every unary call and at the start of every
   * stream, so a short-lived OIDC token fetched again reaches the next call.
   */
  token?: string | TokenSource | undefined;
  /** Default "connect". */
  protocol?: "connect" | "grpc-web" | undefined;
  /** Connect only: JSON instead of binary Protobuf on the wire. Default false. */
  useJson?: boolean | undefined;
  /** Connect only: send side-effect-free calls (GetState, ListWorkspaces...) as cacheable GETs. */
  useHttpGet?: boolean | undefined;
  /** Deadline applied to every call that sets none. */
  defaultTimeoutMs?: number | undefined;
  /** Extra interceptors, run after the bearer token's. */
  interceptors?: readonly Interceptor[] | undefined;
  /** A fetch to use instead of the global one, e.g. to set `credentials`. */
  fetch?: typeof globalThis.fetch | undefined;
}

export function createWebClient(options: WebClientOptions): TfstateClient {
  const { base } = checkBaseUrl(options.baseUrl);
  const protocol = options.protocol ?? "connect";
  if (protocol !== "connect" && protocol !== "grpc-web") {
    throw new TypeError(
      `unknown protocol ${JSON.stringify(protocol)}: browsers speak "connect" or "grpc-web"`,
    );
  }
  const common = {
    baseUrl: base,
    interceptors: interceptorsFor(options.token, options.interceptors),
    ...(options.defaultTimeoutMs !== undefined ? { defaultTimeoutMs: options.defaultTimeoutMs } : {}),
    ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
  };
  const transport: Transport =
    protocol === "grpc-web"
      ? createGrpcWebTransport(common)
      : createConnectTransport({
          ...common,
          useBinaryFormat: options.useJson !== true,
          useHttpGet: options.useHttpGet === true,
        });
  return createTfstateClient(transport);
}
