/**
 * The client for Node: Connect, gRPC or gRPC-Web over @connectrpc/connect-node, with TLS settings
 * and bearer-token authentication, and token sources that read the environment or a file per call.
 *
 *   const client = createNodeClient({ baseUrl: "http://127.0.0.1:8080", protocol: "grpc" });
 *   const { state } = await client.state.getState({ workspace: "default" });
 */
import { open } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { Interceptor, Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import {
  createTfstateClient,
  type Protocol,
  type TfstateClient,
  TOKEN_ENV_VAR,
  type TokenSource,
} from "./index.js";
import { checkBaseUrl, interceptorsFor } from "./internal.js";

export * from "./index.js";

type PemInput = string | Buffer | Array<string | Buffer>;

/** TLS settings for an https:// base URL. Without them the system's CA roots are trusted. */
export interface NodeTlsOptions {
  /** CA certificates (PEM) to trust instead of Node's default roots. */
  ca?: PemInput | undefined;
  /** Client certificate chain (PEM) for mutual TLS, with `key`. */
  cert?: PemInput | undefined;
  /** Private key (PEM) of `cert`. */
  key?: PemInput | undefined;
  /** Server name for SNI and certificate checks, when it differs from the URL's host. */
  servername?: string | undefined;
}

export interface NodeClientOptions {
  /** The server's URL, e.g. `http://127.0.0.1:8080` or `https://tfstate.example.com`. */
  baseUrl: string;
  /**
   * Sent as `Authorization: Bearer <token>` with every call: a string, or a TokenSource (a function
   * returning the token or a promise of it) asked for every unary call and at the start of every
   * stream, so a short-lived OIDC token fetched again reaches the next call.
   */
  token?: string | TokenSource | undefined;
  /** Default "connect". The server answers all three on one port. */
  protocol?: Protocol | undefined;
  /** Only for https:// URLs. */
  tls?: NodeTlsOptions | undefined;
  /**
   * HTTP version for Connect and gRPC-Web (gRPC is always HTTP/2). Default: HTTP/2 over https://
   * (ALPN), HTTP/1.1 over http://; "2" over http:// means h2c with prior knowledge.
   */
  httpVersion?: "1.1" | "2" | undefined;
  /** Connect only: JSON instead of binary Protobuf on the wire. Default false. */
  useJson?: boolean | undefined;
  /** Deadline applied to every call that sets none; streams end with DEADLINE_EXCEEDED after it. */
  defaultTimeoutMs?: number | undefined;
  /** Extra interceptors, run after the bearer token's. */
  interceptors?: readonly Interceptor[] | undefined;
}

/** A Node client; close() releases its connections (idle ones never keep the process alive). */
export interface NodeTfstateClient extends TfstateClient {
  close(): void;
}

export function createNodeClient(options: NodeClientOptions): NodeTfstateClient {
  const { url, base } = checkBaseUrl(options.baseUrl);
  const secure = url.protocol === "https:";
  const protocol = options.protocol ?? "connect";
  if (protocol !== "connect" && protocol !== "grpc" && protocol !== "grpc-web") {
    throw new TypeError(`unknown protocol ${JSON.stringify(protocol)}: use "connect", "grpc" or "grpc-web"`);
  }
  if (options.tls !== undefined && !secure) throw new TypeError("TLS settings need an https:// base URL");
  const httpVersion = protocol === "grpc" ? "2" : (options.httpVersion ?? (secure ? "2" : "1.1"));
  if (protocol === "grpc" && options.httpVersion === "1.1") throw new TypeError("gRPC needs HTTP/2");
  const tls = options.tls ?? {};
  const common = {
    baseUrl: base,
    interceptors: interceptorsFor(options.token, options.interceptors),
    ...(options.defaultTimeoutMs !== undefined ? { defaultTimeoutMs: options.defaultTimeoutMs } : {}),
  };

  let transport: Transport;
  let close: () => void;
  if (httpVersion === "2") {
    // Our own session manager, so close() can end the HTTP/2 connection.
    const sessions = new Http2SessionManager(base, {}, tls);
    close = () => sessions.abort();
    if (protocol === "grpc") {
      transport = createGrpcTransport({ ...common, sessionManager: sessions });
    } else if (protocol === "grpc-web") {
      transport = createGrpcWebTransport({ ...common, httpVersion: "2", sessionManager: sessions });
    } else {
      transport = createConnectTransport({
        ...common,
        httpVersion: "2",
        sessionManager: sessions,
        useBinaryFormat: options.useJson !== true,
      });
    }
  } else {
    const agent = secure ? new https.Agent({ keepAlive: true, ...tls }) : new http.Agent({ keepAlive: true });
    close = () => agent.destroy();
    const nodeOptions = { agent };
    transport =
      protocol === "grpc-web"
        ? createGrpcWebTransport({ ...common, httpVersion: "1.1", nodeOptions })
        : createConnectTransport({
            ...common,
            httpVersion: "1.1",
            nodeOptions,
            useBinaryFormat: options.useJson !== true,
          });
  }
  return { ...createTfstateClient(transport), close };
}

/**
 * A TokenSource that reads the environment variable `name` (default OCI_TFSTATE_TOKEN) for every
 * call, without surrounding white space. An unset or empty variable fails the call.
 */
export function tokenFromEnv(name: string = TOKEN_ENV_VAR): TokenSource {
  return () => {
    const token = process.env[name]?.trim() ?? "";
    if (token === "") throw new Error(`the environment variable ${name} is not set or empty`);
    return token;
  };
}

/** Far more than any API token or JWT; a larger token file is refused instead of sent. */
const MAX_TOKEN_FILE_BYTES = 64 * 1024;

/**
 * A TokenSource that reads the file at `path` for every call, without surrounding white space: a
 * token mounted from a secret store and rotated in place (a Kubernetes projected service account
 * token, a file a sidecar refreshes) reaches the next call. A missing, empty or oversized file fails
 * the call.
 */
export function tokenFromFile(path: string): TokenSource {
  return async () => {
    const file = await open(path, "r");
    const buffer = Buffer.alloc(MAX_TOKEN_FILE_BYTES + 1);
    let length = 0;
    try {
      for (;;) {
        const { bytesRead } = await file.read(buffer, length, buffer.length - length, null);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length === buffer.length) break;
      }
    } finally {
      await file.close();
    }
    if (length > MAX_TOKEN_FILE_BYTES) {
      throw new Error(`the token file ${path} is larger than ${MAX_TOKEN_FILE_BYTES} bytes`);
    }
    const token = buffer.subarray(0, length).toString("utf8").trim();
    if (token === "") throw new Error(`the token file ${path} is empty`);
    return token;
  };
}
