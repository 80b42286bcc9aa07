import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { NotFoundError, UnauthenticatedError, UnimplementedError } from "../../src/errors.ts";
import { createRemoteTarget, type RemoteTarget } from "../../src/oci/remote.ts";
import { type FakeGitHubApiHandle, startFakeGitHubApi } from "../harness/github-api.ts";
import { type ProxyHandle, startProxy } from "../harness/proxy.ts";
import { type RegistryHandle, startRegistry } from "../harness/registry.ts";
import { digestOf, manifestBytes, matching, OCI_MANIFEST, STATE_TYPE } from "./remote-fixtures.ts";

const TOKEN = "ghp_0123456789abcdefTEST";
const GHCR_405 = {
  kind: "status" as const,
  status: 405,
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ errors: [{ code: "UNSUPPORTED", message: "The operation is unsupported." }] }),
};

async function pushTagged(target: RemoteTarget, tag: string, layer: { digest: string; size: number }) {
  return target.pushManifest(tag, manifestBytes([layer], { tag }), OCI_MANIFEST);
}

describe("remote target: GitHub Packages delete fallback (GHCR answers DELETE with 405)", () => {
  let registry: RegistryHandle;
  let proxy: ProxyHandle;
  let orgApi: FakeGitHubApiHandle;
  let userApi: FakeGitHubApiHandle;
  let layer: { digest: string; size: number };

  function ghcrLike(
    repository: string,
    apiUrl: string,
    credentials?: { username: string; password: string },
  ) {
    return createRemoteTarget({
      repository: `${proxy.host}/${repository}`,
      plainHTTP: true,
      githubApiUrl: apiUrl,
      credentials,
      userAgent: "oci-tfstate-test/1",
    });
  }

  before(async () => {
    registry = await startRegistry();
    proxy = await startProxy(registry.url);
    orgApi = await startFakeGitHubApi({
      registryUrl: registry.url,
      repository: "acme/infra/state",
      owner: "acme",
      packageName: "infra/state",
      ownerKind: "org",
      token: TOKEN,
    });
    userApi = await startFakeGitHubApi({
      registryUrl: registry.url,
      repository: "octocat/tfstate",
      owner: "octocat",
      packageName: "tfstate",
      ownerKind: "user",
      token: TOKEN,
    });
    const seeder = createRemoteTarget({ repository: `${registry.host}/acme/infra/state`, plainHTTP: true });
    const userSeeder = createRemoteTarget({
      repository: `${registry.host}/octocat/tfstate`,
      plainHTTP: true,
    });
    for (const t of [seeder, userSeeder]) {
      await t.pushBlob({ bytes: Buffer.from("{}") }, "application/vnd.oci.empty.v1+json");
      layer = await t.pushBlob({ bytes: Buffer.from("state") }, STATE_TYPE);
      await t.close();
    }
  });
  after(async () => {
    await orgApi?.stop();
    await userApi?.stop();
    await proxy?.stop();
    await registry?.stop();
  });
  beforeEach(() => {
    proxy.clear();
    proxy.clearFaults();
    proxy.fault({ method: "DELETE", path: /\/manifests\//, action: GHCR_405 });
    orgApi.requests.length = 0;
    userApi.requests.length = 0;
  });

  test("org package: the version named after the digest is deleted through the API", async () => {
    const target = ghcrLike("acme/infra/state", orgApi.url, { username: "bot", password: TOKEN });
    try {
      const { digest } = await pushTagged(target, "state-default", layer);
      await target.deleteManifest(digest);
      assert.equal(await target.resolve("state-default"), null, "really gone from the registry");
      assert.deepEqual(
        orgApi.requests.map((r) => `${r.method} ${r.path} ${r.status}`),
        [
          "GET /orgs/acme/packages/container/infra%2Fstate/versions?per_page=100&page=1 200",
          `DELETE /orgs/acme/packages/container/infra%2Fstate/versions/${/versions\/(\d+)$/.exec(orgApi.requests[1]?.path ?? "")?.[1]} 204`,
        ],
      );
      const headers = orgApi.requests[0]?.headers ?? {};
      assert.equal(headers.accept, "application/vnd.github+json");
      assert.equal(headers["x-github-api-version"], "2022-11-28");
      assert.equal(headers.authorization, `Bearer ${TOKEN}`);
      assert.equal(headers["user-agent"], "oci-tfstate-test/1");
    } finally {
      await target.close();
    }
  });

  test("user package: the org lookup 404s, the user one is used (and remembered)", async () => {
    const target = ghcrLike("octocat/tfstate", userApi.url, { username: "octocat", password: TOKEN });
    try {
      const one = await pushTagged(target, "one", layer);
      const two = await pushTagged(target, "two", layer);
      await target.deleteManifest(one.digest);
      assert.deepEqual(
        userApi.requests.map((r) => `${r.method} ${r.path.split("?")[0]} ${r.status}`).slice(0, 2),
        [
          "GET /orgs/octocat/packages/container/tfstate/versions 404",
          "GET /users/octocat/packages/container/tfstate/versions 200",
        ],
      );
      userApi.requests.length = 0;
      proxy.clear();
      await target.deleteManifest(two.digest);
      assert.equal(proxy.requests.length, 0, "no second registry DELETE doomed to a 405");
      assert.ok(
        userApi.requests.every((r) => r.path.startsWith("/users/")),
        "no second org lookup",
      );
      assert.equal(await target.resolve("one"), null);
      assert.equal(await target.resolve("two"), null);
    } finally {
      await target.close();
    }
  });

  test("versions are paged to the end, with no page cap", async () => {
    const target = ghcrLike("acme/infra/state", orgApi.url, { username: "bot", password: TOKEN });
    try {
      const oldest = await pushTagged(target, "v-000", layer);
      // Let the API see it first, so it is the oldest version (GitHub lists the newest first).
      await assert.rejects(target.deleteManifest(digestOf(Buffer.from("absent"))), NotFoundError);
      for (let i = 1; i <= 100; i++) await pushTagged(target, `v-${String(i).padStart(3, "0")}`, layer);
      orgApi.requests.length = 0;
      await target.deleteManifest(oldest.digest);
      const pages = matching(orgApi.requests, "GET").map((r) =>
        new URL(r.path, "http://x").searchParams.get("page"),
      );
      assert.deepEqual(pages, ["1", "2"]);
      assert.equal(matching(orgApi.requests, "DELETE").length, 1);
      assert.equal(await target.resolve("v-000"), null);
      assert.notEqual(await target.resolve("v-100"), null);
    } finally {
      await target.close();
    }
  });

  test("no version for the digest is NotFoundError, never a silent success", async () => {
    const target = ghcrLike("acme/infra/state", orgApi.url, { username: "bot", password: TOKEN });
    try {
      await assert.rejects(target.deleteManifest(digestOf(Buffer.from("never pushed"))), NotFoundError);
      assert.equal(matching(orgApi.requests, "DELETE").length, 0);
    } finally {
      await target.close();
    }
  });

  test("no token: a clear UnauthenticatedError and no API call", async () => {
    const target = ghcrLike("acme/infra/state", orgApi.url);
    try {
      const { digest } = await pushTagged(target, "kept", layer);
      await assert.rejects(target.deleteManifest(digest), (err) => {
        assert.ok(err instanceof UnauthenticatedError);
        assert.match(err.message, /GitHub Packages API needs a token/);
        assert.match(err.message, /delete:packages/);
        return true;
      });
      assert.equal(orgApi.requests.length, 0);
      assert.notEqual(await target.resolve("kept"), null);
    } finally {
      await target.close();
    }
  });

  test("a token the API rejects is UnauthenticatedError without the token in it", async () => {
    const target = ghcrLike("acme/infra/state", orgApi.url, { username: "bot", password: "ghp_wrong" });
    try {
      const { digest } = await pushTagged(target, "kept-too", layer);
      await assert.rejects(target.deleteManifest(digest), (err) => {
        assert.ok(err instanceof UnauthenticatedError);
        assert.ok(!err.message.includes("ghp_wrong"));
        return true;
      });
    } finally {
      await target.close();
    }
  });

  test("without a GitHub fallback a 405 is UnimplementedError saying the registry refuses deletes", async () => {
    const target = createRemoteTarget({ repository: `${proxy.host}/acme/infra/state`, plainHTTP: true });
    try {
      const { digest } = await pushTagged(target, "stays", layer);
      await assert.rejects(target.deleteManifest(digest), (err) => {
        assert.ok(err instanceof UnimplementedError);
        assert.match(err.message, /refuses deletes/);
        return true;
      });
    } finally {
      await target.close();
    }
  });
});
