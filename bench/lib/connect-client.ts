/**
 * Connect clients of the service (connect-node, binary codec): over HTTP/2 (h2c) by default, each
 * on its own HTTP/2 connection, which `close()` ends; or over HTTP/1.1 with keep-alive.
 */
import { Agent } from "node:http";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";

export const CLIENT_PROTOCOL = "Connect (binary) over HTTP/2 (h2c)";
export const CLIENT_PROTOCOL_HTTP1 = "Connect (binary) over HTTP/1.1";

export interface StateClient {
  client: Client<typeof StateService>;
  /** Closes the client's connections; calls still open fail. */
  close(): void;
}

export interface StateClientOptions {
  /**
   * "default": what connect-node clients offer unless told otherwise (gzip and br), so the server
   * compresses responses of 1 KiB and more. "none": ask for uncompressed responses.
   */
  responseCompression?: "default" | "none";
  /** Default "2". */
  httpVersion?: "1.1" | "2";
  /** An Authorization header sent with every call, e.g. "Bearer otfs_...". */
  authorization?: string;
}

function authorizationHeader(value: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", value);
    return next(req);
  };
}

export function stateClient(baseUrl: string, opts: StateClientOptions = {}): StateClient {
  const compression = opts.responseCompression === "none" ? { acceptCompression: [] } : {};
  const interceptors = opts.authorization === undefined ? [] : [authorizationHeader(opts.authorization)];
  if (opts.httpVersion === "1.1") {
    const agent = new Agent({ keepAlive: true });
    const transport = createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      useBinaryFormat: true,
      nodeOptions: { agent },
      interceptors,
      ...compression,
    });
    return { client: createClient(StateService, transport), close: () => agent.destroy() };
  }
  const sessionManager = new Http2SessionManager(baseUrl);
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "2",
    useBinaryFormat: true,
    sessionManager,
    interceptors,
    ...compression,
  });
  return {
    client: createClient(StateService, transport),
    close: () => sessionManager.abort(),
  };
}
