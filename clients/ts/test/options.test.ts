/**
 * What the clients send and how they are configured, checked against a recording server: real
 * HTTP/1.1 and h2c servers on loopback serving a StateService with @connectrpc/connect-node.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  bearerToken,
  createNodeClient,
  LockEventKind,
  LockHeldDetailSchema,
  lockHolder,
  StateService,
  type TfstateClient,
  type TokenSource,
  tokenFromEnv,
  tokenFromFile,
} from "../src/node.ts";
import { createWebClient } from "../src/web.ts";

interface Call {
  procedure: string;
  protocol: string;
  authorization: string | null;
}

const calls: Call[] = [];
/** WatchLock calls on the workspace "hold" stay open until the client ends them; then this runs. */
let onHoldEnded: (() => void) | undefined;
const record = (ctx: HandlerContext) =>
  calls.push({
    procedure: ctx.method.name,
    protocol: ctx.protocolName,
    authorization: ctx.requestHeader.get("authorization"),
  });

function routes(router: ConnectRouter) {
  router.service(StateService, {
    async getState(_req, ctx) {
      record(ctx);
      return { state: new TextEncoder().encode("{}") };
    },
    async *watchLock(req, ctx) {
      record(ctx);
      yield { workspace: req.workspace, kind: LockEventKind.SNAPSHOT };
      if (req.workspace !== "hold") return;
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      onHoldEnded?.();
    },
    async lock(_req, ctx) {
      record(ctx);
      const detail = create(LockHeldDetailSchema, {
        holder: { id: "holder-id", who: "alice@ci" },
        generation: 7n,
      });
      throw new ConnectError("the workspace is locked", Code.FailedPrecondition, undefined, [
        { desc: LockHeldDetailSchema, value: detail },
      ]);
    },
  });
}

const handler = connectNodeAdapter({ routes });
const h1 = http.createServer(handler);
const h2c = http2.createServer(handler);
await Promise.all(
  [h1, h2c].map((s) => new Promise<void>((resolve) => s.listen(0, "127.0.0.1", () => resolve()))),
);
const urlOf = (s: http.Server | http2.Http2Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
const closers: (() => void)[] = [];
after(async () => {
  for (const close of closers) close();
  h1.closeAllConnections();
  await Promise.all([
    new Promise((resolve) => h1.close(resolve)),
    new Promise((resolve) => h2c.close(resolve)),
  ]);
});

function node(options: Parameters<typeof createNodeClient>[0]): TfstateClient {
  const c = createNodeClient(options);
  closers.push(() => c.close());
  return c;
}

const CASES: { name: string; protocol: string; client: (token?: string | TokenSource) => TfstateClient }[] = [
  {
    name: "node connect, HTTP/1.1",
    protocol: "connect",
    client: (token) => node({ baseUrl: urlOf(h1), token }),
  },
  {
    name: "node connect JSON, h2c",
    protocol: "connect",
    client: (token) => node({ baseUrl: urlOf(h2c), token, httpVersion: "2", useJson: true }),
  },
  {
    name: "node grpc, h2c",
    protocol: "grpc",
    client: (token) => node({ baseUrl: urlOf(h2c), token, protocol: "grpc" }),
  },
  {
    name: "node grpc-web, HTTP/1.1",
    protocol: "grpc-web",
    client: (token) => node({ baseUrl: urlOf(h1), token, protocol: "grpc-web" }),
  },
  {
    name: "web connect",
    protocol: "connect",
    client: (token) => createWebClient({ baseUrl: urlOf(h1), token }),
  },
  {
    name: "web grpc-web",
    protocol: "grpc-web",
    client: (token) => createWebClient({ baseUrl: urlOf(h1), token, protocol: "grpc-web" }),
  },
];

describe("bearer token", () => {
  for (const c of CASES) {
    test(`${c.name}: sent with unary and streaming calls`, async () => {
      calls.length = 0;
      const client = c.client("s3cret");
      assert.equal(
        new TextDecoder().decode((await client.state.getState({ workspace: "default" })).state),
        "{}",
      );
      const kinds = [];
      for await (const m of client.state.watchLock({ workspace: "default" })) kinds.push(m.kind);
      assert.deepEqual(kinds, [LockEventKind.SNAPSHOT]);
      const err = await client.state.lock({ workspace: "default" }).then(
        () => assert.fail("Lock succeeded"),
        (e: unknown) => e,
      );
      assert.equal(lockHolder(err)?.holder?.who, "alice@ci");
      assert.equal(lockHolder(err)?.generation, 7n);
      assert.deepEqual(calls, [
        { procedure: "GetState", protocol: c.protocol, authorization: "Bearer s3cret" },
        { procedure: "WatchLock", protocol: c.protocol, authorization: "Bearer s3cret" },
        { procedure: "Lock", protocol: c.protocol, authorization: "Bearer s3cret" },
      ]);
    });
  }

  test("no Authorization header without a token", async () => {
    calls.length = 0;
    await node({ baseUrl: urlOf(h1) }).state.getState({ workspace: "default" });
    assert.deepEqual(calls, [{ procedure: "GetState", protocol: "connect", authorization: null }]);
  });

  test("an empty token is refused", () => {
    assert.throws(() => bearerToken(""), /empty/);
  });

  test("a token that cannot be a header value is refused without quoting it", () => {
    for (const token of ["s3cret\r\nX-Injected: 1", "s3cret s3cret", "s3crét"]) {
      assert.throws(
        () => bearerToken(token),
        (err: Error) => /not allowed in a header/.test(err.message) && !err.message.includes("s3cret"),
      );
    }
    // @ts-expect-error: not a token, as plain JavaScript could pass it
    assert.throws(() => bearerToken(42), /string or a function/);
  });
});

describe("token source", () => {
  for (const c of CASES) {
    test(`${c.name}: asked for every unary call and every stream's start`, async () => {
      calls.length = 0;
      let n = 0;
      const client = c.client(() => `token-${++n}`);
      await client.state.getState({ workspace: "default" });
      for await (const _ of client.state.watchLock({ workspace: "default" })) {
        // one snapshot, then the stream ends
      }
      await client.state.lock({ workspace: "default" }).catch(() => {});
      // A source returning a promise is awaited.
      const later = c.client(async () => `token-${++n}`);
      await later.state.getState({ workspace: "default" });
      assert.deepEqual(
        calls.map((call) => [call.procedure, call.authorization]),
        [
          ["GetState", "Bearer token-1"],
          ["WatchLock", "Bearer token-2"],
          ["Lock", "Bearer token-3"],
          ["GetState", "Bearer token-4"],
        ],
      );
    });
  }

  class ProviderDownError extends Error {
    override name = "ProviderDownError";
  }
  const cause = new ProviderDownError("the identity provider is down");
  const BROKEN: { name: string; source: () => unknown; message: RegExp }[] = [
    {
      name: "a throwing source",
      source: () => {
        throw cause;
      },
      message: /the token source failed: ProviderDownError: the identity provider is down/,
    },
    { name: "a rejected promise", source: () => Promise.reject(cause), message: /the token source failed/ },
    { name: "an empty token", source: () => "", message: /empty/ },
    { name: "a line break", source: () => "s3cret\r\nX-Injected: 1", message: /not allowed in a header/ },
    { name: "not a string", source: () => undefined, message: /returned undefined, not a string/ },
  ];
  for (const c of CASES) {
    for (const broken of BROKEN) {
      test(`${c.name}: ${broken.name} fails the call as UNAUTHENTICATED and sends nothing`, async () => {
        calls.length = 0;
        const client = c.client(broken.source as TokenSource);
        const unary = await client.state.getState({ workspace: "default" }).then(
          () => assert.fail("GetState succeeded"),
          (e: unknown) => e,
        );
        const stream = await (async () => {
          for await (const _ of client.state.watchLock({ workspace: "default" })) {
            assert.fail("WatchLock received a message without a token");
          }
        })().then(
          () => assert.fail("WatchLock succeeded"),
          (e: unknown) => e,
        );
        for (const err of [unary, stream]) {
          assert.ok(err instanceof ConnectError, String(err));
          assert.equal(err.code, Code.Unauthenticated);
          assert.match(err.message, broken.message);
          assert.ok(!err.message.includes("s3cret"));
          if (broken.message.source.startsWith("the token source failed")) assert.equal(err.cause, cause);
        }
        assert.deepEqual(calls, [], "the server saw a call without credentials");
      });
    }
  }

  test("tokenFromEnv reads the variable for every call", () => {
    const name = "OCI_TFSTATE_TEST_TOKEN";
    const source = tokenFromEnv(name);
    try {
      process.env[name] = " first\n";
      assert.equal(source(), "first");
      process.env[name] = "second";
      assert.equal(source(), "second");
      delete process.env[name];
      assert.throws(() => source(), /OCI_TFSTATE_TEST_TOKEN is not set or empty/);
    } finally {
      delete process.env[name];
    }
  });

  test("tokenFromFile reads the file for every call", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-ts-token-"));
    try {
      const file = path.join(dir, "token");
      const source = tokenFromFile(file);
      await assert.rejects(async () => source(), /ENOENT/);
      for (const [content, token] of [
        ["s3cret-1\n", "s3cret-1"],
        ["s3cret-2", "s3cret-2"],
      ]) {
        await writeFile(file, content as string);
        assert.equal(await source(), token);
      }
      await writeFile(file, " \n");
      await assert.rejects(async () => source(), /is empty/);
      await writeFile(file, `s3cret${"x".repeat(70_000)}`);
      await assert.rejects(
        async () => source(),
        (err: Error) => /larger than/.test(err.message) && !err.message.includes("s3cret"),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("server streams", () => {
  for (const c of CASES) {
    test(`${c.name}: a loop that stops early ends the call`, async () => {
      const ended = new Promise<void>((resolve) => {
        onHoldEnded = resolve;
      });
      const client = c.client();
      for await (const m of client.state.watchLock({ workspace: "hold" })) {
        assert.equal(m.kind, LockEventKind.SNAPSHOT);
        break;
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<"open">((resolve) => {
        timer = setTimeout(() => resolve("open"), 5000);
      });
      assert.equal(
        await Promise.race([ended.then(() => "ended"), timeout]),
        "ended",
        "the server saw the call end",
      );
      clearTimeout(timer);
    });
  }
});

describe("configuration", () => {
  test("bad base URLs, protocols and TLS settings are refused", () => {
    assert.throws(() => createNodeClient({ baseUrl: "ftp://h" }), /http:\/\/ or https:\/\//);
    assert.throws(() => createNodeClient({ baseUrl: "127.0.0.1:8080" }), /invalid base URL/);
    assert.throws(() => createNodeClient({ baseUrl: "http://h", tls: { ca: "pem" } }), /https:\/\//);
    assert.throws(
      () => createNodeClient({ baseUrl: "http://h", protocol: "grpc", httpVersion: "1.1" }),
      /HTTP\/2/,
    );
    // @ts-expect-error: an unknown protocol, as plain JavaScript could pass it
    assert.throws(() => createNodeClient({ baseUrl: "http://h", protocol: "soap" }), /unknown protocol/);
    // @ts-expect-error: browsers cannot speak gRPC
    assert.throws(() => createWebClient({ baseUrl: "http://h", protocol: "grpc" }), /unknown protocol/);
  });

  test("lockHolder ignores other errors", () => {
    assert.equal(lockHolder(new Error("plain")), undefined);
    assert.equal(lockHolder(new ConnectError("no detail", Code.FailedPrecondition)), undefined);
    assert.equal(lockHolder(undefined), undefined);
  });
});
