/**
 * Connect clients of the service: the Connect protocol with the binary codec over HTTP/2 (h2c),
 * each on its own HTTP/2 connection, which `close()` ends.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";

export const CLIENT_PROTOCOL = "Connect (binary) over HTTP/2 (h2c)";

export interface StateClient {
  client: Client<typeof StateService>;
  /** Closes the HTTP/2 connection; calls still open fail. */
  close(): void;
}

export interface StateClientOptions {
  /**
   * "default": what connect-node clients offer unless told otherwise (gzip and br), so the server
   * compresses responses of 1 KiB and more. "none": ask for uncompressed responses.
   */
  responseCompression?: "default" | "none";
}

export function stateClient(baseUrl: string, opts: StateClientOptions = {}): StateClient {
  const sessionManager = new Http2SessionManager(baseUrl);
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "2",
    useBinaryFormat: true,
    sessionManager,
    ...(opts.responseCompression === "none" ? { acceptCompression: [] } : {}),
  });
  return {
    client: createClient(StateService, transport),
    close: () => sessionManager.abort(),
  };
}
