import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { InvalidArgumentError, UnauthenticatedError } from "../../src/errors.ts";
import { dockerConfigCredentials } from "../../src/oci/docker-config.ts";
import { createRemoteTarget } from "../../src/oci/remote.ts";
import { type ProxyHandle, startProxy } from "../harness/proxy.ts";
import { type RegistryHandle, startRegistry } from "../harness/registry.ts";
import { registryTokenAuth, startTokenServer, type TokenServerHandle } from "../harness/token-server.ts";
import { STATE_TYPE } from "./remote-fixtures.ts";

const USER = "alice";
const PASSWORD = "helper-s3cret";

describe("remote target: credentials from Docker's config.json", () => {
  let registry: RegistryHandle;
  let tokens: TokenServerHandle;
  let tokenRegistry: RegistryHandle;
  let proxy: ProxyHandle;
  let dir: string;
  let helperLog: string;
  const savedPath = process.env.PATH;

  async function writeConfig(name: string, config: unknown): Promise<string> {
    const file = path.join(dir, name, "config.json");
    await rm(path.dirname(file), { recursive: true, force: true });
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(config));
    return file;
  }

  async function writeHelper(name: string, knownServer: string, answer: string): Promise<void> {
    const script = [
      "#!/bin/sh",
      "server=$(cat)",
      `echo "$1 $server" >> ${JSON.stringify(helperLog)}`,
      'if [ "$1" != "get" ]; then exit 2; fi',
      `if [ "$server" = ${JSON.stringify(knownServer)} ]; then`,
      `  printf '%s' ${JSON.stringify(answer)}`,
      "  exit 0",
      "fi",
      'echo "credentials not found in native keychain"',
      "exit 1",
      "",
    ].join("\n");
    const file = path.join(dir, "bin", `docker-credential-${name}`);
    await writeFile(file, script);
    await chmod(file, 0o755);
  }

  before(async () => {
    registry = await startRegistry({ auth: { kind: "basic", users: { [USER]: PASSWORD } } });
    proxy = await startProxy(registry.url);
    tokens = await startTokenServer({ users: { [USER]: PASSWORD } });
    tokenRegistry = await startRegistry({
      auth: registryTokenAuth(tokens),
    });
    dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-dockercfg-"));
    helperLog = path.join(dir, "helper.log");
    await mkdir(path.join(dir, "bin"));
    process.env.PATH = `${path.join(dir, "bin")}${path.delimiter}${savedPath ?? ""}`;
  });
  after(async () => {
    process.env.PATH = savedPath;
    await proxy?.stop();
    await registry?.stop();
    await tokenRegistry?.stop();
    await tokens?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("auths with a base64 auth field (key with scheme and path) authenticates", async () => {
    const configFile = await writeConfig("auths-b64", {
      auths: {
        "other.example.com": { auth: Buffer.from("bob:nope").toString("base64") },
        [`http://${proxy.host}/v2/`]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString("base64") },
      },
    });
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/cfg`,
      plainHTTP: true,
      credentials: { dockerConfig: configFile },
    });
    try {
      await target.pushBlob({ bytes: Buffer.from("via auths") }, STATE_TYPE);
      assert.deepEqual(await target.listTags(), []);
    } finally {
      await target.close();
    }
  });

  test("auths with username and password fields authenticates", async () => {
    const configFile = await writeConfig("auths-fields", {
      auths: { [proxy.host]: { username: USER, password: PASSWORD } },
    });
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/cfg`,
      plainHTTP: true,
      credentials: { dockerConfig: configFile },
    });
    try {
      await target.pushBlob({ bytes: Buffer.from("via fields") }, STATE_TYPE);
    } finally {
      await target.close();
    }
  });

  test("credHelpers runs docker-credential-<name> get with the host on stdin", async () => {
    await writeHelper(
      "xyz",
      proxy.host,
      JSON.stringify({ ServerURL: proxy.host, Username: USER, Secret: PASSWORD }),
    );
    const configFile = await writeConfig("helper", {
      credHelpers: { [proxy.host]: "xyz" },
      auths: { [proxy.host]: { auth: Buffer.from(`${USER}:wrong`).toString("base64") } },
    });
    await writeFile(helperLog, "");
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/cfg`,
      plainHTTP: true,
      credentials: { dockerConfig: configFile },
    });
    try {
      await target.pushBlob({ bytes: Buffer.from("via helper") }, STATE_TYPE);
      for (let i = 0; i < 3; i++) await target.listTags();
      assert.deepEqual((await readFile(helperLog, "utf8")).trim().split("\n"), [`get ${proxy.host}`]);
    } finally {
      await target.close();
    }
  });

  test("a helper answer is cached per server, and 'credentials not found' means anonymous", async () => {
    await writeHelper("cached", "known.example", JSON.stringify({ Username: USER, Secret: PASSWORD }));
    const configFile = await writeConfig("store", { credsStore: "cached" });
    await writeFile(helperLog, "");
    const lookup = dockerConfigCredentials({ configPath: configFile });
    assert.deepEqual(await lookup("known.example"), { username: USER, password: PASSWORD });
    assert.deepEqual(await lookup("known.example"), { username: USER, password: PASSWORD });
    assert.equal(await lookup("unknown.example"), undefined);
    assert.deepEqual((await readFile(helperLog, "utf8")).trim().split("\n"), [
      "get known.example",
      "get unknown.example",
    ]);

    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/cfg`,
      plainHTTP: true,
      credentials: { dockerConfig: configFile },
    });
    try {
      await assert.rejects(target.listTags(), (err) => {
        assert.ok(err instanceof UnauthenticatedError);
        assert.match(err.message, /no credentials are configured/);
        return true;
      });
    } finally {
      await target.close();
    }
  });

  test("a helper that is missing or fails is logged and treated as anonymous", async () => {
    const warnings: string[] = [];
    const logger = { warn: (msg: string) => warnings.push(msg) };
    const missing = await writeConfig("missing-helper", { credsStore: "does-not-exist" });
    assert.equal(await dockerConfigCredentials({ configPath: missing, logger })("h.example"), undefined);
    await writeFile(
      path.join(dir, "bin", "docker-credential-broken"),
      "#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n",
    );
    await chmod(path.join(dir, "bin", "docker-credential-broken"), 0o755);
    const broken = await writeConfig("broken-helper", { credsStore: "broken" });
    assert.equal(await dockerConfigCredentials({ configPath: broken, logger })("h.example"), undefined);
    assert.equal(warnings.length, 2);
  });

  test("a missing config file means anonymous; a broken one is InvalidArgumentError naming it", async () => {
    assert.equal(
      await dockerConfigCredentials({ configPath: path.join(dir, "nope.json") })("h.example"),
      undefined,
    );
    const bad = path.join(dir, "bad.json");
    await writeFile(bad, "{not json");
    await assert.rejects(dockerConfigCredentials({ configPath: bad })("h.example"), (err) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.ok(err.message.includes(bad));
      return true;
    });
  });

  test("an identitytoken is exchanged at the token service (OAuth2 refresh grant)", async () => {
    const issued = await fetch(
      `${tokens.realm}?service=${encodeURIComponent(tokens.service)}&offline_token=true`,
      {
        headers: { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}` },
      },
    );
    const { refresh_token: refreshToken } = (await issued.json()) as { refresh_token: string };
    assert.ok(refreshToken);
    const host = new URL(tokenRegistry.url).host;
    const configFile = await writeConfig("identity", { auths: { [host]: { identitytoken: refreshToken } } });
    const target = createRemoteTarget({
      repository: `${host}/tfstate/identity`,
      plainHTTP: true,
      credentials: { dockerConfig: configFile },
    });
    try {
      tokens.requests.length = 0;
      const desc = await target.pushBlob({ bytes: Buffer.from("via identity token") }, STATE_TYPE);
      assert.equal(await target.blobExists(desc.digest), true);
      assert.deepEqual(
        tokens.requests.map((r) => r.user),
        [USER, USER],
      );
    } finally {
      await target.close();
    }
  });
});
