import assert from "node:assert/strict";
import { test } from "node:test";
import {
  LockEventKind,
  StateService,
  type WatchLockResponse,
} from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { client, PROTOCOLS, startRegistryFixture } from "./fixture.ts";

const fx = await startRegistryFixture();

test("WatchLock events reach watchers on every protocol, for one workspace and for all, with small and large lock infos", async () => {
  const served = await fx.serve();
  const locker = client(StateService, "grpc over h2c", served.url);
  for (const ws of ["default", ""]) {
    const watchers = PROTOCOLS.map((p) => ({
      p,
      ac: new AbortController(),
      it: client(StateService, p, served.url).watchLock({ workspace: ws })[Symbol.asyncIterator](),
    }));
    const nxt = async (w: (typeof watchers)[number]) => {
      const r = await w.it.next();
      assert.equal(r.done, false, w.p);
      return r.value as WatchLockResponse;
    };
    for (const w of watchers) {
      if (ws !== "") assert.equal((await nxt(w)).kind, LockEventKind.SNAPSHOT, w.p);
      const c = await nxt(w);
      assert.equal(c.kind, LockEventKind.SNAPSHOT_COMPLETE, w.p);
      assert.equal(c.workspace, ws, w.p);
    }
    const big = "i".repeat(5000);
    for (let round = 0; round < 3; round++) {
      for (const info of ["small", big, "x".repeat(900)]) {
        const id = `id-${round}-${info.length}`;
        await locker.lock({ workspace: "default", lock: { id, info, who: "me" } });
        await locker.unlock({ workspace: "default", lockId: id });
        for (const w of watchers) {
          const l = await nxt(w);
          assert.equal(l.kind, LockEventKind.LOCKED, w.p);
          assert.equal(l.workspace, "default", w.p);
          assert.equal(l.lock?.id, id, w.p);
          assert.equal(l.lock?.info, info, w.p);
          assert.equal(l.lock?.who, "me", w.p);
          assert.ok(l.generation > 0n, w.p);
          assert.ok(l.observeTime !== undefined, w.p);
          const u = await nxt(w);
          assert.equal(u.kind, LockEventKind.UNLOCKED, w.p);
          assert.equal(u.lock?.id, id, w.p);
        }
      }
    }
    for (const w of watchers) await w.it.return?.();
  }
  await served.stop();
});
