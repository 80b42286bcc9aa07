import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { DataLossError, NotFoundError, ResourceExhaustedError, UnavailableError } from "../../src/errors.ts";
import { createRemoteTarget, type RemoteTarget } from "../../src/oci/remote.ts";
import { type ProxyHandle, startProxy } from "../harness/proxy.ts";
import { type RegistryHandle, startRegistry } from "../harness/registry.ts";
import { collect, digestOf, matching, STATE_TYPE, streamOf } from "./remote-fixtures.ts";

const CHUNK = 1024 * 1024;

describe("remote target: blobs against Distribution", () => {
  let registry: RegistryHandle;
  let proxy: ProxyHandle;
  let target: RemoteTarget;

  before(async () => {
    registry = await startRegistry();
    proxy = await startProxy(registry.url);
    target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/blobs`,
      plainHTTP: true,
      chunkSize: CHUNK,
      retry: { initialBackoffMs: 10, maxBackoffMs: 50 },
    });
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

  test("an in-memory blob round-trips, verified, in 2 upload requests (single POST tried once)", async () => {
    const data = Buffer.from('{"version":4,"serial":1}');
    const desc = await target.pushBlob({ bytes: data }, STATE_TYPE);
    assert.deepEqual(desc, { mediaType: STATE_TYPE, digest: digestOf(data), size: data.length });
    // Distribution drops the body of POST ?digest= and answers 202: the client PUTs to that session.
    const first = proxy.requests.map((r) => `${r.method} ${r.status}`);
    assert.deepEqual(first, ["POST 202", "PUT 201"]);
    assert.match(proxy.requests[0]?.path ?? "", /\/blobs\/uploads\/\?digest=sha256%3A/);
    assert.match(proxy.requests[1]?.path ?? "", /_state=.*&digest=sha256%3A[0-9a-f]{64}$/);
    assert.equal(proxy.requests[1]?.headers["content-type"], "application/octet-stream");

    proxy.clear();
    const other = Buffer.from("second blob");
    await target.pushBlob({ bytes: other }, STATE_TYPE);
    // Having learnt that the registry lacks single-request uploads, it no longer sends the body twice.
    assert.deepEqual(
      proxy.requests.map(
        (r) => `${r.method} ${r.path.split("?")[0]?.replace(/uploads\/.+/, "uploads/<id>")}`,
      ),
      ["POST /v2/tfstate/blobs/blobs/uploads/", "PUT /v2/tfstate/blobs/blobs/uploads/<id>"],
    );
    assert.equal(proxy.requests[0]?.headers["content-length"] ?? "0", "0");

    proxy.clear();
    assert.equal(await target.blobExists(desc.digest), true);
    const fetched = await collect(await target.fetchBlob(desc));
    assert.deepEqual(fetched, data);
    assert.equal(matching(proxy.requests, "HEAD").length, 1);
    assert.equal(matching(proxy.requests, "GET").length, 1, "no HEAD before GET");
  });

  test("a 20 MiB stream goes up in PATCH chunks with the digest computed on the way", async () => {
    const data = randomBytes(20 * CHUNK);
    const desc = await target.pushBlob({ stream: streamOf(data, 300 * 1024) }, STATE_TYPE);
    assert.equal(desc.digest, digestOf(data));
    assert.equal(desc.size, data.length);
    const patches = matching(proxy.requests, "PATCH");
    // 20 chunks: 19 PATCHes, the last chunk rides on the closing PUT.
    assert.equal(patches.length, 19);
    assert.deepEqual(
      patches.slice(0, 2).map((r) => r.headers["content-range"]),
      [`0-${CHUNK - 1}`, `${CHUNK}-${2 * CHUNK - 1}`],
    );
    assert.equal(matching(proxy.requests, "POST").length, 1);
    assert.equal(matching(proxy.requests, "PUT").length, 1);
    const back = await collect(await target.fetchBlob(desc));
    assert.equal(back.length, data.length);
    assert.ok(back.equals(data));
  });

  test("an in-memory blob larger than the chunk size is uploaded in chunks too", async () => {
    const data = randomBytes(2 * CHUNK + 17);
    const desc = await target.pushBlob({ bytes: data }, STATE_TYPE);
    assert.equal(desc.digest, digestOf(data));
    assert.deepEqual(
      proxy.requests.map((r) => r.method),
      ["POST", "PATCH", "PATCH", "PUT"],
    );
    assert.ok((await collect(await target.fetchBlob(desc))).equals(data));
  });

  test("a short stream is uploaded like in-memory content (no PATCH)", async () => {
    const data = Buffer.from("small streamed state");
    const desc = await target.pushBlob({ stream: streamOf(data, 4) }, STATE_TYPE);
    assert.equal(desc.digest, digestOf(data));
    assert.equal(matching(proxy.requests, "PATCH").length, 0);
    assert.deepEqual(await collect(await target.fetchBlob(desc)), data);
  });

  test("an empty stream stores the empty blob", async () => {
    const desc = await target.pushBlob({ stream: streamOf(new Uint8Array(0)) }, STATE_TYPE);
    assert.equal(desc.digest, digestOf(new Uint8Array(0)));
    assert.equal(desc.size, 0);
    assert.equal((await collect(await target.fetchBlob(desc))).length, 0);
  });

  test("maxSize: a stream passing the limit is refused and its upload session cancelled", async () => {
    const data = randomBytes(3 * CHUNK);
    const tooLarge = new Error("state too large");
    await assert.rejects(
      target.pushBlob({ stream: streamOf(data) }, STATE_TYPE, {
        maxSize: 2 * CHUNK,
        onTooLarge: (limit) => {
          assert.equal(limit, 2 * CHUNK);
          return tooLarge;
        },
      }),
      (err) => err === tooLarge,
    );
    const cancel = matching(proxy.requests, "DELETE", /\/blobs\/uploads\//);
    assert.equal(cancel.length, 1, "the session was cancelled");
    assert.equal(cancel[0]?.status, 204);
    assert.equal(matching(proxy.requests, "PUT").length, 0);
    assert.equal(await target.blobExists(digestOf(data)), false);
  });

  test("maxSize: in-memory content over the limit fails before any request", async () => {
    await assert.rejects(
      target.pushBlob({ bytes: randomBytes(100) }, STATE_TYPE, { maxSize: 99 }),
      (err) => err instanceof ResourceExhaustedError && err.limit === 99,
    );
    assert.equal(proxy.requests.length, 0);
  });

  test("a missing blob is NotFoundError on fetch and false on HEAD", async () => {
    const digest = digestOf(Buffer.from("never pushed"));
    assert.equal(await target.blobExists(digest), false);
    await assert.rejects(target.fetchBlob({ digest, size: 12 }), NotFoundError);
  });

  test("a blob corrupted on the registry's disk fails with DataLossError", async () => {
    const data = Buffer.from("precious state that will rot on disk");
    const desc = await target.pushBlob({ bytes: data }, STATE_TYPE);
    const hex = desc.digest.slice("sha256:".length);
    const blobDir = path.join(registry.root, "data/docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex);
    assert.deepEqual(await readdir(blobDir), ["data"]);
    // Same length, different bytes: only the digest check can notice.
    await writeFile(path.join(blobDir, "data"), Buffer.from(data.toString("utf8").toUpperCase()));
    const stream = await target.fetchBlob(desc);
    await assert.rejects(collect(stream), (err) => {
      assert.ok(err instanceof DataLossError);
      assert.match(err.message, new RegExp(desc.digest));
      return true;
    });
  });

  test("a blob served with other bytes by the network fails with DataLossError", async () => {
    const data = Buffer.from("the real content");
    const desc = await target.pushBlob({ bytes: data }, STATE_TYPE);
    proxy.fault({
      method: "GET",
      path: /\/blobs\/sha256:/,
      times: 1,
      action: { kind: "status", status: 200, body: "the fake content" },
    });
    await assert.rejects(async () => collect(await target.fetchBlob(desc)), DataLossError);
    // A size that differs from the descriptor is caught before reading.
    proxy.fault({
      method: "GET",
      path: /\/blobs\/sha256:/,
      times: 1,
      action: { kind: "status", status: 200, body: "short" },
    });
    await assert.rejects(target.fetchBlob(desc), DataLossError);
  });

  test("a connection reset mid-PATCH of a stream is reported, not retried, and the session cancelled", async () => {
    const data = randomBytes(3 * CHUNK);
    proxy.fault({ method: "PATCH", times: 1, action: { kind: "reset" } });
    await assert.rejects(target.pushBlob({ stream: streamOf(data) }, STATE_TYPE), (err) => {
      assert.ok(err instanceof UnavailableError);
      assert.match(err.message, /cannot be replayed/);
      return true;
    });
    assert.equal(matching(proxy.requests, "PATCH").length, 1, "no second PATCH");
    assert.equal(matching(proxy.requests, "DELETE", /\/blobs\/uploads\//).length, 1);
  });

  test("an in-memory upload whose PUT hits a 503 is retried whole, with a fresh session", async () => {
    const data = Buffer.from("retry me whole");
    proxy.fault({ method: "PUT", times: 1, action: { kind: "status", status: 503 } });
    const desc = await target.pushBlob({ bytes: data }, STATE_TYPE);
    assert.deepEqual(
      proxy.requests.map((r) => `${r.method} ${r.status}`),
      ["POST 202", "PUT 503", "POST 202", "PUT 201"],
    );
    assert.deepEqual(await collect(await target.fetchBlob(desc)), data);
  });
});

describe("remote target: blob redirects and single-request uploads", () => {
  const USER = "bob";
  const PASSWORD = "redirect-pw";
  let registry: RegistryHandle;
  let proxy: ProxyHandle;
  let storage: http.Server;
  let storageUrl: string;
  const storageSeen: Array<{ path: string; authorization: string | undefined }> = [];
  const stored = Buffer.from("blob bytes served by object storage");

  before(async () => {
    registry = await startRegistry({ auth: { kind: "basic", users: { [USER]: PASSWORD } } });
    proxy = await startProxy(registry.url);
    // Stands in for the object storage a registry redirects blob downloads to.
    storage = http.createServer((req, res) => {
      storageSeen.push({ path: req.url ?? "", authorization: req.headers.authorization });
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": stored.length });
      res.end(stored);
    });
    await new Promise<void>((resolve) => storage.listen(0, "127.0.0.1", resolve));
    storageUrl = `http://127.0.0.1:${(storage.address() as AddressInfo).port}`;
  });
  after(async () => {
    storage?.closeAllConnections();
    await new Promise<void>((resolve) => (storage ? storage.close(() => resolve()) : resolve()));
    await proxy?.stop();
    await registry?.stop();
  });
  beforeEach(() => {
    proxy.clear();
    proxy.clearFaults();
    storageSeen.length = 0;
  });

  function target(): RemoteTarget {
    return createRemoteTarget({
      repository: `${proxy.host}/tfstate/redirect`,
      plainHTTP: true,
      credentials: { username: USER, password: PASSWORD },
    });
  }

  test("a blob GET follows a redirect to another host without sending credentials there", async () => {
    const t = target();
    try {
      await t.ping();
      const digest = digestOf(stored);
      proxy.fault({
        method: "GET",
        path: /\/blobs\/sha256:/,
        times: 1,
        action: { kind: "status", status: 307, headers: { Location: `${storageUrl}/bucket/object?sig=abc` } },
      });
      const got = await collect(await t.fetchBlob({ digest, size: stored.length }));
      assert.deepEqual(got, stored);
      assert.deepEqual(storageSeen, [{ path: "/bucket/object?sig=abc", authorization: undefined }]);
      assert.match(String(proxy.requests.at(-1)?.headers.authorization), /^Basic /);
    } finally {
      await t.close();
    }
  });

  test("a same-origin relative redirect keeps the credentials; more than 5 redirects fail", async () => {
    const t = target();
    try {
      const desc = await t.pushBlob({ bytes: Buffer.from("redirected twice") }, STATE_TYPE);
      proxy.clear();
      proxy.fault({
        method: "GET",
        path: /\/blobs\/sha256:[0-9a-f]+$/,
        times: 1,
        action: {
          kind: "status",
          status: 302,
          headers: { Location: `/v2/tfstate/redirect/blobs/${desc.digest}?hop=1` },
        },
      });
      assert.equal((await collect(await t.fetchBlob(desc))).toString(), "redirected twice");
      assert.equal(proxy.requests.length, 2);
      assert.match(String(proxy.requests[1]?.headers.authorization), /^Basic /);

      proxy.fault({
        method: "GET",
        path: /\/blobs\//,
        action: {
          kind: "status",
          status: 307,
          headers: { Location: `/v2/tfstate/redirect/blobs/${desc.digest}` },
        },
      });
      proxy.clear();
      await assert.rejects(t.fetchBlob(desc), /more than 5 redirects/);
      assert.equal(proxy.requests.length, 6);
    } finally {
      await t.close();
    }
  });

  test("where the registry completes a single POST ?digest=, every small upload is one request", async () => {
    const t = target();
    try {
      await t.ping();
      proxy.clear();
      // Answer as a registry with single-request uploads does (Distribution itself answers 202).
      proxy.fault({
        method: "POST",
        path: /\/blobs\/uploads\/\?digest=sha256/,
        action: { kind: "status", status: 201, headers: { Location: "/v2/tfstate/redirect/blobs/x" } },
      });
      const a = Buffer.from("one request");
      const b = Buffer.from("another single request");
      assert.equal((await t.pushBlob({ bytes: a }, STATE_TYPE)).digest, digestOf(a));
      assert.equal((await t.pushBlob({ bytes: b }, STATE_TYPE)).digest, digestOf(b));
      assert.deepEqual(
        proxy.requests.map((r) => `${r.method} ${r.status} ${r.headers["content-length"]}`),
        [`POST 201 ${a.length}`, `POST 201 ${b.length}`],
      );
    } finally {
      await t.close();
    }
  });
});
