/**
 * Every RPC of StateService and WorkspaceService, over every protocol the server speaks, with the
 * real client transports, against a real registry.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { LockHeldDetailSchema } from "../../src/gen/tfstate/v1/error_details_pb.ts";
import {
  LockEventKind,
  StateService,
  type WatchLockResponse,
} from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { WorkspaceView } from "../../src/gen/tfstate/v1/workspace_pb.ts";
import { WorkspaceService } from "../../src/gen/tfstate/v1/workspace_service_pb.ts";
import {
  client,
  PROTOCOLS,
  type RegistryFixture,
  rejectsWith,
  startRegistryFixture,
  str,
  text,
} from "./fixture.ts";

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest();

/** The next message of a stream, or a failure after `ms`. */
async function next<T>(it: AsyncIterator<T>, ms = 1000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no stream message within ${ms} ms`)), ms);
  });
  try {
    const r = await Promise.race([it.next(), timeout]);
    assert.equal(r.done, false, "the stream ended");
    return r.value as T;
  } finally {
    clearTimeout(timer);
  }
}

const fx: RegistryFixture = await startRegistryFixture();

for (const protocol of PROTOCOLS) {
  describe(`over ${protocol}`, () => {
    test("StateService: every RPC from a first write to a delete", async () => {
      const { url } = await fx.serve({ backend: { maxVersions: 5 } });
      const state = client(StateService, protocol, url);
      const v1 = text('{"version":4,"serial":1}');
      const v2 = text('{"version":4,"serial":2}');

      await rejectsWith(state.getState({ workspace: "default" }), Code.NotFound);

      const put1 = await state.putState({ workspace: "default", state: v1, md5: md5(v1) });
      assert.match(put1.metadata?.digest ?? "", /^sha256:[0-9a-f]{64}$/);
      assert.equal(put1.metadata?.version, 1n);
      assert.equal(put1.metadata?.sizeBytes, BigInt(v1.length));
      assert.deepEqual(Buffer.from(put1.metadata?.md5 ?? []), md5(v1));
      assert.equal(put1.metadata?.storedSizeBytes, BigInt(v1.length), "stored uncompressed here");
      assert.ok(put1.metadata?.updateTime, "PutState reports update_time");

      const got = await state.getState({ workspace: "default" });
      assert.equal(str(got.state), str(v1));
      assert.equal(got.notModified, false);
      assert.equal(got.metadata?.digest, put1.metadata?.digest);
      assert.ok(got.metadata?.updateTime, "update_time is set");
      assert.equal(got.metadata?.storedSizeBytes, BigInt(v1.length));

      const same = await state.getState({ workspace: "default", ifNoneMatch: put1.metadata?.digest ?? "" });
      assert.equal(same.notModified, true);
      assert.equal(same.state.length, 0);
      assert.equal(same.metadata?.digest, put1.metadata?.digest);
      assert.equal(
        same.metadata?.storedSizeBytes,
        BigInt(v1.length),
        "not-modified carries the manifest's facts",
      );

      const lock = await state.lock({
        workspace: "default",
        lock: { operation: "OperationTypeApply", who: "alice@host", version: "1.10.0" },
      });
      const lockId = lock.lock?.id ?? "";
      assert.match(lockId, /^[0-9a-f-]{36}$/, "the server assigns a UUID");
      assert.equal(lock.lock?.who, "alice@host");
      assert.equal(lock.lock?.path, "state-default");
      assert.ok(lock.lock?.created, "created defaults to the time of the request");
      assert.equal(lock.generation, 1n);

      const again = await state.lock({ workspace: "default", lock: { id: lockId, who: "alice@host" } });
      assert.equal(again.lock?.id, lockId, "locking again with the holder's ID succeeds");

      const held = await state.getLock({ workspace: "default" });
      assert.equal(held.lock?.id, lockId);
      assert.equal(held.generation, 1n);

      const fenced = await rejectsWith(
        state.putState({ workspace: "default", state: v2 }),
        Code.FailedPrecondition,
      );
      const [detail] = fenced.findDetails(LockHeldDetailSchema);
      assert.equal(detail?.holder?.id, lockId);
      assert.equal(detail?.holder?.who, "alice@host");

      const put2 = await state.putState({ workspace: "default", state: v2, lockId });
      assert.equal(put2.metadata?.version, 2n);

      const watch = new AbortController();
      const events = state
        .watchLock({ workspace: "default" }, { signal: watch.signal })
        [Symbol.asyncIterator]();
      const snapshot = await next<WatchLockResponse>(events);
      assert.equal(snapshot.kind, LockEventKind.SNAPSHOT);
      assert.equal(snapshot.lock?.id, lockId);
      assert.equal((await next<WatchLockResponse>(events)).kind, LockEventKind.SNAPSHOT_COMPLETE);

      const unlocked = await state.unlock({ workspace: "default", lockId });
      assert.equal(unlocked.releasedLock?.id, lockId);
      const change = await next<WatchLockResponse>(events, 1000);
      assert.equal(change.kind, LockEventKind.UNLOCKED);
      assert.equal(change.workspace, "default");
      watch.abort();

      assert.equal((await state.getLock({ workspace: "default" })).lock, undefined);
      assert.equal((await state.unlock({ workspace: "default", lockId })).releasedLock, undefined);

      const page1 = await state.listVersions({ workspace: "default", pageSize: 1 });
      assert.deepEqual(
        page1.versions.map((v) => v.number),
        [2n],
      );
      assert.notEqual(page1.nextPageToken, "");
      const page2 = await state.listVersions({ workspace: "default", pageToken: page1.nextPageToken });
      assert.deepEqual(
        page2.versions.map((v) => v.number),
        [1n],
      );
      assert.equal(page2.nextPageToken, "");

      const old = await state.getVersion({ workspace: "default", version: 1n });
      assert.equal(str(old.state), str(v1));
      assert.equal(old.metadata?.version, 1n);

      const restored = await state.restoreVersion({ workspace: "default", version: 1n });
      assert.equal(restored.metadata?.version, 3n);
      assert.equal(str((await state.getState({ workspace: "default" })).state), str(v1));

      const chunks: Uint8Array[] = [];
      let checksum: { sizeBytes: bigint; md5: Uint8Array } | undefined;
      let first: string | undefined;
      for await (const m of state.downloadState({ workspace: "default" })) {
        first ??= m.payload.case;
        if (m.payload.case === "chunk") chunks.push(m.payload.value);
        if (m.payload.case === "checksum") checksum = m.payload.value;
      }
      assert.equal(first, "metadata");
      assert.equal(str(Buffer.concat(chunks)), str(v1));
      assert.equal(checksum?.sizeBytes, BigInt(v1.length));
      assert.deepEqual(Buffer.from(checksum?.md5 ?? []), md5(v1));

      const v4 = text('{"version":4,"serial":4}');
      async function* upload() {
        yield {
          payload: { case: "header" as const, value: { workspace: "default", sizeBytes: BigInt(v4.length) } },
        };
        yield { payload: { case: "chunk" as const, value: v4.subarray(0, 5) } };
        yield { payload: { case: "chunk" as const, value: v4.subarray(5) } };
      }
      const uploaded = await state.uploadState(upload());
      assert.equal(uploaded.metadata?.version, 4n);
      assert.equal(str((await state.getState({ workspace: "default" })).state), str(v4));

      await state.deleteState({ workspace: "default" });
      await rejectsWith(state.getState({ workspace: "default" }), Code.NotFound);
      await state.deleteState({ workspace: "default" });
    });

    test("WorkspaceService: create, list, get and delete", async () => {
      const { url } = await fx.serve();
      const ws = client(WorkspaceService, protocol, url);
      const state = client(StateService, protocol, url);

      const created = await ws.createWorkspace({ name: "dev" });
      assert.equal(created.workspace?.name, "dev");
      assert.equal(created.workspace?.hasState, false);
      await rejectsWith(ws.createWorkspace({ name: "dev" }), Code.AlreadyExists);

      await state.putState({ workspace: "prod", state: text('{"serial":1}') });
      await state.lock({ workspace: "prod", lock: { id: "lock-prod", who: "bob@host" } });

      const full = await ws.listWorkspaces({});
      assert.deepEqual(
        full.workspaces.map((w) => w.name),
        ["default", "dev", "prod"],
      );
      const prod = full.workspaces.find((w) => w.name === "prod");
      assert.equal(prod?.hasState, true);
      assert.equal(prod?.lock?.id, "lock-prod");
      assert.match(prod?.digest ?? "", /^sha256:/);
      assert.ok(prod?.updateTime);

      const basic = await ws.listWorkspaces({ view: WorkspaceView.BASIC, pageSize: 2 });
      assert.deepEqual(
        basic.workspaces.map((w) => [w.name, w.hasState]),
        [
          ["default", false],
          ["dev", false],
        ],
      );
      const rest = await ws.listWorkspaces({
        view: WorkspaceView.BASIC,
        pageSize: 2,
        pageToken: basic.nextPageToken,
      });
      assert.deepEqual(
        rest.workspaces.map((w) => w.name),
        ["prod"],
      );
      assert.equal(rest.nextPageToken, "");
      await rejectsWith(ws.listWorkspaces({ pageToken: basic.nextPageToken }), Code.InvalidArgument);

      const got = await ws.getWorkspace({ name: "prod" });
      assert.equal(got.workspace?.lock?.who, "bob@host");
      await rejectsWith(ws.getWorkspace({ name: "nope" }), Code.NotFound);

      const refused = await rejectsWith(ws.deleteWorkspace({ name: "prod" }), Code.FailedPrecondition);
      assert.equal(refused.findDetails(LockHeldDetailSchema)[0]?.holder?.id, "lock-prod");
      await ws.deleteWorkspace({ name: "prod", lockId: "lock-prod" });
      await ws.deleteWorkspace({ name: "dev" });
      await rejectsWith(ws.getWorkspace({ name: "dev" }), Code.NotFound);
      await rejectsWith(ws.deleteWorkspace({ name: "default" }), Code.InvalidArgument);
      assert.deepEqual(
        (await ws.listWorkspaces({})).workspaces.map((w) => w.name),
        ["default"],
      );
    });
  });
}

test("Lock with wait returns once the holder unlocks", async () => {
  const { url } = await fx.serve();
  const state = client(StateService, "grpc over h2c", url);
  await state.lock({ workspace: "default", lock: { id: "first" } });
  const started = Date.now();
  const waiting = state.lock({ workspace: "default", lock: { id: "second" }, wait: durationFromMs(10_000) });
  setTimeout(() => void state.unlock({ workspace: "default", lockId: "first" }), 300);
  const got = await waiting;
  assert.equal(got.lock?.id, "second");
  const waited = Date.now() - started;
  assert.ok(waited >= 250 && waited < 5000, `waited ${waited} ms`);
  await rejectsWith(
    state.lock({ workspace: "default", lock: { id: "x" }, wait: durationFromMs(-1) }),
    Code.InvalidArgument,
  );
});
