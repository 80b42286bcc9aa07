import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, beforeEach, describe, test } from "node:test";
import {
  CanceledError,
  DeadlineExceededError,
  InvalidArgumentError,
  UnavailableError,
} from "../../src/errors.ts";
import { createRemoteTarget, type RemoteTarget, registryErrorInfo } from "../../src/oci/remote.ts";
import { type ProxyHandle, startProxy } from "../harness/proxy.ts";
import { type RegistryHandle, startRegistry } from "../harness/registry.ts";
import { manifestBytes, matching, OCI_MANIFEST, STATE_TYPE } from "./remote-fixtures.ts";

const MANIFEST_PATH = /\/manifests\/latest$/;

describe("remote target: retries", () => {
  let registry: RegistryHandle;
  let proxy: ProxyHandle;
  let target: RemoteTarget;
  let manifest: Uint8Array;

  before(async () => {
    registry = await startRegistry();
    proxy = await startProxy(registry.url);
    target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/retry`,
      plainHTTP: true,
      retry: { maxAttempts: 3, initialBackoffMs: 20, maxBackoffMs: 2000 },
    });
    await target.pushBlob({ bytes: Buffer.from("{}") }, "application/vnd.oci.empty.v1+json");
    const layer = await target.pushBlob({ bytes: Buffer.from("state") }, STATE_TYPE);
    manifest = manifestBytes([layer]);
    await target.pushManifest("latest", manifest, OCI_MANIFEST);
  });
  after(async () => {
    await target?.close();
    await proxy?.stop();
    await registry?.stop();
  });
  beforeEach(() => {
    proxy.clear();
    proxy.clearFaults();
  });

  test("503 twice, then success: three requests, one result", async () => {
    proxy.fault({ method: "GET", path: MANIFEST_PATH, times: 2, action: { kind: "status", status: 503 } });
    const got = await target.fetchManifest("latest");
    assert.equal(got?.kind, "manifest");
    assert.deepEqual(
      proxy.requests.map((r) => r.status),
      [503, 503, 200],
    );
  });

  for (const status of [408, 502, 504]) {
    test(`${status} is retried`, async () => {
      proxy.fault({ method: "HEAD", path: MANIFEST_PATH, times: 1, action: { kind: "status", status } });
      assert.notEqual(await target.resolve("latest"), null);
      assert.deepEqual(
        proxy.requests.map((r) => r.status),
        [status, 200],
      );
    });
  }

  test("429 with Retry-After waits as long as the registry asks", async () => {
    proxy.fault({
      method: "GET",
      path: MANIFEST_PATH,
      times: 1,
      action: { kind: "status", status: 429, headers: { "Retry-After": "1" } },
    });
    const started = performance.now();
    await target.fetchManifest("latest");
    const waited = performance.now() - started;
    // Our own backoff would be 10-20 ms; only Retry-After explains a wait of about a second.
    assert.ok(waited >= 950, `waited only ${waited} ms`);
    assert.ok(waited < 3000, `waited ${waited} ms`);
    assert.equal(proxy.requests.length, 2);
  });

  test("Retry-After as an HTTP date is honoured, capped by maxBackoff", async () => {
    const capped = createRemoteTarget({
      repository: `${proxy.host}/tfstate/retry`,
      plainHTTP: true,
      retry: { initialBackoffMs: 10, maxBackoffMs: 300 },
    });
    try {
      proxy.fault({
        method: "GET",
        path: MANIFEST_PATH,
        times: 1,
        action: {
          kind: "status",
          status: 503,
          headers: { "Retry-After": new Date(Date.now() + 60_000).toUTCString() },
        },
      });
      const started = performance.now();
      await capped.fetchManifest("latest");
      const waited = performance.now() - started;
      assert.ok(waited >= 280 && waited < 1500, `waited ${waited} ms`);
    } finally {
      await capped.close();
    }
  });

  test("a connection reset is retried", async () => {
    proxy.fault({ method: "GET", path: MANIFEST_PATH, times: 1, action: { kind: "reset" } });
    assert.equal((await target.fetchManifest("latest"))?.kind, "manifest");
    assert.equal(matching(proxy.requests, "GET").length, 2);
  });

  test("500 on a GET is retried; 500 on a PUT is not (the write may have happened)", async () => {
    proxy.fault({ method: "GET", path: MANIFEST_PATH, times: 1, action: { kind: "status", status: 500 } });
    assert.equal((await target.fetchManifest("latest"))?.kind, "manifest");
    assert.equal(proxy.requests.length, 2);

    proxy.clear();
    proxy.fault({ method: "PUT", path: MANIFEST_PATH, times: 1, action: { kind: "status", status: 500 } });
    await assert.rejects(target.pushManifest("latest", manifest, OCI_MANIFEST), (err) => {
      assert.ok(err instanceof UnavailableError);
      assert.equal(registryErrorInfo(err)?.status, 500);
      return true;
    });
    assert.equal(proxy.requests.length, 1);
  });

  test("after the last attempt: UnavailableError naming the host and the last status", async () => {
    proxy.fault({
      method: "GET",
      path: MANIFEST_PATH,
      action: {
        kind: "status",
        status: 503,
        body: JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "down for maintenance" }] }),
      },
    });
    await assert.rejects(target.fetchManifest("latest"), (err) => {
      assert.ok(err instanceof UnavailableError);
      assert.ok(err.message.includes(proxy.host), err.message);
      assert.match(err.message, /3 attempts/);
      assert.match(err.message, /503/);
      assert.equal(registryErrorInfo(err)?.status, 503);
      assert.deepEqual(registryErrorInfo(err)?.registryCodes, ["UNAVAILABLE"]);
      return true;
    });
    assert.equal(proxy.requests.length, 3, "bounded by maxAttempts");
  });

  test("the deadline bounds retries: no wait that would pass it", async () => {
    const slow = createRemoteTarget({
      repository: `${proxy.host}/tfstate/retry`,
      plainHTTP: true,
      retry: { maxAttempts: 10, initialBackoffMs: 1000, maxBackoffMs: 30_000 },
    });
    try {
      proxy.fault({ method: "GET", path: MANIFEST_PATH, action: { kind: "status", status: 503 } });
      const started = performance.now();
      await assert.rejects(
        slow.fetchManifest("latest", { deadline: Date.now() + 300 }),
        DeadlineExceededError,
      );
      assert.ok(performance.now() - started < 250, "gave up at once instead of sleeping past the deadline");
      assert.equal(proxy.requests.length, 1);
    } finally {
      await slow.close();
    }
  });

  test("a request in flight is cut off at the deadline", async () => {
    proxy.fault({ method: "GET", path: MANIFEST_PATH, times: 1, action: { kind: "delay", ms: 2000 } });
    const started = performance.now();
    await assert.rejects(
      target.fetchManifest("latest", { deadline: Date.now() + 200 }),
      DeadlineExceededError,
    );
    const took = performance.now() - started;
    assert.ok(took >= 150 && took < 1000, `took ${took} ms`);
  });

  test("a deadline already passed fails before any request", async () => {
    await assert.rejects(target.resolve("latest", { deadline: Date.now() - 1 }), DeadlineExceededError);
    assert.equal(proxy.requests.length, 0);
  });

  test("the caller's abort cancels the retry wait with CanceledError", async () => {
    proxy.fault({
      method: "GET",
      path: MANIFEST_PATH,
      action: { kind: "status", status: 503, headers: { "Retry-After": "2" } },
    });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("user pressed ^C")), 100);
    const started = performance.now();
    await assert.rejects(target.fetchManifest("latest", { signal: controller.signal }), CanceledError);
    assert.ok(performance.now() - started < 1000);
  });

  test("a registry that refuses connections is UnavailableError after bounded attempts", async () => {
    const port = await closedPort();
    const down = createRemoteTarget({
      repository: `127.0.0.1:${port}/tfstate/down`,
      plainHTTP: true,
      retry: { maxAttempts: 2, initialBackoffMs: 10, maxBackoffMs: 20 },
    });
    try {
      await assert.rejects(down.ping(), (err) => {
        assert.ok(err instanceof UnavailableError);
        assert.match(err.message, /ECONNREFUSED/);
        assert.match(err.message, /2 attempts/);
        assert.ok(err.message.includes(`127.0.0.1:${port}`));
        return true;
      });
    } finally {
      await down.close();
    }
  });

  test("invalid retry options are refused", () => {
    assert.throws(
      () => createRemoteTarget({ repository: `${proxy.host}/x`, retry: { maxAttempts: 0 } }),
      InvalidArgumentError,
    );
  });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
