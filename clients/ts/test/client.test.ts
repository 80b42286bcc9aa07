/**
 * The Node and browser clients against the running service: on a real registry over cleartext with
 * identity on (`--tokens-file`; every call carries a token), and on an OCI layout directory over TLS
 * with no identity (anonymous callers, no token sent), over every protocol each client speaks.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { startRegistry } from "../../../test/harness/registry.ts";
import { createTestCertificates } from "../../../test/harness/tls.ts";
import {
  createNodeClient,
  LockEventKind,
  type LockResponse,
  lockHolder,
  type NodeTfstateClient,
  StateFormat,
  type StateMetadata,
  sizeLimit,
  type TfstateClient,
  WorkspaceView,
} from "../src/node.ts";
import { createWebClient } from "../src/web.ts";
import { newSecret, startService, writeTokensFile } from "./service.ts";

const md5 = (b: Uint8Array) => new Uint8Array(createHash("md5").update(b).digest());
const encode = (s: string) => new TextEncoder().encode(s);
const stateBytes = (serial: number, lineage: string) =>
  encode(`{"version":4,"serial":${serial},"lineage":"${lineage}","outputs":{},"resources":[]}`);
const workspaceName = (prefix: string) => `${prefix}-${randomBytes(5).toString("hex")}`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Every call is bounded, so a broken server fails a test instead of hanging the run. */
const TIMEOUT_MS = 15_000;

const registry = await startRegistry();
const certs = await createTestCertificates();
const workDir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-ts-client-"));
const token = newSecret();
const tokensFile = await writeTokensFile(path.join(workDir, "tokens.json"), { "ts-client-tests": token });
const [onRegistry, onTls] = await Promise.all([
  startService([
    `--repository=${registry.host}/tfstate/ts-client-${randomBytes(4).toString("hex")}`,
    "--plain-http",
    "--max-versions=10",
    `--tokens-file=${tokensFile}`,
  ]),
  startService([
    `--repository=oci-layout:${path.join(workDir, "layout")}`,
    `--tls-cert=${certs.serverCertFile}`,
    `--tls-key=${certs.serverKeyFile}`,
    "--max-versions=10",
  ]),
]);
const ca = await readFile(certs.caCertFile);
const clients: NodeTfstateClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  await Promise.all([onRegistry.stop(), onTls.stop()]);
  await registry.stop();
  await certs.remove();
  await rm(workDir, { recursive: true, force: true });
});

function nodeClient(options: Parameters<typeof createNodeClient>[0]): TfstateClient {
  const client = createNodeClient({ defaultTimeoutMs: TIMEOUT_MS, ...options });
  clients.push(client);
  return client;
}

const TARGETS: { name: string; client: () => TfstateClient }[] = [
  {
    name: "node connect, registry + token, HTTP/1.1",
    client: () => nodeClient({ baseUrl: onRegistry.url, token }),
  },
  {
    name: "node grpc, registry + token, h2c",
    client: () => nodeClient({ baseUrl: onRegistry.url, token, protocol: "grpc" }),
  },
  {
    name: "node grpc-web, registry + token, HTTP/1.1",
    client: () => nodeClient({ baseUrl: onRegistry.url, token, protocol: "grpc-web" }),
  },
  { name: "node connect, layout, TLS", client: () => nodeClient({ baseUrl: onTls.url, tls: { ca } }) },
  {
    name: "node grpc, layout, TLS",
    client: () => nodeClient({ baseUrl: onTls.url, protocol: "grpc", tls: { ca } }),
  },
  {
    name: "web connect (fetch), registry + token",
    client: () => createWebClient({ baseUrl: onRegistry.url, token, defaultTimeoutMs: TIMEOUT_MS }),
  },
  {
    name: "web grpc-web (fetch), registry + token",
    client: () =>
      createWebClient({
        baseUrl: onRegistry.url,
        protocol: "grpc-web",
        token,
        defaultTimeoutMs: TIMEOUT_MS,
      }),
  },
];

async function rejects(p: Promise<unknown>, code: Code): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `not a ConnectError: ${String(err)}`);
    assert.equal(Code[err.code], Code[code], err.message);
    return err;
  }
  assert.fail(`expected ${Code[code]}, the call succeeded`);
}

async function put(
  c: TfstateClient,
  workspace: string,
  state: Uint8Array,
  lockId = "",
): Promise<StateMetadata> {
  const res = await c.state.putState({ workspace, state, md5: md5(state), lockId });
  assert.ok(res.metadata);
  return res.metadata;
}

function lock(c: TfstateClient, workspace: string, who: string): Promise<LockResponse> {
  return c.state.lock({
    workspace,
    lock: { operation: "OperationTypeApply", who, version: "1.10.0", info: "ts client test" },
  });
}

for (const target of TARGETS) {
  describe(target.name, () => {
    const c = target.client();

    test("create a workspace", async () => {
      const name = workspaceName("create");
      const { workspace } = await c.workspaces.createWorkspace({ name });
      assert.equal(workspace?.name, name);
      assert.equal(workspace?.hasState, false);
      assert.equal(workspace?.lock, undefined);
      await rejects(c.workspaces.createWorkspace({ name }), Code.AlreadyExists);
      const got = await c.workspaces.getWorkspace({ name, view: WorkspaceView.FULL });
      assert.equal(got.workspace?.name, name);
      await rejects(c.state.getState({ workspace: name }), Code.NotFound);
      await rejects(c.workspaces.createWorkspace({ name: "" }), Code.InvalidArgument);
    });

    test("put and get round trip with an MD5 check", async () => {
      const name = workspaceName("roundtrip");
      const state = stateBytes(1, name);
      const meta = await put(c, name, state);
      assert.deepEqual(meta.md5, md5(state));
      assert.equal(meta.sizeBytes, BigInt(state.length));
      assert.match(meta.digest, /^sha256:[0-9a-f]{64}$/);

      const got = await c.state.getState({ workspace: name });
      assert.deepEqual(got.state, state);
      assert.deepEqual(md5(got.state), got.metadata?.md5);
      assert.equal(got.metadata?.digest, meta.digest);
      assert.equal(got.notModified, false);

      const same = await c.state.getState({ workspace: name, ifNoneMatch: meta.digest });
      assert.equal(same.notModified, true);
      assert.equal(same.state.length, 0);

      await rejects(
        c.state.putState({ workspace: name, state: stateBytes(2, name), md5: md5(state) }),
        Code.InvalidArgument,
      );
      assert.deepEqual((await c.state.getState({ workspace: name })).state, state);
    });

    test("outputs and the summary, sensitive values masked", async () => {
      const name = workspaceName("outputs");
      await put(
        c,
        name,
        encode(
          JSON.stringify({
            version: 4,
            serial: 3,
            lineage: "lin",
            resources: [
              { mode: "managed", type: "terraform_data", name: "x", instances: [{ attributes: {} }] },
            ],
            outputs: {
              ip: { value: "10.0.0.1", type: "string" },
              pw: { value: "hunter2", type: "string", sensitive: true },
            },
          }),
        ),
      );
      const outputs = await c.state.getOutputs({ workspace: name });
      assert.equal(outputs.format, StateFormat.TERRAFORM_JSON);
      assert.deepEqual(
        outputs.outputs.map((o) => [o.name, o.sensitive, o.valueJson]),
        [
          ["ip", false, '"10.0.0.1"'],
          ["pw", true, ""],
        ],
      );
      const { summary } = await c.state.getStateSummary({ workspace: name });
      assert.deepEqual([summary?.serial, summary?.lineage, summary?.resourceCount], [3n, "lin", 1n]);
    });

    test("a lock conflict carries the holder's LockInfo", async () => {
      const name = workspaceName("conflict");
      const held = await lock(c, name, "alice@ci");
      assert.match(held.lock?.id ?? "", UUID);

      const err = await rejects(
        c.state.lock({ workspace: name, lock: { id: "bob-lock", who: "bob@laptop" } }),
        Code.FailedPrecondition,
      );
      const detail = lockHolder(err);
      assert.ok(detail?.holder, "the error carries a LockHeldDetail");
      const { holder } = detail;
      assert.equal(holder.id, held.lock?.id);
      assert.equal(holder.who, "alice@ci");
      assert.equal(holder.operation, "OperationTypeApply");
      assert.equal(holder.version, "1.10.0");
      assert.equal(holder.info, "ts client test");
      assert.equal(holder.path, held.lock?.path);
      assert.ok(holder.created);
      assert.equal(detail.generation, held.generation);
      assert.equal(sizeLimit(err), undefined);

      const again = await c.state.lock({ workspace: name, ...(held.lock ? { lock: held.lock } : {}) });
      assert.equal(again.lock?.id, held.lock?.id, "locking again with the holder's ID is a harmless retry");
      assert.equal((await c.state.getLock({ workspace: name })).lock?.id, held.lock?.id);

      const wrongUnlock = await rejects(
        c.state.unlock({ workspace: name, lockId: "bob-lock" }),
        Code.FailedPrecondition,
      );
      assert.ok(lockHolder(wrongUnlock));
      const released = await c.state.unlock({ workspace: name, lockId: held.lock?.id ?? "" });
      assert.equal(released.releasedLock?.id, held.lock?.id);
      await lock(c, name, "bob@laptop");
    });

    test("a fenced put with the wrong lock ID is refused", async () => {
      const name = workspaceName("fenced");
      const first = stateBytes(1, name);
      await put(c, name, first);
      const held = await lock(c, name, "alice@ci");
      const lockId = held.lock?.id ?? "";

      for (const wrong of ["", "not-the-holder"]) {
        const err = await rejects(
          c.state.putState({ workspace: name, state: stateBytes(2, name), lockId: wrong }),
          Code.FailedPrecondition,
        );
        assert.equal(lockHolder(err)?.holder?.id, lockId, `lock ID ${JSON.stringify(wrong)}`);
      }
      assert.deepEqual((await c.state.getState({ workspace: name })).state, first);

      const second = stateBytes(2, name);
      await put(c, name, second, lockId);
      await c.state.unlock({ workspace: name, lockId });
      // The lock is gone, so a write quoting it works from a stale view and is refused.
      await rejects(
        c.state.putState({ workspace: name, state: stateBytes(3, name), lockId }),
        Code.FailedPrecondition,
      );
      assert.deepEqual((await c.state.getState({ workspace: name })).state, second);
    });

    test("WatchLock receives the lock and the unlock", async () => {
      const name = workspaceName("watch");
      const stream = c.state.watchLock({ workspace: name })[Symbol.asyncIterator]();
      try {
        const next = async () => {
          const r = await stream.next();
          assert.equal(r.done, false, "the stream ended");
          assert.ok(r.value);
          assert.equal(r.value.workspace, name);
          return r.value;
        };
        const snapshot = await next();
        assert.equal(snapshot.kind, LockEventKind.SNAPSHOT);
        assert.equal(snapshot.lock, undefined);
        assert.equal((await next()).kind, LockEventKind.SNAPSHOT_COMPLETE);

        // Ask for the next message first: the lock's event is pushed while the call waits.
        const pending = next();
        const held = await lock(c, name, "alice@ci");
        const locked = await pending;
        assert.equal(locked.kind, LockEventKind.LOCKED);
        assert.equal(locked.lock?.id, held.lock?.id);
        assert.equal(locked.lock?.who, "alice@ci");
        assert.equal(locked.generation, held.generation);
        assert.ok(locked.observeTime);

        await c.state.unlock({ workspace: name, lockId: held.lock?.id ?? "" });
        const unlocked = await next();
        assert.equal(unlocked.kind, LockEventKind.UNLOCKED);
        assert.ok(unlocked.lock === undefined || unlocked.lock.id === held.lock?.id);
      } finally {
        // What a for-await loop does when it stops early: the client ends the call.
        await stream.return?.();
      }
    });

    test("list workspaces and versions", async () => {
      const prefix = workspaceName("list");
      const names = [`${prefix}-c`, `${prefix}-a`, `${prefix}-b`];
      for (const name of names) await c.workspaces.createWorkspace({ name });
      const states = [1, 2, 3].map((serial) => stateBytes(serial, prefix));
      const metas: StateMetadata[] = [];
      for (const state of states) metas.push(await put(c, names[1] as string, state));

      // Other tests add workspaces meanwhile: only the order and the presence of ours are checked.
      const listed = [];
      let pageToken = "";
      for (let pages = 0; ; pages++) {
        assert.ok(pages < 1000, "ListWorkspaces never returned an empty next_page_token");
        const page = await c.workspaces.listWorkspaces({ pageSize: 2, pageToken });
        assert.ok(page.workspaces.length <= 2);
        listed.push(...page.workspaces);
        pageToken = page.nextPageToken;
        if (pageToken === "") break;
      }
      const listedNames = listed.map((w) => w.name);
      assert.deepEqual(listedNames, [...listedNames].sort());
      const byName = new Map(listed.map((w) => [w.name, w]));
      for (const name of ["default", ...names]) assert.ok(byName.has(name), `${name} is listed`);
      const withState = byName.get(names[1] as string);
      assert.equal(withState?.hasState, true);
      assert.equal(withState?.digest, metas[2]?.digest);
      assert.equal(withState?.version, metas[2]?.version);
      assert.equal(byName.get(names[0] as string)?.hasState, false);

      const first = await c.state.listVersions({ workspace: names[1] as string, pageSize: 2 });
      assert.equal(first.versions.length, 2);
      assert.notEqual(first.nextPageToken, "");
      const rest = await c.state.listVersions({
        workspace: names[1] as string,
        pageSize: 2,
        pageToken: first.nextPageToken,
      });
      assert.equal(rest.nextPageToken, "");
      assert.deepEqual(
        [...first.versions, ...rest.versions].map((v) => [v.number, v.digest]),
        [...metas].reverse().map((m) => [m.version, m.digest]),
        "newest first",
      );

      const oldest = await c.state.getVersion({
        workspace: names[1] as string,
        version: metas[0]?.version ?? 0n,
      });
      assert.deepEqual(oldest.state, states[0]);
      assert.deepEqual(oldest.metadata?.md5, md5(states[0] as Uint8Array));
      await rejects(c.state.getVersion({ workspace: names[1] as string, version: 999n }), Code.NotFound);
    });
  });
}
