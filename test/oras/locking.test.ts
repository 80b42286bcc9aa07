import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LockError } from "../../src/oras/index.ts";
import { pushManifest } from "../harness/seed.ts";
import { countRequests, lockInfo, startCoreFixture } from "./fixture.ts";

const fx = await startCoreFixture();
const HOUR = 3600_000;

async function lockAnnotations(repo: string, ws = "default") {
  const raw = await fx.rawManifest(repo, `locked-${ws}`);
  if (raw.status !== 200) return null;
  return JSON.parse(raw.bytes.toString()).annotations as Record<string, string>;
}

describe("locking against a real registry", () => {
  test("A locks, B fails with A's LockInfo, wrong-ID unlock fails, right-ID unlock frees it, B locks (case 1)", async () => {
    const repo = fx.repo();
    const a = fx.backend(repo).stateMgr("default");
    const b = fx.backend(repo).stateMgr("default");
    assert.equal(await a.lock(lockInfo("id-a", "alice@host")), "id-a");
    await assert.rejects(b.lock(lockInfo("id-b", "bob@host")), (e: unknown) => {
      assert.ok(e instanceof LockError);
      assert.equal(e.holder.id, "id-a");
      assert.equal(e.holder.who, "alice@host");
      assert.equal(e.holder.path, "state-default");
      assert.equal(e.inconsistentRead, false);
      assert.match(e.message, /locked by alice@host/);
      return true;
    });
    await assert.rejects(
      a.unlock("id-b"),
      (e: unknown) => e instanceof LockError && /mismatch/.test(e.message),
    );
    await a.unlock("id-a");
    assert.equal(await lockAnnotations(repo), null, "the lock tag is gone");
    assert.equal(await b.lock(lockInfo("id-b")), "id-b");
  });

  test("the lock manifest carries ghoten's annotations; generation 1 again after unlock (case 5)", async () => {
    const repo = fx.repo();
    const mgr = fx.backend(repo, { lockTTL: 60_000 }).stateMgr("default");
    const before = Date.now();
    await mgr.lock(lockInfo("gen-1"));
    const ann = await lockAnnotations(repo);
    assert.ok(ann);
    assert.equal(ann["org.terraform.lock.id"], "gen-1");
    assert.equal(ann["org.terraform.workspace"], "default");
    const info = JSON.parse(ann["org.terraform.lock.info"] ?? "");
    assert.deepEqual(Object.keys(info), ["ID", "Operation", "Info", "Who", "Version", "Created", "Path"]);
    assert.equal(info.Path, "state-default");
    assert.equal(info.Created, "2026-11-25T10:00:00.123456789Z");
    const gen = ann["org.terraform.lock.generation"] ?? "";
    const m = /^\{"generation":1,"lease_expiry":(\d+),"holder_id":"gen-1"\}$/.exec(gen);
    assert.ok(m, gen);
    const leaseMs = Number(BigInt(m[1] ?? "0") / 1_000_000n);
    assert.ok(leaseMs >= before + 60_000 && leaseMs <= Date.now() + 60_000, "lease in Unix nanoseconds");
    await mgr.unlock("gen-1");
    await mgr.lock(lockInfo("gen-again"));
    assert.match(
      (await lockAnnotations(repo))?.["org.terraform.lock.generation"] ?? "",
      /^\{"generation":1,/,
    );
  });

  test("locking again with the holder's own ID succeeds (clients retry lost answers)", async () => {
    const mgr = fx.backend(fx.repo()).stateMgr("default");
    await mgr.lock(lockInfo("same"));
    assert.equal(await mgr.lock(lockInfo("same")), "same");
  });

  test("locking again with the holder's ID renews its lease, keeping the generation", async () => {
    const repo = fx.repo();
    let now = Date.now();
    const mgr = fx.backend(repo, { lockTTL: 60_000, now: () => now }).stateMgr("default");
    const first = await mgr.acquireLock(lockInfo("renew"));
    now += 30_000;
    const again = await mgr.acquireLock(lockInfo("renew"));
    assert.equal(again.generation, first.generation);
    assert.equal(again.leaseExpiresAt, (first.leaseExpiresAt ?? 0) + 30_000);
    const other = fx.backend(repo, { lockTTL: 60_000, now: () => now + 45_000 }).stateMgr("default");
    await assert.rejects(
      other.lock(lockInfo("other")),
      (e: unknown) => e instanceof LockError && e.leaseExpiresAt === again.leaseExpiresAt,
    );
  });

  test("B7: unlocking a lock that is already gone succeeds", async () => {
    const repo = fx.repo();
    const a = fx.backend(repo).stateMgr("default");
    const b = fx.backend(repo).stateMgr("default");
    await a.lock(lockInfo("x"));
    await b.unlock("x");
    await a.unlock("x");
    await a.unlock("never-locked");
  });

  test("force unlock removes another holder's lock", async () => {
    const repo = fx.repo();
    const mgr = fx.backend(repo).stateMgr("default");
    await mgr.lock(lockInfo("holder"));
    await mgr.unlock("someone-else", { force: true });
    assert.equal(await lockAnnotations(repo), null);
  });

  test("a stale lock is cleared and taken; generation continues (cases 3 and 6)", async () => {
    const repo = fx.repo();
    const t0 = Date.now();
    const old = fx.backend(repo, { lockTTL: HOUR, now: () => t0 }).stateMgr("default");
    await old.lock(lockInfo("old-holder"));
    const fresh = fx.backend(repo, { lockTTL: HOUR, now: () => t0 + 30 * 60_000 }).stateMgr("default");
    await assert.rejects(fresh.lock(lockInfo("too-early")), LockError, "not stale yet");
    const later = fx.backend(repo, { lockTTL: HOUR, now: () => t0 + 2 * HOUR }).stateMgr("default");
    assert.equal(await later.lock(lockInfo("new-holder")), "new-holder");
    assert.match(
      (await lockAnnotations(repo))?.["org.terraform.lock.generation"] ?? "",
      /^\{"generation":2,/,
    );
    const next = fx.backend(repo, { lockTTL: HOUR, now: () => t0 + 2 * HOUR }).stateMgr("default");
    await assert.rejects(
      next.lock(lockInfo("third")),
      (e: unknown) => e instanceof LockError && e.holder.id === "new-holder",
    );
  });

  test("a lock without a lease (TTL 0 writer) is never stale", async () => {
    const repo = fx.repo();
    await fx.backend(repo).stateMgr("default").lock(lockInfo("no-lease"));
    const later = fx.backend(repo, { lockTTL: 1000, now: () => Date.now() + 10 * HOUR }).stateMgr("default");
    await assert.rejects(later.lock(lockInfo("other")), LockError);
  });

  test("a stale ghoten lock at generation 5 is taken over with generation 6 (case 6)", async () => {
    const repo = fx.repo();
    const writer = fx.backend(repo);
    await writer.stateMgr("default").put(new Uint8Array([1])); // makes sure the empty config blob exists
    const expiredNs = BigInt(Date.now() - HOUR) * 1_000_000n;
    await pushGhotenLock(repo, "default", {
      id: "ghoten-holder",
      generation: `{"generation":5,"lease_expiry":${expiredNs},"holder_id":"ghoten-holder"}`,
    });
    const mgr = fx.backend(repo, { lockTTL: HOUR }).stateMgr("default");
    await mgr.lock(lockInfo("taker"));
    assert.match(
      (await lockAnnotations(repo))?.["org.terraform.lock.generation"] ?? "",
      /^\{"generation":6,/,
    );
  });

  test("B6: a corrupt lock is reported as held by an unknown holder, and force-unlock removes it", async () => {
    const repo = fx.repo();
    await fx
      .backend(repo)
      .stateMgr("default")
      .put(new Uint8Array([1]));
    await pushGhotenLock(repo, "default", { id: "x", info: "{not json", generation: "{}" });
    const mgr = fx.backend(repo).stateMgr("default");
    let holderId = "";
    await assert.rejects(mgr.lock(lockInfo("me")), (e: unknown) => {
      assert.ok(e instanceof LockError);
      assert.equal(e.inconsistentRead, false, "no busy retry loop in OpenTofu");
      assert.equal(e.holder.who, "unknown");
      assert.match(e.message, /unreadable lock at tag locked-default/);
      holderId = e.holder.id;
      return true;
    });
    assert.match(holderId, /^sha256:/);
    await assert.rejects(mgr.unlock("me"), LockError);
    await mgr.unlock(holderId);
    assert.equal(await mgr.lock(lockInfo("me")), "me");
  });

  test("a registry that answers DELETE with 405 unlocks through the unlocked sentinel, and locks again (case 2)", async () => {
    const repo = fx.repo();
    const mgr = fx.backend(repo, { lockTTL: HOUR }).stateMgr("default");
    await mgr.lock(lockInfo("first"));
    fx.proxy.fault({
      method: "DELETE",
      path: new RegExp(`/v2/${repo}/`),
      action: {
        kind: "status",
        status: 405,
        body: '{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}',
      },
    });
    try {
      await mgr.unlock("first");
      const sentinel = await lockAnnotations(repo);
      assert.ok(sentinel, "the lock tag stays, pointing at the sentinel");
      assert.equal(sentinel["org.terraform.lock.id"], "");
      assert.equal(sentinel["org.terraform.lock.info"], "");
      assert.equal(sentinel["org.terraform.lock.generation"], '{"generation":0}');
      assert.ok((await fx.rawTags(repo)).includes("unlocked-default"));
      assert.equal(await mgr.lock(lockInfo("second")), "second");
      // stale clearing over the 405 path too
      const later = fx.backend(repo, { lockTTL: HOUR, now: () => Date.now() + 2 * HOUR }).stateMgr("default");
      assert.equal(await later.lock(lockInfo("third")), "third");
      await later.unlock("third");
      assert.equal((await lockAnnotations(repo))?.["org.terraform.lock.id"], "");
    } finally {
      fx.proxy.clearFaults();
    }
  });

  test("the lock status reports holder, generation and lease, and answers a conditional read", async () => {
    const repo = fx.repo();
    const mgr = fx.backend(repo, { lockTTL: 60_000 }).stateMgr("default");
    assert.deepEqual(await mgr.lockStatus(), { state: "unlocked", digest: null });
    await mgr.lock(lockInfo("watch-me"));
    const s = await mgr.lockStatus();
    assert.equal(s.state, "locked");
    if (s.state !== "locked") return;
    assert.equal(s.info.id, "watch-me");
    assert.equal(s.generation, 1);
    assert.ok(s.leaseExpiresAt !== null && s.leaseExpiresAt > Date.now());
    assert.deepEqual(await mgr.lockStatus({ ifNoneMatch: s.digest }), {
      state: "unchanged",
      digest: s.digest,
    });
  });

  test("with the lock the caller has just read (`current`), a lock costs 2 requests and an unlock 1", async () => {
    const repo = fx.repo();
    const mgr = fx.backend(repo).stateMgr("default");
    await mgr.put(new Uint8Array([1])); // the empty config blob is known from here on
    const free = await mgr.lockStatus();
    assert.equal(free.state, "unlocked");
    if (free.state !== "unlocked") return;
    let lock = await countRequests(fx.proxy, () => mgr.acquireLock(lockInfo("me"), { current: free }));
    assert.deepEqual(lock.calls, ["PUT manifests/locked-default", "GET manifests/locked-default"]);
    const held = lock.result;

    // The read it is given is the one it decides on: a held lock refuses another ID without a request.
    const refused = await countRequests(fx.proxy, () =>
      assert.rejects(mgr.unlock("other", { current: held }), (e: unknown) => {
        assert.ok(e instanceof LockError);
        assert.match(e.message, /^lock ID mismatch: workspace "default" is locked with ID me, not other$/);
        return true;
      }),
    );
    assert.deepEqual(refused.calls, []);
    lock = await countRequests(fx.proxy, () =>
      mgr.acquireLock(lockInfo("other"), { current: held }).catch((e) => e),
    );
    assert.ok((lock.result as unknown) instanceof LockError);
    assert.deepEqual(lock.calls, []);

    const unlock = await countRequests(fx.proxy, () => mgr.unlock("me", { current: held }));
    assert.deepEqual(unlock.calls, [`DELETE manifests/${held.digest}`]);
    assert.deepEqual(await mgr.lockStatus(), { state: "unlocked", digest: null });
    // A read gone stale deletes by its digest, so it can never remove a newer holder's lock.
    const newer = await mgr.acquireLock(lockInfo("newer"));
    await mgr.unlock("me", { current: held });
    assert.equal((await mgr.lockStatus()).state, "locked");
    await mgr.unlock("newer", { current: newer });
  });
});

/** Writes a lock manifest in ghoten's format straight into the registry. */
async function pushGhotenLock(
  repo: string,
  ws: string,
  l: { id: string; info?: string; generation: string },
) {
  const info =
    l.info ??
    JSON.stringify({
      ID: l.id,
      Operation: "OperationTypeApply",
      Info: "",
      Who: "ghoten@ci",
      Version: "1.9.0",
      Created: "2026-11-25T09:00:00.5Z",
      Path: `state-${ws}`,
    });
  const empty = {
    mediaType: "application/vnd.oci.empty.v1+json",
    digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    size: 2,
    data: "e30=",
  };
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: "application/vnd.terraform.lock.v1",
    config: empty,
    layers: [empty],
    annotations: {
      "org.opencontainers.image.created": "2026-11-25T09:00:00Z",
      "org.terraform.lock.generation": l.generation,
      "org.terraform.lock.id": l.id,
      "org.terraform.lock.info": info,
      "org.terraform.workspace": ws,
    },
  };
  await pushManifest(fx.registry.url, repo, `locked-${ws}`, Buffer.from(JSON.stringify(manifest)));
}

describe("races the registry cannot prevent, caught by the read-back (case 4)", () => {
  test("a rival overwriting the lock between our write and our verify makes us fail with the rival as holder", async () => {
    const repo = fx.repo();
    const mgr = fx.backend(repo).stateMgr("default");
    await mgr.put(new Uint8Array([1]));
    fx.proxy.fault({
      method: "PUT",
      path: new RegExp(`/v2/${repo}/manifests/locked-default`),
      times: 1,
      action: {
        kind: "afterUpstream",
        run: () =>
          pushGhotenLock(repo, "default", {
            id: "rival",
            generation: '{"generation":1,"holder_id":"rival"}',
          }),
      },
    });
    await assert.rejects(mgr.lock(lockInfo("me")), (e: unknown) => {
      assert.ok(e instanceof LockError);
      assert.equal(e.holder.id, "rival");
      assert.match(e.message, /lost the race/);
      return true;
    });
  });

  test("a rival at the same generation is told apart by holder_id alone", async () => {
    const repo = fx.repo();
    const mgr = fx.backend(repo).stateMgr("default");
    await mgr.put(new Uint8Array([1]));
    fx.proxy.fault({
      method: "PUT",
      path: new RegExp(`/v2/${repo}/manifests/locked-default`),
      times: 1,
      action: {
        kind: "afterUpstream",
        // Same generation (1) as ours: only holder_id differs (and the ID in the info).
        run: () =>
          pushGhotenLock(repo, "default", { id: "me", generation: '{"generation":1,"holder_id":"rival"}' }),
      },
    });
    await assert.rejects(
      mgr.lock(lockInfo("me")),
      (e: unknown) => e instanceof LockError && /lost the race/.test(e.message),
    );
  });
});
