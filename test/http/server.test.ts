/**
 * The edge: one port for HTTP/1.1 and h2c (or TLS with ALPN), probes, Connect GET, extra routes by
 * prefix, the one authentication point, and graceful shutdown with streams open.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import { after, test } from "node:test";
import tls from "node:tls";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { PermissionDeniedError, UnauthenticatedError } from "../../src/errors.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../../src/gen/grpc/health/v1/health_pb.ts";
import { LockEventKind, StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import type { AuthRequest, ExtraRoute } from "../../src/http/server.ts";
import { createTestCertificates } from "../harness/tls.ts";
import { client, drain, startRegistryFixture, str, text } from "../rpc/fixture.ts";

const fx = await startRegistryFixture();

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  httpVersion: string;
}

/** A plain HTTP/1.1 request, as curl or a browser makes it. */
function http1(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<Reply>((resolve, reject) => {
    const req = http.request(
      url,
      { method: opts.method ?? "GET", headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            httpVersion: res.httpVersion,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** One request over HTTP/2 with prior knowledge (h2c), as grpc-go and grpcurl connect. */
function h2c(
  url: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
) {
  return new Promise<Reply>((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const req = session.request({ ":method": opts.method ?? "GET", ":path": path, ...opts.headers });
    const chunks: Buffer[] = [];
    let status = 0;
    let headers: http.IncomingHttpHeaders = {};
    req.on("response", (h) => {
      status = Number(h[":status"]);
      headers = h as http.IncomingHttpHeaders;
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      session.close();
      resolve({ status, headers, body: Buffer.concat(chunks).toString(), httpVersion: "2.0" });
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

test("one port answers HTTP/1.1 and h2c: probes, Connect JSON, and the RPC clients", async () => {
  const { url } = await fx.serve();
  const healthz = await http1(`${url}/healthz`);
  assert.deepEqual([healthz.status, healthz.body, healthz.httpVersion], [200, "ok\n", "1.1"]);
  const readyz = await http1(`${url}/readyz`);
  assert.deepEqual([readyz.status, readyz.body], [200, "ready\n"]);
  assert.equal((await http1(`${url}/readyz`, { method: "HEAD" })).status, 200);
  const post = await http1(`${url}/healthz`, { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, "GET, HEAD");

  const put = await http1(`${url}/tfstate.v1.StateService/PutState`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ workspace: "default", state: Buffer.from('{"serial":1}').toString("base64") }),
  });
  assert.equal(put.status, 200, put.body);
  assert.match(JSON.parse(put.body).metadata.digest, /^sha256:/);

  const viaH2c = await h2c(url, "/tfstate.v1.StateService/GetState", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"workspace":"default"}',
  });
  assert.equal(viaH2c.status, 200, viaH2c.body);
  assert.equal(Buffer.from(JSON.parse(viaH2c.body).state, "base64").toString(), '{"serial":1}');
  assert.equal((await h2c(url, "/healthz")).body, "ok\n");

  const missing = await http1(`${url}/no/such/thing`);
  assert.equal(missing.status, 404);
});

test("GetState works as a Connect GET request, from the client and from a plain URL", async () => {
  const seen: AuthRequest[] = [];
  const { url } = await fx.serve({
    server: {
      authenticate: async (req) => {
        seen.push(req);
        return { method: "anonymous", name: "anonymous" };
      },
    },
  });
  await client(StateService, "grpc over h2c", url).putState({
    workspace: "default",
    state: text('{"serial":9}'),
  });

  for (const httpVersion of ["1.1", "2"] as const) {
    const viaGet = createClient(
      StateService,
      createConnectTransport({ baseUrl: url, httpVersion, useHttpGet: true }),
    );
    seen.length = 0;
    const got = await viaGet.getState({ workspace: "default" });
    assert.equal(str(got.state), '{"serial":9}');
    assert.deepEqual(
      seen.map((r) => [r.method, r.path, r.kind]),
      [["GET", "/tfstate.v1.StateService/GetState", "rpc"]],
    );
  }

  const message = encodeURIComponent(JSON.stringify({ workspace: "default" }));
  const plain = await http1(
    `${url}/tfstate.v1.StateService/GetState?connect=v1&encoding=json&message=${message}`,
  );
  assert.equal(plain.status, 200, plain.body);
  assert.equal(Buffer.from(JSON.parse(plain.body).state, "base64").toString(), '{"serial":9}');
});

test("/readyz and health report not ready while the registry is down; /healthz stays ok", async () => {
  const other = await fx.serve();
  const { url } = await fx.serve({
    backend: { repository: "127.0.0.1:1/tfstate/nowhere", retry: { maxAttempts: 1 } },
    server: { readinessCacheMs: 0 },
  });
  const readyz = await http1(`${url}/readyz`);
  assert.equal(readyz.status, 503);
  assert.match(readyz.body, /^not ready: .*127\.0\.0\.1:1/);
  assert.equal((await http1(`${url}/healthz`)).status, 200);
  const h = createClient(Health, createGrpcTransport({ baseUrl: url }));
  assert.equal((await h.check({})).status, HealthCheckResponse_ServingStatus.NOT_SERVING);
  assert.equal((await http1(`${other.url}/readyz`)).status, 200);
});

test("extra routes are mounted by prefix and pass the one authentication point, like RPCs", async () => {
  const route: ExtraRoute = {
    prefix: "/terraform/state/",
    async handle(req, res, ctx) {
      res.setHeader("content-type", "text/plain");
      try {
        const principal = await ctx.authenticate();
        res.end(`${req.method} ${req.url} for ${principal.name}`);
      } catch (err) {
        res.statusCode = err instanceof UnauthenticatedError ? 401 : 403;
        res.end(String(err));
      }
    },
  };
  const { url } = await fx.serve({
    server: {
      routes: [route],
      authenticate: async (req) => {
        const auth = req.headers.get("authorization");
        if (auth === null) throw new UnauthenticatedError("credentials required");
        if (auth !== "Bearer good") throw new PermissionDeniedError("this token may not use the service");
        return { method: "token", name: "ci-bot" };
      },
    },
  });
  const good = { authorization: "Bearer good" };

  const routed = await http1(`${url}/terraform/state/prod?x=1`, { headers: good });
  assert.deepEqual([routed.status, routed.body], [200, "GET /terraform/state/prod?x=1 for ci-bot"]);
  assert.equal((await http1(`${url}/terraform/state/prod`)).status, 401);
  assert.equal(
    (await http1(`${url}/terraform/state/prod`, { headers: { authorization: "Bearer bad" } })).status,
    403,
  );
  assert.equal(
    (await http1(`${url}/terraform/statex`, { headers: good })).status,
    404,
    "a prefix is a path boundary",
  );

  for (const transport of [
    createGrpcTransport({ baseUrl: url }),
    createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
    createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }),
  ]) {
    const c = createClient(StateService, transport);
    await assert.rejects(
      c.getLock({ workspace: "default" }),
      (e) => ConnectError.from(e).code === Code.Unauthenticated,
    );
    await assert.rejects(
      c.getLock({ workspace: "default" }, { headers: { authorization: "Bearer bad" } }),
      (e) => ConnectError.from(e).code === Code.PermissionDenied,
    );
    assert.equal((await c.getLock({ workspace: "default" }, { headers: good })).lock, undefined);
  }
  // Probes come without credentials.
  assert.equal((await http1(`${url}/healthz`)).status, 200);
  assert.equal((await http1(`${url}/readyz`)).status, 200);
  const h = createClient(Health, createGrpcTransport({ baseUrl: url }));
  assert.equal((await h.check({})).status, HealthCheckResponse_ServingStatus.SERVING);
});

test("with a certificate it serves TLS, negotiating h2 or http/1.1 by ALPN on one port", async () => {
  const certs = await createTestCertificates();
  after(() => certs.remove());
  const [cert, key, ca] = await Promise.all([
    readFile(certs.serverCertFile),
    readFile(certs.serverKeyFile),
    readFile(certs.caCertFile),
  ]);
  const { url } = await fx.serve({ server: { tls: { cert, key } } });
  assert.match(url, /^https:\/\//);
  const { port } = new URL(url);

  for (const [offered, expected] of [
    [["h2", "http/1.1"], "h2"],
    [["http/1.1"], "http/1.1"],
  ] as const) {
    const negotiated = await new Promise<string | false>((resolve, reject) => {
      const s = tls.connect(
        { host: "127.0.0.1", port: Number(port), ca, ALPNProtocols: [...offered] },
        () => {
          resolve(s.alpnProtocol ?? false);
          s.end();
        },
      );
      s.on("error", reject);
    });
    assert.equal(negotiated, expected);
  }

  const grpc = createClient(StateService, createGrpcTransport({ baseUrl: url, nodeOptions: { ca } }));
  await grpc.putState({ workspace: "default", state: text('{"tls":true}') });
  const overH1 = createClient(
    StateService,
    createConnectTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { ca } }),
  );
  assert.equal(str((await overH1.getState({ workspace: "default" })).state), '{"tls":true}');
  const webH1 = createClient(
    StateService,
    createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { ca } }),
  );
  assert.equal(str((await webH1.getState({ workspace: "default" })).state), '{"tls":true}');

  const plain = await new Promise<{ status: number; version: string }>((resolve, reject) => {
    https
      .get(`${url}/healthz`, { ca, agent: false }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, version: res.httpVersion });
      })
      .on("error", reject);
  });
  assert.deepEqual(plain, { status: 200, version: "1.1" });
});

test("shutdown ends WatchLock streams and lock waits with UNAVAILABLE, finishes an upload, and closes", async () => {
  const served = await fx.serve({ server: { shutdownGraceMs: 5000 } });
  const owner = client(StateService, "grpc over h2c", served.url);
  await owner.lock({ workspace: "default", lock: { id: "held" } });

  const watchers = (["grpc over h2c", "connect+json over HTTP/1.1", "grpc-web over HTTP/1.1"] as const).map(
    (p) => {
      const it = client(StateService, p, served.url)
        .watchLock({ workspace: "default" })
        [Symbol.asyncIterator]();
      return { p, it };
    },
  );
  for (const w of watchers) {
    assert.equal((await w.it.next()).value?.kind, LockEventKind.SNAPSHOT, w.p);
    assert.equal((await w.it.next()).value?.kind, LockEventKind.SNAPSHOT_COMPLETE, w.p);
  }
  // A Lock waiting for the held lock is abandoned with UNAVAILABLE, so its client retries elsewhere.
  // An upload in progress when the shutdown begins is completed.
  const slowBody = text(JSON.stringify({ serial: 2, pad: "x".repeat(200_000) }));
  async function* slowUpload() {
    yield {
      payload: { case: "header" as const, value: { workspace: "other", sizeBytes: BigInt(slowBody.length) } },
    };
    for (let i = 0; i < slowBody.length; i += 50_000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      yield { payload: { case: "chunk" as const, value: slowBody.subarray(i, i + 50_000) } };
    }
  }
  const uploading = owner.uploadState(slowUpload());
  const waiting = owner
    .lock({ workspace: "default", lock: { id: "waiter" }, wait: durationFromMs(60_000) })
    .then(
      () => undefined,
      (err: unknown) => err,
    );
  await new Promise((resolve) => setTimeout(resolve, 100));

  const started = Date.now();
  const stopped = served.stop();
  for (const w of watchers) {
    const rest = await drain({ [Symbol.asyncIterator]: () => w.it });
    assert.equal(ConnectError.from(rest.error).code, Code.Unavailable, `${w.p}: ${String(rest.error)}`);
  }
  assert.equal(ConnectError.from(await waiting).code, Code.Unavailable);
  assert.equal((await uploading).metadata?.sizeBytes, BigInt(slowBody.length));
  await stopped;
  const took = Date.now() - started;
  assert.ok(took < 2000, `shutdown took ${took} ms; it must not wait for the grace period`);
  await assert.rejects(http1(`${served.url}/healthz`), /ECONNREFUSED/);
});
