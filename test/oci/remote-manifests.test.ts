import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import {
  DataLossError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnimplementedError,
} from "../../src/errors.ts";
import { MAX_MANIFEST_BYTES } from "../../src/oci/media-types.ts";
import { createRemoteTarget, type RemoteTarget, registryErrorInfo } from "../../src/oci/remote.ts";
import { type ProxyHandle, startProxy } from "../harness/proxy.ts";
import { type RegistryHandle, startRegistry } from "../harness/registry.ts";
import {
  digestOf,
  EMPTY_DIGEST,
  manifestBytes,
  matching,
  OCI_MANIFEST,
  STATE_TYPE,
} from "./remote-fixtures.ts";

describe("remote target: manifests and tags against Distribution", () => {
  let registry: RegistryHandle;
  let proxy: ProxyHandle;
  let target: RemoteTarget;

  async function pushArtifact(
    t: RemoteTarget,
    tag: string,
    content: string,
  ): Promise<{ digest: string; bytes: Uint8Array }> {
    await t.pushBlob({ bytes: Buffer.from("{}") }, "application/vnd.oci.empty.v1+json");
    const layer = await t.pushBlob({ bytes: Buffer.from(content) }, STATE_TYPE);
    const bytes = manifestBytes([layer], { serial: content });
    const desc = await t.pushManifest(tag, bytes, OCI_MANIFEST);
    return { digest: desc.digest, bytes };
  }

  before(async () => {
    registry = await startRegistry();
    proxy = await startProxy(registry.url);
    target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/manifests`,
      plainHTTP: true,
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
    proxy.paginateTags(undefined);
  });

  test("put by tag, then get and head by tag and digest return the exact bytes and descriptor", async () => {
    await target.pushBlob({ bytes: Buffer.from("{}") }, "application/vnd.oci.empty.v1+json");
    const layer = await target.pushBlob({ bytes: Buffer.from("state-1") }, STATE_TYPE);
    const bytes = manifestBytes([layer]);
    proxy.clear();
    const desc = await target.pushManifest("latest", bytes, OCI_MANIFEST);
    assert.deepEqual(desc, { mediaType: OCI_MANIFEST, digest: digestOf(bytes), size: bytes.length });
    assert.equal(proxy.requests.length, 1, "a manifest PUT is one request");
    assert.equal(proxy.requests[0]?.headers["content-type"], OCI_MANIFEST);

    proxy.clear();
    const byTag = await target.fetchManifest("latest");
    assert.equal(byTag?.kind, "manifest");
    assert.ok(byTag?.kind === "manifest");
    assert.deepEqual(Buffer.from(byTag.bytes), Buffer.from(bytes));
    assert.deepEqual(byTag.descriptor, desc);
    assert.equal(proxy.requests.length, 1, "a manifest GET is exactly one request");
    assert.match(
      String(proxy.requests[0]?.headers.accept),
      /application\/vnd\.oci\.image\.manifest\.v1\+json/,
    );

    const byDigest = await target.fetchManifest(desc.digest);
    assert.ok(byDigest?.kind === "manifest");
    assert.deepEqual(Buffer.from(byDigest.bytes), Buffer.from(bytes));

    assert.deepEqual(await target.resolve("latest"), desc);
    assert.deepEqual(await target.resolve(desc.digest), desc);
    assert.equal(matching(proxy.requests, "HEAD").length, 2);
  });

  test("put by digest works and a digest that does not match the bytes is refused locally", async () => {
    const { bytes } = await pushArtifact(target, "by-digest-src", "by-digest");
    const digest = digestOf(bytes);
    assert.equal((await target.pushManifest(digest, bytes, OCI_MANIFEST)).digest, digest);
    proxy.clear();
    await assert.rejects(target.pushManifest(EMPTY_DIGEST, bytes, OCI_MANIFEST), InvalidArgumentError);
    assert.equal(proxy.requests.length, 0);
  });

  test("missing tags and digests read as null", async () => {
    assert.equal(await target.fetchManifest("no-such-tag"), null);
    assert.equal(await target.resolve("no-such-tag"), null);
    assert.equal(await target.fetchManifest(digestOf(Buffer.from("nothing"))), null);
  });

  test("a conditional GET answers unchanged with a 304, and the manifest once it moved", async () => {
    const first = await pushArtifact(target, "cond", "one");
    proxy.clear();
    const same = await target.fetchManifest("cond", { ifNoneMatch: first.digest });
    assert.deepEqual(same, { kind: "unchanged", digest: first.digest });
    assert.equal(proxy.requests.length, 1);
    assert.equal(proxy.requests[0]?.status, 304);
    assert.equal(proxy.requests[0]?.headers["if-none-match"], `"${first.digest}"`);

    const second = await pushArtifact(target, "cond", "two");
    const moved = await target.fetchManifest("cond", { ifNoneMatch: first.digest });
    assert.ok(moved?.kind === "manifest");
    assert.equal(moved.descriptor.digest, second.digest);
  });

  test("manifest bytes that do not match the registry's digest header are DataLossError naming the tag", async () => {
    const { digest } = await pushArtifact(target, "tampered", "genuine");
    const forged = manifestBytes([{ digest: EMPTY_DIGEST, size: 2 }]);
    proxy.fault({
      method: "GET",
      path: /\/manifests\/tampered$/,
      times: 1,
      action: {
        kind: "status",
        status: 200,
        headers: { "Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest },
        body: Buffer.from(forged).toString("utf8"),
      },
    });
    await assert.rejects(target.fetchManifest("tampered"), (err) => {
      assert.ok(err instanceof DataLossError);
      assert.match(err.message, /tampered/);
      return true;
    });
    // By digest the reference itself is the expectation.
    proxy.fault({
      method: "GET",
      path: /\/manifests\/sha256:/,
      times: 1,
      action: { kind: "status", status: 200, headers: { "Content-Type": OCI_MANIFEST }, body: "{}" },
    });
    await assert.rejects(target.fetchManifest(digest), DataLossError);
  });

  test("a manifest answer over the 4 MiB cap is refused", async () => {
    proxy.fault({
      method: "GET",
      path: /\/manifests\/huge$/,
      times: 1,
      action: {
        kind: "status",
        status: 200,
        headers: { "Content-Type": OCI_MANIFEST },
        body: "x".repeat(MAX_MANIFEST_BYTES + 1),
      },
    });
    await assert.rejects(target.fetchManifest("huge"), ResourceExhaustedError);
  });

  test("delete by digest removes the manifest; deleting it again is NotFoundError", async () => {
    const { digest } = await pushArtifact(target, "doomed", "bye");
    proxy.clear();
    await target.deleteManifest(digest);
    assert.deepEqual(
      proxy.requests.map((r) => `${r.method} ${r.status}`),
      ["DELETE 202"],
    );
    assert.equal(await target.resolve("doomed"), null);
    await assert.rejects(target.deleteManifest(digest), (err) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(registryErrorInfo(err)?.status, 404);
      assert.deepEqual(registryErrorInfo(err)?.registryCodes, ["MANIFEST_UNKNOWN"]);
      return true;
    });
  });

  test("deleteTag is UnimplementedError on Distribution 2.8, and the tag stays", async () => {
    await pushArtifact(target, "keep-me", "kept");
    await assert.rejects(target.deleteTag("keep-me"), (err) => {
      assert.ok(err instanceof UnimplementedError);
      assert.equal(registryErrorInfo(err)?.status, 400);
      return true;
    });
    assert.notEqual(await target.resolve("keep-me"), null);
  });

  test("deleteTag succeeds where the registry can untag (as zot and Distribution 3 answer)", async () => {
    proxy.fault({
      method: "DELETE",
      path: /\/manifests\/untag-me$/,
      times: 1,
      action: { kind: "status", status: 202 },
    });
    await target.deleteTag("untag-me");
    assert.deepEqual(
      proxy.requests.map((r) => `${r.method} ${r.path} ${r.status}`),
      ["DELETE /v2/tfstate/manifests/manifests/untag-me 202"],
    );
  });

  test("tags are listed across pages following Link headers", async () => {
    const paged = createRemoteTarget({ repository: `${proxy.host}/tfstate/paged`, plainHTTP: true });
    try {
      const tags = ["a", "b", "c", "d", "e", "f", "g"];
      for (const tag of tags) await pushArtifact(paged, tag, `content-${tag === "g" ? "f" : tag}`);
      proxy.clear();
      proxy.paginateTags(2);
      const listed = await paged.listTags();
      assert.deepEqual([...listed].sort(), tags);
      const pages = matching(proxy.requests, "GET", /\/tags\/list/);
      assert.equal(pages.length, 4);
      assert.equal(pages[0]?.path, "/v2/tfstate/paged/tags/list?n=1000");
      assert.equal(pages[1]?.path, "/v2/tfstate/paged/tags/list?n=2&last=b");
    } finally {
      await paged.close();
    }
  });

  test("an absolute Link header is followed too", async () => {
    const tags = await target.listTags();
    proxy.fault({
      method: "GET",
      path: /\/tags\/list\?n=1000$/,
      times: 1,
      action: {
        kind: "status",
        status: 200,
        headers: {
          "Content-Type": "application/json",
          Link: `<${proxy.url}/v2/tfstate/manifests/tags/list?n=1000&last=zzz>; rel="next"`,
        },
        body: JSON.stringify({ name: "tfstate/manifests", tags: ["page-one-only"] }),
      },
    });
    const listed = await target.listTags();
    assert.deepEqual(listed, ["page-one-only", ...tags]);
  });

  test("listing tags of a repository that does not exist gives []", async () => {
    const empty = createRemoteTarget({ repository: `${proxy.host}/tfstate/never-written`, plainHTTP: true });
    try {
      assert.deepEqual(await empty.listTags(), []);
    } finally {
      await empty.close();
    }
  });

  test("invalid references are refused before any request", async () => {
    proxy.clear();
    await assert.rejects(target.fetchManifest("bad tag"), InvalidArgumentError);
    await assert.rejects(target.resolve(`-${"x".repeat(10)}`), InvalidArgumentError);
    await assert.rejects(target.deleteManifest("latest"), InvalidArgumentError);
    assert.equal(proxy.requests.length, 0);
  });
});
