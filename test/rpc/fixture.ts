/**
 * A real registry, and servers in front of fresh repositories of it, each with its own backend and
 * coordinator, started on port 0. Clients use the real transports of @connectrpc/connect-node.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after } from "node:test";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { createCoordinator } from "../../src/coordinator/index.ts";
import type { Coordinator } from "../../src/coordinator/types.ts";
import { stopGracefully } from "../../src/http/lifecycle.ts";
import {
  createServer,
  type ExtraRoute,
  type ServerOptions,
  type TfstateServer,
} from "../../src/http/server.ts";
import { type BackendConfig, createBackend } from "../../src/oras/index.ts";
import { type RegistryHandle, startRegistry } from "../harness/registry.ts";

export interface Served {
  server: TfstateServer;
  coordinator: Coordinator;
  url: string;
  repository: string;
  /** Shuts the server down and closes the coordinator (idempotent). */
  stop(): Promise<void>;
}

export interface ServeOptions {
  backend?: Partial<BackendConfig>;
  server?: Partial<Omit<ServerOptions, "coordinator">>;
  coordinator?: { watchPollIntervalMs?: number; maxLockWaitMs?: number };
  /** Reuse a repository (e.g. to read with a fresh cache). */
  repository?: string;
  /** Extra routes mounted on the server, built on its coordinator (e.g. the Terraform http backend). */
  routes?: (coordinator: Coordinator) => ExtraRoute[];
}

export interface RegistryFixture {
  registry: RegistryHandle;
  serve(opts?: ServeOptions): Promise<Served>;
}

/** Starts one registry for the test file; everything served on it is stopped in `after`. */
export async function startRegistryFixture(): Promise<RegistryFixture> {
  const registry = await startRegistry();
  const served: Served[] = [];
  after(async () => {
    await Promise.allSettled(served.map((s) => s.stop()));
    await registry.stop();
  });
  return {
    registry,
    async serve(opts = {}) {
      const repository = opts.repository ?? `tfstate/rpc-${randomBytes(5).toString("hex")}`;
      const backend = createBackend({
        repository: `${registry.host}/${repository}`,
        plainHTTP: true,
        retry: { maxAttempts: 2, initialBackoff: 10, maxBackoff: 50 },
        ...opts.backend,
      });
      const coordinator = createCoordinator({ backend, watchPollIntervalMs: 200, ...opts.coordinator });
      const server = createServer({ coordinator, routes: opts.routes?.(coordinator), ...opts.server });
      const { url } = await server.listen(0);
      let stopping: Promise<void> | undefined;
      const s: Served = {
        server,
        coordinator,
        url,
        repository,
        stop: () => {
          stopping ??= stopGracefully(server, coordinator);
          return stopping;
        },
      };
      served.push(s);
      return s;
    },
  };
}

/** The client transports a server must answer: every protocol, both HTTP versions, both codecs. */
export const PROTOCOLS = [
  "connect+json over HTTP/1.1",
  "connect+proto over HTTP/2",
  "grpc over h2c",
  "grpc-web over HTTP/1.1",
  "grpc-web over HTTP/2",
] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export function transport(
  protocol: Protocol,
  baseUrl: string,
  extra: { useHttpGet?: boolean } = {},
): Transport {
  switch (protocol) {
    case "connect+json over HTTP/1.1":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, ...extra });
    case "connect+proto over HTTP/2":
      return createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, ...extra });
    case "grpc over h2c":
      return createGrpcTransport({ baseUrl });
    case "grpc-web over HTTP/1.1":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1" });
    case "grpc-web over HTTP/2":
      return createGrpcWebTransport({ baseUrl, httpVersion: "2" });
  }
}

export function client<T extends DescService>(service: T, protocol: Protocol, baseUrl: string): Client<T> {
  return createClient(service, transport(protocol, baseUrl));
}

export const text = (s: string) => new TextEncoder().encode(s);
export const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** A Terraform-looking state of about `bytes` bytes, different for each `seed`. */
export function bigState(bytes: number, seed: string): Uint8Array {
  const head = `{"version":4,"serial":1,"lineage":"${seed}","resources":[{"pad":"`;
  const tail = `"}]}`;
  const pad = Math.max(0, bytes - head.length - tail.length);
  const filler = randomBytes(Math.ceil(pad / 2))
    .toString("hex")
    .slice(0, pad);
  return text(head + filler + tail);
}

/** Awaits `p`, which must fail with `code` (and a message matching `message`); returns the error. */
export async function rejectsWith(p: Promise<unknown>, code: Code, message?: RegExp): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    assert.equal(Code[e.code], Code[code], e.message);
    if (message) assert.match(e.rawMessage, message);
    return e;
  }
  return assert.fail(`expected ${Code[code]}`);
}

/** Collects a server stream until it ends or fails; returns the messages and the error, if any. */
export async function drain<T>(stream: AsyncIterable<T>): Promise<{ messages: T[]; error: unknown }> {
  const messages: T[] = [];
  try {
    for await (const m of stream) messages.push(m);
    return { messages, error: undefined };
  } catch (error) {
    return { messages, error };
  }
}
