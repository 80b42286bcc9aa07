/**
 * A write's body is received and stored as a blob before the write takes its turn on the
 * workspace; only the fencing check and the tag moves run in the turn. So a slow or stalled body
 * holds up nobody else, and a write the lock refuses at commit leaves only an unreferenced blob.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { fetch } from "undici";
import { CanceledError } from "../../src/errors.ts";
import { LockError } from "../../src/oras/index.ts";
import { lockInfo, sleep, startCoordinatorFixture, str, text } from "./fixture.ts";

const fx = await startCoordinatorFixture();

/** Generous for a loaded 2-core machine; a write stalled behind the queue would take STALL_MS. */
const PROMPT_MS = 500;
const STALL_MS = 5000;

/**
 * A body that sends `first`, then stalls until `release()` (or STALL_MS at the latest, so code that
 * waits for it still finishes), then sends `rest`. `stalled` resolves once the reader asked for
 * more after `first`: the write is then blocked in the middle of its body.
 */
function stallingBody(first: Uint8Array, rest: Uint8Array) {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let stalledNow!: () => void;
  const stalled = new Promise<void>((r) => {
    stalledNow = r;
  });
  const safety = setTimeout(release, STALL_MS);
  gate.then(() => clearTimeout(safety));
  async function* body(): AsyncGenerator<Uint8Array> {
    yield first;
    stalledNow();
    await gate;
    yield rest;
  }
  return { stream: body(), stalled, release };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

function settledFlag(p: Promise<unknown>): () => boolean {
  let settled = false;
  p.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  return () => settled;
}

async function blobExists(repo: string, digest: string): Promise<boolean> {
  const res = await fetch(`${fx.registry.url}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
  await res.arrayBuffer();
  return res.status === 200;
}

const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const stateOf = async (coord: { getState(ws: string): Promise<{ data: Uint8Array } | null> }) =>
  str((await coord.getState("default"))?.data ?? new Uint8Array());

describe("a write takes its turn only once its body is stored", () => {
  test("a write whose body stalls does not hold up a Lock, another write or an Unlock on the workspace", async () => {
    const { coord } = fx.coordinator();
    await coord.putState("default", text("before"));
    const body = stallingBody(text('{"serial":'), text("2}"));
    const write = coord.putStateStream("default", body.stream);
    const writeSettled = settledFlag(write);
    try {
      await body.stalled;
      await sleep(50);
      const lock = await timed(() => coord.lock("default", lockInfo("L")));
      const put = await timed(() => coord.putState("default", text("meanwhile"), { lockId: "L" }));
      const unlock = await timed(() => coord.unlock("default", "L"));
      assert.ok(!writeSettled(), "the stalled write is still receiving its body");
      for (const [what, ms] of [
        ["Lock", lock.ms],
        ["write", put.ms],
        ["Unlock", unlock.ms],
      ] as const) {
        assert.ok(ms < PROMPT_MS, `${what} took ${Math.round(ms)} ms behind a stalled write`);
      }
      assert.equal(await stateOf(coord), "meanwhile");
    } finally {
      body.release();
    }
    await write;
    assert.equal(await stateOf(coord), '{"serial":2}', "the stalled write commits once its body is in");
  });

  test("a stalled write whose workspace was locked meanwhile is refused at commit: old state kept, only an unreferenced blob left", async () => {
    const { coord, repo } = fx.coordinator();
    await coord.putState("default", text("old"));
    const stateBefore = await fx.rawManifest(repo, "state-default");
    const full = text('{"serial":7,"lineage":"refused"}');
    const body = stallingBody(full.subarray(0, 10), full.subarray(10));
    const write = coord.putStateStream("default", body.stream);
    write.catch(() => {});
    await body.stalled;
    const locking = coord.lock("default", lockInfo("other", "bob@host"));
    // Code that reads the body inside the turn keeps the Lock waiting here until the stall ends.
    await Promise.race([locking, sleep(2000)]);
    body.release();
    await locking;

    await assert.rejects(write, (e: unknown) => {
      assert.ok(e instanceof LockError, `expected a LockError, got ${String(e)}`);
      assert.equal(e.holder.id, "other");
      assert.equal(e.holder.who, "bob@host");
      return true;
    });
    const stateAfter = await fx.rawManifest(repo, "state-default");
    assert.equal(stateAfter.digest, stateBefore.digest, "the state tag did not move");
    assert.deepEqual(await fx.rawTags(repo), ["locked-default", "state-default"]);
    assert.ok(await blobExists(repo, sha256(full)), "the refused body was stored as a blob");
    assert.ok(!stateAfter.bytes.toString().includes(sha256(full)), "and nothing references it");
    assert.equal(await stateOf(coord), "old");
  });

  test("a caller that cancels while its body stalls gets CanceledError at once; the old state stays", async () => {
    const { coord } = fx.coordinator();
    await coord.putState("default", text("old"));
    const body = stallingBody(text("part"), text("never"));
    const ac = new AbortController();
    const write = coord.putStateStream("default", body.stream, { signal: ac.signal });
    write.catch(() => {});
    try {
      await body.stalled;
      const started = performance.now();
      ac.abort();
      await assert.rejects(write, CanceledError);
      const ms = performance.now() - started;
      assert.ok(ms < PROMPT_MS, `the canceled write took ${Math.round(ms)} ms to stop`);
    } finally {
      body.release();
    }
    await sleep(100);
    assert.equal(await stateOf(coord), "old");
    const lock = await timed(() => coord.lock("default", lockInfo("next")));
    assert.ok(lock.ms < PROMPT_MS, `Lock took ${Math.round(lock.ms)} ms after the canceled write`);
  });

  test("concurrent writes commit in the order their bodies are ready, with distinct consecutive versions; the last commit wins", async () => {
    const { coord } = fx.coordinator({ backend: { maxVersions: 20 } });
    assert.equal((await coord.putState("default", text("v1"))).version, 1);

    const body = stallingBody(text("slow "), text("body"));
    const slow = coord.putStateStream("default", body.stream);
    slow.catch(() => {});
    let fast: { ms: number; version: number | undefined };
    try {
      await body.stalled;
      const { ms, value } = await timed(() => coord.putState("default", text("fast")));
      fast = { ms, version: value.version };
    } finally {
      body.release();
    }
    assert.ok(fast.ms < PROMPT_MS, `the second write waited ${Math.round(fast.ms)} ms for the stalled one`);
    assert.equal(fast.version, 2, "the write whose body was ready first committed first");
    assert.equal((await slow).version, 3);
    assert.equal(await stateOf(coord), "slow body", "the last commit is the current state");

    const many = await Promise.all(
      Array.from({ length: 6 }, (_, i) => coord.putState("default", text(`concurrent ${i}`))),
    );
    const versions = many.map((r) => r.version ?? 0).sort((a, b) => a - b);
    assert.deepEqual(versions, [4, 5, 6, 7, 8, 9]);
    const last = many.findIndex((r) => r.version === 9);
    assert.equal(await stateOf(coord), `concurrent ${last}`, "the write with the highest version won");
    const listed = (await coord.listVersions("default")).map((v) => v.version);
    assert.deepEqual(listed, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const [i, r] of many.entries()) {
      const v = await coord.getVersion("default", r.version ?? 0);
      assert.equal(str(v.data), `concurrent ${i}`, `version ${r.version} holds its own write`);
    }
  });

  test("a restore writes the version again without uploading its blob", async () => {
    const { coord, repo } = fx.coordinator({ backend: { maxVersions: 5, compression: "gzip" } });
    await coord.putState("default", text('{"serial":1}'));
    await coord.putState("default", text('{"serial":2}'));
    const from = fx.proxy.requests.length;
    const restored = await coord.restoreVersion("default", 1);
    const calls = fx.requestsFor(repo, from);
    assert.deepEqual(
      calls.filter((c) => c.path.startsWith("blobs/uploads")),
      [],
      `no blob upload: ${JSON.stringify(calls)}`,
    );
    assert.equal(restored.version, 3);
    assert.equal(restored.size, '{"serial":1}'.length);
    const v1 = await coord.getVersion("default", 1);
    assert.deepEqual(restored.md5, v1.md5);
    assert.equal(restored.storedSize, v1.storedSize, "the same gzip layer");
    assert.equal(await stateOf(coord), '{"serial":1}');
  });
});
