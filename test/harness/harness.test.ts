import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { Agent, fetch } from "undici";
import { type FakeGitHubApiHandle, startFakeGitHubApi } from "./github-api.ts";
import { type ProxyHandle, startProxy } from "./proxy.ts";
import { type RegistryHandle, startRegistry } from "./registry.ts";
import { OCI_MANIFEST, pushArtifact, pushBlob, sha256Digest } from "./seed.ts";
import { createTestCertificates, type TestCertificates } from "./tls.ts";
import { registryTokenAuth, startTokenServer, type TokenServerHandle } from "./token-server.ts";

const OCI_ACCEPT = { Accept: OCI_MANIFEST };

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // An orphan reparented to a PID 1 that does not reap stays a zombie: dead for our purposes.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return condition();
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

async function status(url: string, init: Parameters<typeof fetch>[1] = {}): Promise<number> {
  const res = await fetch(url, init);
  await res.body?.cancel();
  return res.status;
}

async function tagsOf(url: string, repository: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/${repository}/tags/list`);
  if (res.status === 404) return [];
  const body = (await res.json()) as { tags: string[] | null };
  return (body.tags ?? []).sort();
}

describe("startRegistry", () => {
  test("starts on a random loopback port and stop() ends the process and removes its files", async () => {
    const registry = await startRegistry();
    try {
      assert.match(registry.host, /^127\.0\.0\.1:\d+$/);
      assert.equal(registry.url, `http://${registry.host}`);
      assert.equal(await status(`${registry.url}/v2/`), 200);
      assert.ok(isRunning(registry.pid));
      assert.ok(existsSync(registry.logFile));
    } finally {
      await registry.stop();
    }
    assert.equal(isRunning(registry.pid), false);
    assert.equal(existsSync(registry.root), false);
    await registry.stop(); // idempotent
  });

  test("two registries get distinct ports and storage", async () => {
    const [a, b] = await Promise.all([startRegistry(), startRegistry()]);
    try {
      assert.notEqual(a.host, b.host);
      await pushArtifact(a.url, "only/in-a", ["v1"], Buffer.from("a"));
      assert.deepEqual(await tagsOf(a.url, "only/in-a"), ["v1"]);
      assert.deepEqual(await tagsOf(b.url, "only/in-a"), []);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  test("basic auth accepts the configured user only", async () => {
    const registry = await startRegistry({
      auth: { kind: "basic", users: { alice: "s3cret", bob: "hunter2" } },
    });
    try {
      const res = await fetch(`${registry.url}/v2/`);
      await res.body?.cancel();
      assert.equal(res.status, 401);
      assert.match(res.headers.get("www-authenticate") ?? "", /^Basic realm=/);
      assert.equal(
        await status(`${registry.url}/v2/`, { headers: { Authorization: basic("alice", "s3cret") } }),
        200,
      );
      assert.equal(
        await status(`${registry.url}/v2/`, { headers: { Authorization: basic("bob", "hunter2") } }),
        200,
      );
      assert.equal(
        await status(`${registry.url}/v2/`, { headers: { Authorization: basic("alice", "wrong") } }),
        401,
      );
    } finally {
      await registry.stop();
    }
  });

  test("deleteEnabled: false makes DELETE answer 405", async () => {
    const registry = await startRegistry({ deleteEnabled: false });
    try {
      const { digest } = await pushArtifact(registry.url, "ro/repo", ["v1"], Buffer.from("x"));
      assert.equal(await status(`${registry.url}/v2/ro/repo/manifests/${digest}`, { method: "DELETE" }), 405);
    } finally {
      await registry.stop();
    }
  });

  for (const signal of ["SIGKILL", "SIGTERM"] as const) {
    test(`a test process killed by ${signal} leaves no registry running`, async () => {
      const child = spawn(process.execPath, ["--import", "tsx", "test/harness/fixtures/hold-registry.ts"], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let registryPid: number | undefined;
      try {
        const line = await new Promise<string>((resolve, reject) => {
          let buffered = "";
          child.stdout.on("data", (chunk: Buffer) => {
            buffered += chunk.toString("utf8");
            const newline = buffered.indexOf("\n");
            if (newline >= 0) resolve(buffered.slice(0, newline));
          });
          child.once("exit", (code) => reject(new Error(`fixture exited early (${code})`)));
        });
        const started = JSON.parse(line) as { pid: number; root: string };
        registryPid = started.pid;
        assert.ok(isRunning(started.pid));
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill(signal);
        await exited;
        assert.ok(await waitUntil(() => !isRunning(started.pid), 3000), "registry survived its test process");
        if (signal === "SIGTERM") assert.equal(existsSync(started.root), false);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
        if (registryPid !== undefined && isRunning(registryPid)) process.kill(registryPid, "SIGKILL");
      }
    });
  }
});

describe("startProxy", () => {
  let registry: RegistryHandle;
  let proxy: ProxyHandle;

  before(async () => {
    registry = await startRegistry();
    proxy = await startProxy(registry.url);
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  test("forwards and records every request with the status the client got", async () => {
    proxy.clear();
    proxy.clearFaults();
    const res = await fetch(`${proxy.url}/v2/rec/repo/blobs/uploads/`, {
      method: "POST",
      headers: { "X-Test": "yes" },
    });
    await res.body?.cancel();
    assert.equal(res.status, 202);
    // Distribution builds Location from the forwarded Host, so follow-ups go through the proxy too.
    assert.ok(res.headers.get("location")?.startsWith(`${proxy.url}/v2/rec/repo/blobs/uploads/`));
    assert.equal(await status(`${proxy.url}/v2/rec/repo/manifests/nope?x=1`, { headers: OCI_ACCEPT }), 404);
    assert.deepEqual(
      proxy.requests.map((r) => [r.method, r.path, r.status]),
      [
        ["POST", "/v2/rec/repo/blobs/uploads/", 202],
        ["GET", "/v2/rec/repo/manifests/nope?x=1", 404],
      ],
    );
    assert.equal(proxy.requests[0]?.headers["x-test"], "yes");
    assert.equal(proxy.requests[0]?.headers.host, proxy.host);
    proxy.clear();
    assert.equal(proxy.requests.length, 0);
  });

  test("streams a large blob both ways unchanged", async () => {
    proxy.clear();
    const blob = Buffer.alloc(24 * 1024 * 1024);
    for (let i = 0; i < blob.length; i += 4096) blob.writeUInt32BE(i, i);
    const digest = await pushBlob(proxy.url, "big/blob", blob);
    assert.equal(digest, sha256Digest(blob));
    const res = await fetch(`${proxy.url}/v2/big/blob/blobs/${digest}`);
    const got = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200);
    assert.equal(got.length, blob.length);
    assert.ok(got.equals(blob));
    assert.deepEqual(
      proxy.requests.map((r) => [r.method, r.status]),
      [
        ["POST", 202],
        ["PUT", 201],
        ["GET", 200],
      ],
    );
  });

  test("status faults answer without forwarding, for `times` matching requests only", async () => {
    proxy.clear();
    proxy.clearFaults();
    await pushArtifact(registry.url, "fault/repo", ["v1"], Buffer.from("f"));
    proxy.fault({
      method: "get",
      path: /^\/v2\/fault\/repo\//,
      times: 2,
      action: { kind: "status", status: 503, headers: { "Retry-After": "1" }, body: "busy" },
    });
    const first = await fetch(`${proxy.url}/v2/fault/repo/tags/list`);
    assert.equal(first.status, 503);
    assert.equal(first.headers.get("retry-after"), "1");
    assert.equal(await first.text(), "busy");
    // Method does not match: forwarded.
    assert.equal(
      await status(`${proxy.url}/v2/fault/repo/manifests/v1`, { method: "HEAD", headers: OCI_ACCEPT }),
      200,
    );
    assert.equal(await status(`${proxy.url}/v2/fault/repo/tags/list`), 503);
    assert.equal(await status(`${proxy.url}/v2/fault/repo/tags/list`), 200);
    assert.deepEqual(
      proxy.requests.map((r) => r.status),
      [503, 200, 503, 200],
    );
  });

  test("a status fault on an upload drains the body and keeps the connection usable", async () => {
    proxy.clearFaults();
    proxy.fault({ method: "PUT", times: 1, action: { kind: "status", status: 500 } });
    await assert.rejects(pushBlob(proxy.url, "fault/upload", Buffer.alloc(1024 * 1024, 1)), /answered 500/);
    const digest = await pushBlob(proxy.url, "fault/upload", Buffer.alloc(1024 * 1024, 1));
    assert.equal(await status(`${registry.url}/v2/fault/upload/blobs/${digest}`, { method: "HEAD" }), 200);
  });

  test("reset faults drop the connection without an answer", async () => {
    proxy.clear();
    proxy.clearFaults();
    proxy.fault({ path: /^\/v2\/$/, times: 1, action: { kind: "reset" } });
    await assert.rejects(fetch(`${proxy.url}/v2/`), (err: unknown) => {
      const code = (err as { cause?: { code?: string } }).cause?.code;
      return code === "ECONNRESET" || code === "UND_ERR_SOCKET";
    });
    assert.equal(await status(`${proxy.url}/v2/`), 200);
    assert.deepEqual(
      proxy.requests.map((r) => [r.path, r.status]),
      [
        ["/v2/", 0],
        ["/v2/", 200],
      ],
    );
  });

  test("delay faults forward after the delay", async () => {
    proxy.clearFaults();
    proxy.fault({ path: /^\/v2\/$/, times: 1, action: { kind: "delay", ms: 300 } });
    let started = performance.now();
    assert.equal(await status(`${proxy.url}/v2/`), 200);
    assert.ok(performance.now() - started >= 290, "delayed request came back too early");
    started = performance.now();
    assert.equal(await status(`${proxy.url}/v2/`), 200);
    assert.ok(performance.now() - started < 290, "the delay applied more than `times`");
  });

  test("paginateTags serves sorted pages with Link headers and honours n and last", async () => {
    proxy.clearFaults();
    const tags = ["v5", "v1", "v4", "v2", "v3"];
    await pushArtifact(registry.url, "page/repo", tags, Buffer.from("p"));
    proxy.paginateTags(2);
    try {
      const seen: string[][] = [];
      let next: string | undefined = "/v2/page/repo/tags/list";
      while (next !== undefined) {
        const res = await fetch(`${proxy.url}${next}`);
        assert.equal(res.status, 200);
        seen.push(((await res.json()) as { tags: string[] }).tags);
        const link = res.headers.get("link");
        next = link === null ? undefined : /^<([^>]+)>; rel="next"$/.exec(link)?.[1];
        if (link !== null) assert.ok(next, `malformed Link: ${link}`);
      }
      assert.deepEqual(seen, [["v1", "v2"], ["v3", "v4"], ["v5"]]);

      const one = await fetch(`${proxy.url}/v2/page/repo/tags/list?n=1&last=v3`);
      assert.deepEqual(((await one.json()) as { tags: string[] }).tags, ["v4"]);
      assert.equal(one.headers.get("link"), '</v2/page/repo/tags/list?n=1&last=v4>; rel="next"');

      assert.equal(await status(`${proxy.url}/v2/page/missing/tags/list`), 404);
    } finally {
      proxy.paginateTags(undefined);
    }
    const whole = await fetch(`${proxy.url}/v2/page/repo/tags/list?n=2`);
    assert.equal(whole.headers.get("link"), null);
    assert.deepEqual(((await whole.json()) as { tags: string[] }).tags.sort(), [...tags].sort());
  });

  test("an unreachable upstream gives 502", async () => {
    const deadRegistry = await startRegistry();
    const deadProxy = await startProxy(deadRegistry.url);
    try {
      await deadRegistry.stop();
      assert.equal(await status(`${deadProxy.url}/v2/`), 502);
      assert.equal(deadProxy.requests[0]?.status, 502);
    } finally {
      await deadProxy.stop();
    }
  });
});

describe("startTokenServer with a token-auth registry", () => {
  let tokens: TokenServerHandle;
  let registry: RegistryHandle;

  before(async () => {
    tokens = await startTokenServer({
      users: { alice: "s3cret", bob: "hunter2" },
      // bob may do everything but delete.
      grant: (user, _type, _name, actions) =>
        user === "bob" ? actions.filter((a) => a !== "delete") : actions,
    });
    registry = await startRegistry({
      auth: registryTokenAuth(tokens),
    });
  });
  after(async () => {
    await registry?.stop();
    await tokens?.stop();
  });

  async function token(user: string, password: string, ...scopes: string[]): Promise<string> {
    const query = new URLSearchParams({ service: tokens.service });
    for (const scope of scopes) query.append("scope", scope);
    const res = await fetch(`${tokens.realm}?${query}`, {
      headers: { Authorization: basic(user, password) },
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.token, body.access_token);
    assert.equal(body.expires_in, 300);
    assert.equal(typeof body.issued_at, "string");
    return body.token as string;
  }

  test("the registry challenges with the token realm", async () => {
    const res = await fetch(`${registry.url}/v2/tok/repo/tags/list`);
    await res.body?.cancel();
    assert.equal(res.status, 401);
    assert.equal(
      res.headers.get("www-authenticate"),
      `Bearer realm="${tokens.realm}",service="${tokens.service}",scope="repository:tok/repo:pull"`,
    );
  });

  test("a token grants push and pull; DELETE without the delete action is insufficient_scope", async () => {
    const jwt = await token("bob", "hunter2", "repository:tok/repo:pull,push", "repository:tok/repo:delete");
    const claims = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8"));
    assert.deepEqual(claims.access, [{ type: "repository", name: "tok/repo", actions: ["pull", "push"] }]);
    assert.equal(claims.aud, tokens.service);
    assert.equal(claims.iss, tokens.issuer);
    assert.equal(claims.sub, "bob");

    const auth = { headers: { Authorization: `Bearer ${jwt}` } };
    const { digest } = await pushArtifact(registry.url, "tok/repo", ["v1"], Buffer.from("t"), auth);
    const listed = await fetch(`${registry.url}/v2/tok/repo/tags/list`, auth);
    assert.deepEqual(await listed.json(), { name: "tok/repo", tags: ["v1"] });

    const denied = await fetch(`${registry.url}/v2/tok/repo/manifests/${digest}`, {
      method: "DELETE",
      ...auth,
    });
    await denied.body?.cancel();
    assert.equal(denied.status, 401);
    const challenge = denied.headers.get("www-authenticate") ?? "";
    assert.match(challenge, /error="insufficient_scope"/);
    assert.match(challenge, /scope="repository:tok\/repo:delete"/);

    const deleter = await token("alice", "s3cret", "repository:tok/repo:delete");
    const deleted = await status(`${registry.url}/v2/tok/repo/manifests/${digest}`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${deleter}` },
    });
    assert.equal(deleted, 202);
  });

  test("a token for another repository is refused", async () => {
    const jwt = await token("alice", "s3cret", "repository:other/repo:pull");
    assert.equal(
      await status(`${registry.url}/v2/tok/repo/tags/list`, { headers: { Authorization: `Bearer ${jwt}` } }),
      401,
    );
  });

  test("space-separated scopes in one parameter are all granted and recorded", async () => {
    const jwt = await token("alice", "s3cret", "repository:a/one:pull repository:a/two:pull,push");
    const claims = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8"));
    assert.deepEqual(claims.access, [
      { type: "repository", name: "a/one", actions: ["pull"] },
      { type: "repository", name: "a/two", actions: ["pull", "push"] },
    ]);
    assert.deepEqual(tokens.requests.at(-1), {
      user: "alice",
      scopes: ["repository:a/one:pull", "repository:a/two:pull,push"],
    });
  });

  test("wrong or missing credentials get 401 when anonymous access is off", async () => {
    const query = `service=${tokens.service}&scope=repository:tok/repo:pull`;
    const count = tokens.requests.length;
    assert.equal(
      await status(`${tokens.realm}?${query}`, { headers: { Authorization: basic("alice", "x") } }),
      401,
    );
    assert.equal(await status(`${tokens.realm}?${query}`), 401);
    assert.equal(await status(`${tokens.realm}?service=other&scope=repository:tok/repo:pull`), 400);
    assert.equal(tokens.requests.length, count);
  });

  test("the OAuth2 password and refresh_token grants issue working tokens", async () => {
    const form = new URLSearchParams({
      grant_type: "password",
      username: "alice",
      password: "s3cret",
      service: tokens.service,
      scope: "repository:tok/repo:pull",
      access_type: "offline",
      client_id: "harness-test",
    });
    const first = await fetch(tokens.realm, { method: "POST", body: form });
    assert.equal(first.status, 200);
    const issued = (await first.json()) as { access_token: string; refresh_token: string };
    assert.ok(issued.refresh_token);
    const auth = { headers: { Authorization: `Bearer ${issued.access_token}` } };
    assert.notEqual(await status(`${registry.url}/v2/tok/repo/tags/list`, auth), 401);

    const refreshed = await fetch(tokens.realm, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: issued.refresh_token,
        service: tokens.service,
        scope: "repository:tok/repo:pull",
      }),
    });
    assert.equal(refreshed.status, 200);
    const again = (await refreshed.json()) as { access_token: string };
    const auth2 = { headers: { Authorization: `Bearer ${again.access_token}` } };
    assert.notEqual(await status(`${registry.url}/v2/tok/repo/tags/list`, auth2), 401);

    const badRefresh = new URLSearchParams({ grant_type: "refresh_token", refresh_token: "nope" });
    assert.equal(await status(tokens.realm, { method: "POST", body: badRefresh }), 401);
    const badPassword = new URLSearchParams({ grant_type: "password", username: "alice", password: "x" });
    assert.equal(await status(tokens.realm, { method: "POST", body: badPassword }), 401);
  });

  test("allowAnonymous grants pull and nothing more", async () => {
    const anonymous = await startTokenServer({ users: {}, allowAnonymous: true });
    try {
      const res = await fetch(`${anonymous.realm}?scope=repository:pub/repo:pull,push,delete`);
      assert.equal(res.status, 200);
      const { token: jwt } = (await res.json()) as { token: string };
      const claims = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8"));
      assert.deepEqual(claims.access, [{ type: "repository", name: "pub/repo", actions: ["pull"] }]);
      assert.deepEqual(anonymous.requests, [
        { user: undefined, scopes: ["repository:pub/repo:pull,push,delete"] },
      ]);
    } finally {
      await anonymous.stop();
    }
  });
});

describe("TLS registry", () => {
  let certs: TestCertificates;
  let registry: RegistryHandle;
  let trusting: Agent;

  before(async () => {
    certs = await createTestCertificates();
    registry = await startRegistry({ tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile } });
    trusting = new Agent({ connect: { ca: readFileSync(certs.caCertFile) } });
  });
  after(async () => {
    await trusting?.close();
    await registry?.stop();
    await certs?.remove();
  });

  test("is reachable over https by IP and by localhost when the test CA is trusted", async () => {
    assert.match(registry.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(await status(`${registry.url}/v2/`, { dispatcher: trusting }), 200);
    const port = registry.host.split(":")[1];
    assert.equal(await status(`https://localhost:${port}/v2/`, { dispatcher: trusting }), 200);
    const { digest } = await pushArtifact(registry.url, "tls/repo", ["v1"], Buffer.from("s"), {
      dispatcher: trusting,
    });
    const res = await fetch(`${registry.url}/v2/tls/repo/manifests/v1`, {
      headers: OCI_ACCEPT,
      dispatcher: trusting,
    });
    await res.body?.cancel();
    assert.equal(res.headers.get("docker-content-digest"), digest);
  });

  test("is refused without the CA", async () => {
    await assert.rejects(fetch(`${registry.url}/v2/`), (err: unknown) => {
      const code = (err as { cause?: { code?: string } }).cause?.code ?? "";
      return /UNABLE_TO_VERIFY|SELF_SIGNED|CERT/.test(code);
    });
  });
});

describe("startFakeGitHubApi", () => {
  const token = "ghp_test_token";
  const repository = "acme/infra/state";
  let registry: RegistryHandle;
  let api: FakeGitHubApiHandle;
  let versionsPath: string;

  interface Version {
    id: number;
    name: string;
    metadata: { package_type: string; container: { tags: string[] } };
  }

  before(async () => {
    registry = await startRegistry();
    api = await startFakeGitHubApi({
      registryUrl: registry.url,
      repository,
      owner: "acme",
      packageName: "infra/state",
      ownerKind: "org",
      token,
    });
    versionsPath = `${api.url}/orgs/acme/packages/container/infra%2Fstate/versions`;
  });
  after(async () => {
    await api?.stop();
    await registry?.stop();
  });

  const auth = (): { headers: Record<string, string> } => ({ headers: { Authorization: `Bearer ${token}` } });

  async function list(query = ""): Promise<{ versions: Version[]; link: string | null }> {
    const res = await fetch(`${versionsPath}${query}`, auth());
    assert.equal(res.status, 200);
    return { versions: (await res.json()) as Version[], link: res.headers.get("link") };
  }

  test("lists versions grouped by digest, paginates, and deletes through the registry", async () => {
    const one = await pushArtifact(registry.url, repository, ["a", "b"], Buffer.from("one"));
    const two = await pushArtifact(registry.url, repository, ["c"], Buffer.from("two"));

    const { versions } = await list();
    assert.equal(versions.length, 2);
    const byDigest = new Map(versions.map((v) => [v.name, v]));
    assert.deepEqual(byDigest.get(one.digest)?.metadata, {
      package_type: "container",
      container: { tags: ["a", "b"] },
    });
    assert.deepEqual(byDigest.get(two.digest)?.metadata.container.tags, ["c"]);
    const ids = versions.map((v) => v.id);
    assert.deepEqual(
      (await list()).versions.map((v) => v.id),
      ids,
      "ids must be stable",
    );

    const page1 = await list("?per_page=1&page=1");
    const page2 = await list("?per_page=1&page=2");
    const page3 = await list("?per_page=1&page=3");
    assert.deepEqual(
      [...page1.versions, ...page2.versions].map((v) => v.id),
      ids,
    );
    assert.deepEqual(page3.versions, []);
    assert.match(page1.link ?? "", /rel="next"/);

    const oneId = byDigest.get(one.digest)?.id;
    assert.equal(await status(`${versionsPath}/${oneId}`, { method: "DELETE", ...auth() }), 204);
    assert.deepEqual(await tagsOf(registry.url, repository), ["c"]);
    assert.deepEqual(
      (await list()).versions.map((v) => v.name),
      [two.digest],
    );
    assert.equal(await status(`${versionsPath}/${oneId}`, { method: "DELETE", ...auth() }), 404);
  });

  test("a manifest that lost its tags stays listed as an untagged version with the same id", async () => {
    const old = await pushArtifact(registry.url, repository, ["moving"], Buffer.from("old"));
    const oldId = (await list()).versions.find((v) => v.name === old.digest)?.id;
    assert.ok(oldId);
    const moved = await pushArtifact(registry.url, repository, ["moving"], Buffer.from("new"));
    const { versions } = await list();
    assert.deepEqual(versions.find((v) => v.name === old.digest)?.metadata.container.tags, []);
    assert.equal(versions.find((v) => v.name === old.digest)?.id, oldId);
    assert.deepEqual(versions.find((v) => v.name === moved.digest)?.metadata.container.tags, ["moving"]);
    assert.equal(await status(`${versionsPath}/${oldId}`, { method: "DELETE", ...auth() }), 204);
    const res = await fetch(`${registry.url}/v2/${repository}/manifests/${old.digest}`, {
      headers: OCI_ACCEPT,
    });
    await res.body?.cancel();
    assert.equal(res.status, 404);
  });

  test("requires the token, the right owner kind and an escaped package name", async () => {
    api.requests.length = 0;
    assert.equal(await status(versionsPath), 401);
    assert.equal(await status(versionsPath, { headers: { Authorization: "Bearer wrong" } }), 401);
    assert.equal(
      await status(`${api.url}/users/acme/packages/container/infra%2Fstate/versions`, auth()),
      404,
    );
    assert.equal(await status(`${api.url}/orgs/acme/packages/container/infra/state/versions`, auth()), 404);
    assert.equal(
      await status(`${api.url}/orgs/other/packages/container/infra%2Fstate/versions`, auth()),
      404,
    );
    assert.equal(await status(`${versionsPath}/999`, { method: "DELETE", ...auth() }), 404);
    assert.deepEqual(
      api.requests.map((r) => r.status),
      [401, 401, 404, 404, 404, 404],
    );
    assert.equal(api.requests[1]?.headers.authorization, "Bearer wrong");
  });
});
