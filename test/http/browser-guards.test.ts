/**
 * The browser guards (src/http/browser-guards.ts) on a real server: a web page elsewhere cannot
 * write a state (the cross-site text/plain POST), the server's own pages and configured
 * origins can (with CORS for connect-web), and a Host the server does not answer for (DNS
 * rebinding) is refused before any handler.
 */
import assert from "node:assert/strict";
import http from "node:http";
import http2 from "node:http2";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport as createWebTransport } from "@connectrpc/connect-web";
import { loadConfig } from "../../src/config/load.ts";
import { StateService, WatchLockRequestSchema } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { allowedHostsFor } from "../../src/http/browser-guards.ts";
import { runCli } from "../cli/cli-process.ts";
import { serveOnDisk } from "./disk-server.ts";
import { envelope, frames, rawH2 } from "./wire.ts";

const DASHBOARD = "https://dash.example.com";
const EVIL = "https://evil.example";
const PUT_STATE = "/tfstate.v1.StateService/PutState";
const WATCH_LOCK = "/tfstate.v1.StateService/WatchLock";

const srv = await serveOnDisk({
  allowedOrigins: [DASHBOARD],
  allowedHosts: allowedHostsFor("127.0.0.1", undefined),
});
const base = srv.url;
const port = srv.port;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request with exactly these headers (Host included, when given), as a browser sends it. */
function send(
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array } = {},
): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const req = http.request(
      `${base}${path}`,
      { method: opts.method ?? "GET", headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

const stateWithSerial = (serial: number) =>
  JSON.stringify({ version: 4, terraform_version: "1.9.0", serial, lineage: "guards", outputs: {} });

async function serialOf(workspace: string): Promise<number | undefined> {
  const payload = await srv.coordinator.getState(workspace);
  return payload === null ? undefined : (JSON.parse(Buffer.from(payload.data).toString()).serial as number);
}

const putStateJson = (workspace: string, serial: number) =>
  JSON.stringify({ workspace, state: Buffer.from(stateWithSerial(serial)).toString("base64") });

test("the issue's attack: a cross-site text/plain POST to the http backend is refused 403 and writes nothing", async () => {
  const ok = await send("/terraform/state/attacked", { method: "POST", body: stateWithSerial(1) });
  assert.equal(ok.status, 200, ok.body);

  for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]) {
    const refused = await send("/terraform/state/attacked", {
      method: "POST",
      headers: { origin: EVIL, "content-type": contentType, "sec-fetch-site": "cross-site" },
      body: stateWithSerial(666),
    });
    assert.equal(refused.status, 403, contentType);
    assert.match(refused.body, /"https:\/\/evil\.example"/, "names the origin refused");
    assert.match(refused.body, /--allowed-origins https:\/\/evil\.example/, "says how to allow it");
  }
  const lock = await send("/terraform/state/attacked/lock", {
    method: "LOCK",
    headers: { origin: EVIL },
    body: JSON.stringify({ ID: "evil", Operation: "OperationTypeApply" }),
  });
  assert.equal(lock.status, 403);

  assert.equal(await serialOf("attacked"), 1, "serial 666 never landed");
  const lockState = await srv.coordinator.getLock("attacked");
  assert.equal(lockState.state, "unlocked");
});

test("a cross-site POST to a Connect route never reaches its handler", async () => {
  for (const contentType of ["text/plain", "application/json"]) {
    const refused = await send(PUT_STATE, {
      method: "POST",
      headers: { origin: EVIL, "content-type": contentType },
      body: putStateJson("rpc-attacked", 666),
    });
    assert.equal(refused.status, 403, contentType);
    assert.match(refused.body, /--allowed-origins https:\/\/evil\.example/);
  }
  assert.equal(await serialOf("rpc-attacked"), undefined, "no state was written");
});

test("Origin null and a malformed Origin are refused; a cross-site POST stripped of its Origin too", async () => {
  const nullOrigin = await send("/terraform/state/odd", {
    method: "POST",
    headers: { origin: "null" },
    body: stateWithSerial(1),
  });
  assert.equal(nullOrigin.status, 403);
  assert.match(nullOrigin.body, /opaque origin/);
  const malformed = await send("/terraform/state/odd", {
    method: "POST",
    headers: { origin: "evil.example" },
    body: stateWithSerial(1),
  });
  assert.equal(malformed.status, 403);
  assert.match(malformed.body, /is not an origin/);

  const stripped = await send("/terraform/state/odd", {
    method: "POST",
    headers: { "sec-fetch-site": "cross-site" },
    body: stateWithSerial(1),
  });
  assert.equal(stripped.status, 403);
  assert.match(stripped.body, /cross-site POST request without an Origin header/);
  assert.equal(await serialOf("odd"), undefined);

  // A link followed from another site is a cross-site GET: it only reads, and is answered.
  const read = await send("/healthz", { headers: { "sec-fetch-site": "cross-site" } });
  assert.equal(read.status, 200);
  const noState = await send("/terraform/state/odd", { headers: { "sec-fetch-site": "cross-site" } });
  assert.equal(noState.status, 404);
});

test("the server's own origin (the dashboard) is served, on the http backend and on RPCs", async () => {
  const own = `http://127.0.0.1:${port}`;
  const write = await send("/terraform/state/same-origin", {
    method: "POST",
    headers: { origin: own, "sec-fetch-site": "same-origin" },
    body: stateWithSerial(7),
  });
  assert.equal(write.status, 200, write.body);
  assert.equal(await serialOf("same-origin"), 7);

  // Under another loopback name, the origin follows the Host the browser used.
  const rpc = await send(PUT_STATE, {
    method: "POST",
    headers: {
      host: `localhost:${port}`,
      origin: `http://localhost:${port}`,
      "content-type": "application/json",
    },
    body: putStateJson("same-origin", 8),
  });
  assert.equal(rpc.status, 200, rpc.body);
  assert.equal(rpc.headers["access-control-allow-origin"], undefined, "no CORS needed for its own pages");
  assert.equal(await serialOf("same-origin"), 8);

  // Same host, other scheme or port: another origin.
  for (const other of [`https://127.0.0.1:${port}`, `http://127.0.0.1:${port + 1}`]) {
    const refused = await send("/terraform/state/same-origin", {
      method: "POST",
      headers: { origin: other },
      body: stateWithSerial(9),
    });
    assert.equal(refused.status, 403, other);
  }
  assert.equal(await serialOf("same-origin"), 8);
});

test("a configured origin gets CORS on preflight and on the actual response", async () => {
  const preflight = await send(PUT_STATE, {
    method: "OPTIONS",
    headers: {
      origin: DASHBOARD,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,connect-protocol-version,content-type",
    },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers["access-control-allow-origin"], DASHBOARD);
  assert.equal(preflight.headers["access-control-allow-methods"], "POST, GET");
  const allowed = String(preflight.headers["access-control-allow-headers"]).split(", ");
  for (const h of [
    "authorization",
    "content-type",
    "connect-protocol-version",
    "connect-timeout-ms",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
  ]) {
    assert.ok(allowed.includes(h), `${h} may be sent`);
  }
  assert.equal(preflight.headers["access-control-max-age"], "7200");
  assert.equal(preflight.headers.vary, "Origin");

  const actual = await send(PUT_STATE, {
    method: "POST",
    headers: { origin: DASHBOARD, "content-type": "application/json" },
    body: putStateJson("cors", 3),
  });
  assert.equal(actual.status, 200, actual.body);
  assert.equal(actual.headers["access-control-allow-origin"], DASHBOARD);
  const exposed = String(actual.headers["access-control-expose-headers"]).split(", ");
  for (const h of ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"]) {
    assert.ok(exposed.includes(h), `${h} is exposed`);
  }
  assert.equal(actual.headers.vary, "Origin");

  // An error answer carries them too, so the page can read it.
  const failed = await send(PUT_STATE, {
    method: "POST",
    headers: { origin: DASHBOARD, "content-type": "application/json" },
    body: JSON.stringify({ workspace: "bad\tname", state: "e30=" }),
  });
  assert.equal(failed.status, 400);
  assert.equal(failed.headers["access-control-allow-origin"], DASHBOARD);

  // The http backend is no browser API: the origin may use it, with no CORS.
  const tf = await send("/terraform/state/cors", {
    method: "POST",
    headers: { origin: DASHBOARD },
    body: stateWithSerial(4),
  });
  assert.equal(tf.status, 200);
  assert.equal(tf.headers["access-control-allow-origin"], undefined);
  const tfPreflight = await send("/terraform/state/cors", {
    method: "OPTIONS",
    headers: { origin: DASHBOARD, "access-control-request-method": "POST" },
  });
  assert.notEqual(tfPreflight.status, 204);
  assert.equal(tfPreflight.headers["access-control-allow-origin"], undefined);

  const unknown = await send(PUT_STATE, {
    method: "OPTIONS",
    headers: { origin: EVIL, "access-control-request-method": "POST" },
  });
  assert.equal(unknown.status, 403);
  assert.equal(unknown.headers["access-control-allow-origin"], undefined);
});

test("connect-web's transport on fetch, from a configured origin, calls unary and streaming RPCs", async () => {
  const seen: Headers[] = [];
  const fetchFromDashboard: typeof globalThis.fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set("origin", DASHBOARD);
    const res = await globalThis.fetch(input, { ...init, headers });
    seen.push(res.headers);
    return res;
  };
  const web = createClient(
    StateService,
    createWebTransport({ baseUrl: base, fetch: fetchFromDashboard, useBinaryFormat: false }),
  );
  const put = await web.putState({ workspace: "web", state: Buffer.from(stateWithSerial(5)) });
  assert.equal(put.metadata?.workspace, "web");
  const got = await web.getState({ workspace: "web" });
  assert.equal(JSON.parse(Buffer.from(got.state).toString()).serial, 5);

  const watch = web.watchLock({ workspace: "web" }, { signal: AbortSignal.timeout(60_000) });
  for await (const event of watch) {
    assert.equal(event.workspace, "web");
    break;
  }
  assert.equal(seen.length, 3);
  for (const h of seen) {
    assert.equal(h.get("access-control-allow-origin"), DASHBOARD);
    assert.match(h.get("access-control-expose-headers") ?? "", /grpc-status/);
  }
  assert.equal(await serialOf("web"), 5);
});

test("bare HTTP/2 streams (WatchLock) are guarded the same way, with CORS for configured origins", async () => {
  const body = envelope(
    0,
    toBinary(WatchLockRequestSchema, create(WatchLockRequestSchema, { workspace: "h2" })),
  );
  const ct = { "content-type": "application/connect+proto" };
  const live = (b: Buffer) => frames(b).length >= 1;

  const refused = await rawH2(base, WATCH_LOCK, { ...ct, origin: EVIL }, body);
  assert.equal(refused.headers[":status"], 403);
  assert.match(refused.body.toString(), /--allowed-origins https:\/\/evil\.example/);

  const allowed = await rawH2(base, WATCH_LOCK, { ...ct, origin: DASHBOARD }, body, live);
  assert.equal(allowed.headers[":status"], 200);
  assert.equal(allowed.headers["access-control-allow-origin"], DASHBOARD);
  assert.match(String(allowed.headers["x-request-id"]), /^[0-9a-f-]{36}$/);

  const preflight = await rawH2(
    base,
    WATCH_LOCK,
    { ":method": "OPTIONS", origin: DASHBOARD, "access-control-request-method": "POST" },
    new Uint8Array(),
  );
  assert.equal(preflight.headers[":status"], 204);
  assert.equal(preflight.headers["access-control-allow-origin"], DASHBOARD);

  const rebound = await rawH2(base, WATCH_LOCK, { ...ct, ":authority": `rebind.example:${port}` }, body);
  assert.equal(rebound.headers[":status"], 421);
  assert.match(rebound.body.toString(), /"rebind\.example"/);
});

test("a foreign Host is refused 421 before any handler; the loopback names are answered", async () => {
  for (const path of ["/healthz", "/terraform/state/rebound", PUT_STATE]) {
    const refused = await send(path, {
      method: path === "/healthz" ? "GET" : "POST",
      headers: { host: `attacker.example:${port}`, "content-type": "application/json" },
      body: path === PUT_STATE ? putStateJson("rebound", 1) : path === "/healthz" ? "" : stateWithSerial(1),
    });
    assert.equal(refused.status, 421, path);
    assert.match(refused.body, /"attacker\.example"/, "names the host refused");
    assert.match(refused.body, /--allowed-hosts/, "says how to allow it");
  }
  assert.equal(await serialOf("rebound"), undefined);

  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, "LOCALHOST", "localhost."]) {
    const ok = await send("/healthz", { headers: { host } });
    assert.equal(ok.status, 200, host);
  }

  // HTTP/2 through the compatibility layer names the host in :authority.
  const session = http2.connect(base);
  try {
    const status = await new Promise<number>((resolve, reject) => {
      const req = session.request({ ":path": "/healthz", ":authority": `attacker.example:${port}` });
      req.on("response", (h) => resolve(Number(h[":status"])));
      req.on("error", reject);
      req.end();
      req.resume();
    });
    assert.equal(status, 421);
  } finally {
    session.close();
  }
});

test("probes skip the Origin rule, not the Host rule", async () => {
  const probe = await send("/readyz", { headers: { origin: EVIL } });
  assert.equal(probe.status, 200);
  const rebound = await send("/readyz", { headers: { host: "attacker.example", origin: EVIL } });
  assert.equal(rebound.status, 421);
});

test("the Host allow-list: loopback names and the --listen host, --allowed-hosts extends it, * turns it off", () => {
  const hostsOf = (...argv: string[]) => {
    const loaded = loadConfig(argv, {});
    assert.equal(loaded.kind, "config");
    return loaded.kind === "config" ? loaded.config.allowedHosts : [];
  };
  assert.deepEqual(hostsOf(), ["localhost", "127.0.0.1", "[::1]"]);
  assert.deepEqual(hostsOf("--listen", "[::1]:8080"), ["localhost", "127.0.0.1", "[::1]"]);
  assert.deepEqual(hostsOf("--listen", "10.0.0.5:8080"), ["localhost", "127.0.0.1", "[::1]", "10.0.0.5"]);
  assert.equal(hostsOf("--listen", ":8080"), undefined, "every interface: reached under any name");
  assert.deepEqual(hostsOf("--listen", ":8080", "--allowed-hosts", "TFState.example.com,*.svc.local"), [
    "localhost",
    "127.0.0.1",
    "[::1]",
    "tfstate.example.com",
    "*.svc.local",
  ]);
  assert.equal(hostsOf("--allowed-hosts", "*"), undefined);
  assert.throws(() => hostsOf("--allowed-hosts", "example.com:8080"), /--allowed-hosts.*without a port/);
  assert.throws(() => hostsOf("--allowed-origins", "*"), /--allowed-origins.*name each origin/);
  assert.throws(() => hostsOf("--allowed-origins", "dash.example.com"), /--allowed-origins.*not an origin/);
});

test("the CLI's default answers localhost and 127.0.0.1 and refuses a rebinding name", async () => {
  const run = await runCli(["--listen", "127.0.0.1:0", "--repository", "oci-layout:./data"]);
  const url = new URL(String((await run.waitForLog("listening")).url));
  const get = (host: string) =>
    new Promise<number>((resolve, reject) => {
      http
        .get(
          { host: "127.0.0.1", port: url.port, path: "/healthz", headers: { host }, agent: false },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        )
        .on("error", reject);
    });
  assert.equal(await get(`localhost:${url.port}`), 200);
  assert.equal(await get(`127.0.0.1:${url.port}`), 200);
  assert.equal(await get(`rebind.attacker.example:${url.port}`), 421);
  run.child.kill("SIGTERM");
  assert.equal((await run.exited).code, 0);
});
