import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { PermissionDeniedError, UnauthenticatedError } from "../../src/errors.ts";
import { type Credential, createRemoteTarget, type RemoteTarget } from "../../src/oci/remote.ts";
import { type ProxyHandle, startProxy } from "../harness/proxy.ts";
import { type RegistryHandle, startRegistry } from "../harness/registry.ts";
import { registryTokenAuth, startTokenServer, type TokenServerHandle } from "../harness/token-server.ts";
import { manifestBytes, matching, OCI_MANIFEST, STATE_TYPE } from "./remote-fixtures.ts";

const USER = "alice";
const PASSWORD = "s3cret-Pa55";

async function seed(target: RemoteTarget, tag: string): Promise<string> {
  await target.pushBlob({ bytes: Buffer.from("{}") }, "application/vnd.oci.empty.v1+json");
  const layer = await target.pushBlob({ bytes: Buffer.from(`state ${tag}`) }, STATE_TYPE);
  return (await target.pushManifest(tag, manifestBytes([layer]), OCI_MANIFEST)).digest;
}

function assertNoSecret(err: unknown): void {
  assert.ok(err instanceof Error);
  let text = "";
  for (let e: unknown = err; e instanceof Error; e = e.cause) text += `${e.message}\n${e.stack ?? ""}\n`;
  assert.ok(!text.includes(PASSWORD), "the password leaked into an error");
  assert.ok(!text.includes(Buffer.from(`${USER}:${PASSWORD}`).toString("base64")), "the Basic header leaked");
}

describe("remote target: Basic auth registry", () => {
  let registry: RegistryHandle;
  let proxy: ProxyHandle;

  before(async () => {
    registry = await startRegistry({ auth: { kind: "basic", users: { [USER]: PASSWORD } } });
    proxy = await startProxy(registry.url);
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });
  beforeEach(() => proxy.clear());

  test("good credentials work, and after the first challenge Basic is sent up front", async () => {
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/basic`,
      plainHTTP: true,
      credentials: { username: USER, password: PASSWORD },
    });
    try {
      await seed(target, "latest");
      assert.equal(proxy.requests[0]?.status, 401, "the first request learns the scheme");
      assert.equal(proxy.requests.filter((r) => r.status === 401).length, 1, "only one 401 ever");
      proxy.clear();
      for (let i = 0; i < 5; i++) assert.equal((await target.fetchManifest("latest"))?.kind, "manifest");
      assert.deepEqual(
        proxy.requests.map((r) => r.status),
        [200, 200, 200, 200, 200],
      );
      assert.match(String(proxy.requests[0]?.headers.authorization), /^Basic /);
    } finally {
      await target.close();
    }
  });

  test("bad credentials are UnauthenticatedError without the secret in it", async () => {
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/basic`,
      plainHTTP: true,
      credentials: { username: USER, password: `${PASSWORD}-wrong` },
    });
    try {
      await assert.rejects(target.fetchManifest("latest"), (err) => {
        assert.ok(err instanceof UnauthenticatedError);
        assert.match(err.message, /rejected the credentials/);
        assertNoSecret(err);
        return true;
      });
      assert.equal(proxy.requests.length, 2, "one challenge, one refused try, no loop");
    } finally {
      await target.close();
    }
  });

  test("no credentials: UnauthenticatedError saying none are configured; ping still passes", async () => {
    const target = createRemoteTarget({ repository: `${proxy.host}/tfstate/basic`, plainHTTP: true });
    try {
      await assert.rejects(target.listTags(), /requires authentication and no credentials are configured/);
      await target.ping();
    } finally {
      await target.close();
    }
  });
});

describe("remote target: token auth registry", () => {
  let tokens: TokenServerHandle;
  let registry: RegistryHandle;
  let proxy: ProxyHandle;
  let expiring: TokenServerHandle;
  let expiringRegistry: RegistryHandle;

  before(async () => {
    tokens = await startTokenServer({
      users: { [USER]: PASSWORD, reader: "r" },
      allowAnonymous: true,
      // alice may do everything but delete; reader may only pull.
      grant: (user, _type, _name, actions) =>
        actions.filter((a) => (user === USER ? a !== "delete" : a === "pull")),
    });
    registry = await startRegistry({
      auth: registryTokenAuth(tokens),
    });
    proxy = await startProxy(registry.url);
    expiring = await startTokenServer({ users: { [USER]: PASSWORD }, expiresIn: 1 });
    expiringRegistry = await startRegistry({
      auth: registryTokenAuth(expiring),
    });
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    await tokens?.stop();
    await expiringRegistry?.stop();
    await expiring?.stop();
  });
  beforeEach(() => {
    proxy.clear();
    tokens.requests.length = 0;
  });

  test("tokens are fetched once per scope; the steady state sends no 401 and no token request", async () => {
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/token`,
      plainHTTP: true,
      credentials: { username: USER, password: PASSWORD },
    });
    try {
      await seed(target, "latest");
      // One challenge to learn the realm; the push scope was then fetched up front.
      assert.equal(proxy.requests.filter((r) => r.status === 401).length, 1);
      assert.deepEqual(
        tokens.requests.map((r) => r.scopes.join(" ")),
        ["repository:tfstate/token:pull,push"],
      );

      proxy.clear();
      tokens.requests.length = 0;
      for (let i = 0; i < 5; i++) await target.fetchManifest("latest");
      await target.resolve("latest");
      assert.equal(proxy.requests.length, 6, "one request per read");
      assert.ok(proxy.requests.every((r) => r.status === 200));
      assert.deepEqual(
        tokens.requests.map((r) => r.scopes.join(" ")),
        ["repository:tfstate/token:pull"],
        "the pull token was fetched once, before the first read, without a 401",
      );

      proxy.clear();
      tokens.requests.length = 0;
      await target.pushBlob({ bytes: Buffer.from("more state") }, STATE_TYPE);
      await target.pushBlob({ bytes: Buffer.from("even more state") }, STATE_TYPE);
      for (let i = 0; i < 3; i++) await target.fetchManifest("latest");
      assert.equal(tokens.requests.length, 0, "cached push and pull tokens reused");
      assert.equal(proxy.requests.filter((r) => r.status === 401).length, 0);
      assert.equal(proxy.requests.length, 7);
    } finally {
      await target.close();
    }
  });

  test("concurrent requests needing one scope share one token fetch", async () => {
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/token`,
      plainHTTP: true,
      credentials: { username: USER, password: PASSWORD },
    });
    try {
      await target.ping();
      tokens.requests.length = 0;
      proxy.clear();
      const results = await Promise.all(Array.from({ length: 10 }, () => target.fetchManifest("latest")));
      assert.ok(results.every((r) => r?.kind === "manifest"));
      assert.equal(tokens.requests.length, 1);
      assert.equal(proxy.requests.length, 10);
      assert.ok(proxy.requests.every((r) => r.status === 200));
    } finally {
      await target.close();
    }
  });

  test("a delete the token service does not grant is PermissionDeniedError naming the scope", async () => {
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/token`,
      plainHTTP: true,
      credentials: { username: USER, password: PASSWORD },
    });
    try {
      const digest = await seed(target, "undeletable");
      await assert.rejects(target.deleteManifest(digest), (err) => {
        assert.ok(err instanceof PermissionDeniedError);
        assert.match(err.message, /repository:tfstate\/token:delete/);
        return true;
      });
      assert.notEqual(await target.resolve("undeletable"), null);
    } finally {
      await target.close();
    }
  });

  test("anonymous pulls work with an anonymous token; pushing is denied", async () => {
    const writer = createRemoteTarget({
      repository: `${proxy.host}/tfstate/token`,
      plainHTTP: true,
      credentials: { username: USER, password: PASSWORD },
    });
    const anonymous = createRemoteTarget({ repository: `${proxy.host}/tfstate/token`, plainHTTP: true });
    try {
      await seed(writer, "public");
      assert.equal((await anonymous.fetchManifest("public"))?.kind, "manifest");
      assert.equal(tokens.requests.at(-1)?.user, undefined);
      await assert.rejects(
        anonymous.pushBlob({ bytes: Buffer.from("x") }, STATE_TYPE),
        PermissionDeniedError,
      );
    } finally {
      await writer.close();
      await anonymous.close();
    }
  });

  test("a wrong password is UnauthenticatedError from the token service, without secrets", async () => {
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/token`,
      plainHTTP: true,
      credentials: { username: USER, password: `${PASSWORD}x` },
    });
    try {
      await assert.rejects(target.fetchManifest("latest"), (err) => {
        assert.ok(err instanceof UnauthenticatedError);
        assert.match(err.message, /token service .* rejected the credentials/);
        assertNoSecret(err);
        return true;
      });
    } finally {
      await target.close();
    }
  });

  test("a credential function is asked for the registry host, and an access token is used as-is", async () => {
    const asked: string[] = [];
    const issued = await fetch(
      `${tokens.realm}?service=${encodeURIComponent(tokens.service)}&scope=repository:tfstate/token:pull`,
      { headers: { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}` } },
    );
    const { token } = (await issued.json()) as { token: string };
    tokens.requests.length = 0;
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/token`,
      plainHTTP: true,
      credentials: async (host): Promise<Credential> => {
        asked.push(host);
        return { accessToken: token };
      },
    });
    try {
      assert.equal((await target.fetchManifest("latest"))?.kind, "manifest");
      assert.equal((await target.fetchManifest("latest"))?.kind, "manifest");
      assert.deepEqual([...new Set(asked)], [proxy.host]);
      assert.equal(tokens.requests.length, 0, "no token service round trip");
      assert.equal(proxy.requests.at(-1)?.headers.authorization, `Bearer ${token}`);
    } finally {
      await target.close();
    }
  });

  test("a challenge asking for more than the operation's scope gets a token for all of it", async () => {
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/token`,
      plainHTTP: true,
      credentials: { username: USER, password: PASSWORD },
    });
    try {
      await seed(target, "latest");
      const scope = "repository:tfstate/token:pull repository:tfstate/shared:pull";
      proxy.fault({
        method: "GET",
        path: /\/manifests\/latest$/,
        times: 1,
        action: {
          kind: "status",
          status: 401,
          headers: {
            "WWW-Authenticate": `Bearer realm="${tokens.realm}",service="${tokens.service}",scope="${scope}"`,
          },
        },
      });
      tokens.requests.length = 0;
      proxy.clear();
      assert.equal((await target.fetchManifest("latest"))?.kind, "manifest");
      assert.deepEqual(
        tokens.requests.map((r) => r.scopes.join(" ")),
        ["repository:tfstate/token:pull", "repository:tfstate/token:pull repository:tfstate/shared:pull"],
      );
      assert.deepEqual(
        proxy.requests.map((r) => r.status),
        [401, 200],
      );
    } finally {
      await target.close();
    }
  });

  test("an expired token is replaced up front, without a 401", async () => {
    const reg = await startProxy(expiringRegistry.url);
    const target = createRemoteTarget({
      repository: `${reg.host}/tfstate/expiry`,
      plainHTTP: true,
      credentials: { username: USER, password: PASSWORD },
    });
    try {
      await seed(target, "latest");
      await target.fetchManifest("latest");
      const before = expiring.requests.length;
      await new Promise((resolve) => setTimeout(resolve, 1100));
      reg.clear();
      assert.equal((await target.fetchManifest("latest"))?.kind, "manifest");
      assert.equal(expiring.requests.length, before + 1, "a new token after expiry");
      assert.deepEqual(
        reg.requests.map((r) => r.status),
        [200],
      );
      assert.equal(matching(reg.requests, "GET").length, 1);
    } finally {
      await target.close();
      await reg.stop();
    }
  });
});
