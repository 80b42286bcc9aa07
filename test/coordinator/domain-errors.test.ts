/**
 * One error per domain failure, whichever layer finds it: the coordinator refuses a held lock, an
 * unreadable lock and a wrong unlock ID with the very error the core gives for them, and it is the
 * one place that checks the workspace names of every call.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidArgumentError } from "../../src/errors.ts";
import { LockError } from "../../src/oras/index.ts";
import { EMPTY_CONFIG, pushBlob, pushManifest } from "../harness/seed.ts";
import { lockInfo, startCoordinatorFixture, text } from "./fixture.ts";

const fx = await startCoordinatorFixture();
const HOUR = 60 * 60 * 1000;

/** The LockError `p` rejects with. */
async function lockErrorOf(p: Promise<unknown>): Promise<LockError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof LockError, String(err));
    return err;
  }
  assert.fail("expected a LockError");
}

function fieldsOf(e: LockError) {
  return { message: e.message, holder: e.holder, generation: e.generation, leaseExpiresAt: e.leaseExpiresAt };
}

describe("lock errors: the same from the coordinator as from the core", () => {
  test("a held lock names its holder, generation and lease alike", async () => {
    const repo = fx.repo();
    await fx.backend(repo, { lockTTL: HOUR }).stateMgr("default").lock(lockInfo("holder", "alice@host"));
    const { coord } = fx.coordinator({ repo, backend: { lockTTL: HOUR } });
    const core = fx.backend(repo, { lockTTL: HOUR }).stateMgr("default");

    const fromCore = await lockErrorOf(core.lock(lockInfo("other")));
    const fromCoordinator = await lockErrorOf(coord.lock("default", lockInfo("other")));
    assert.match(fromCore.message, /is locked by alice@host \(lock ID holder, OperationTypeApply\)$/);
    assert.ok(fromCore.leaseExpiresAt !== null && fromCore.leaseExpiresAt > Date.now(), "the lease end");
    assert.deepEqual(fieldsOf(fromCoordinator), fieldsOf(fromCore));
  });

  test("an unlock with another ID is the same lock ID mismatch", async () => {
    const repo = fx.repo();
    const { coord } = fx.coordinator({ repo, backend: { lockTTL: HOUR } });
    await coord.lock("default", lockInfo("holder"));
    const core = fx.backend(repo, { lockTTL: HOUR }).stateMgr("default");
    const fromCore = await lockErrorOf(core.unlock("other"));
    const fromCoordinator = await lockErrorOf(coord.unlock("default", "other"));
    assert.match(
      fromCore.message,
      /^lock ID mismatch: workspace "default" is locked with ID holder, not other$/,
    );
    assert.deepEqual(fieldsOf(fromCoordinator), fieldsOf(fromCore));
  });

  test("a refused delete names the holder as a refused lock does", async () => {
    const repo = fx.repo();
    const { coord } = fx.coordinator({ repo });
    await coord.putState("prod", text("{}"));
    await coord.lock("prod", lockInfo("holder", "alice@host"));
    const refused = await lockErrorOf(coord.deleteWorkspace("prod"));
    assert.equal(
      refused.message,
      'workspace "prod" is locked by alice@host (lock ID holder, OperationTypeApply); ' +
        "unlock it first, or delete with force",
    );
    assert.equal(refused.holder.id, "holder");
  });

  test("an unreadable lock is described alike, naming its tag and the ID that removes it", async () => {
    const repo = fx.repo();
    await pushBlob(fx.registry.url, repo, EMPTY_CONFIG);
    await pushUnreadableLock(repo, "default");
    const { coord } = fx.coordinator({ repo });
    const core = fx.backend(repo).stateMgr("default");
    const fromCore = await lockErrorOf(core.lock(lockInfo("me")));
    const fromCoordinator = await lockErrorOf(coord.lock("default", lockInfo("me")));
    assert.match(
      fromCoordinator.message,
      /^workspace "default" is locked by an unreadable lock at tag locked-default \(.+\); force-unlock with ID sha256:[0-9a-f]{64} removes it$/,
    );
    assert.deepEqual(fieldsOf(fromCoordinator), fieldsOf(fromCore));
    assert.ok(fromCoordinator.message.includes(fromCoordinator.holder.id));
  });
});

describe("workspace names: checked where they enter the coordinator", () => {
  test("every call that takes a name refuses a bad one with the rule it breaks, before any registry request", async () => {
    const { coord } = fx.coordinator();
    const bad = "a\u0007b";
    const rule = /control character U\+0007/;
    const from = fx.proxy.requests.length;
    const calls: [string, () => Promise<unknown>][] = [
      ["getState", () => coord.getState(bad)],
      ["stateHead", () => coord.stateHead(bad)],
      ["openRead", () => coord.openRead(bad)],
      ["putState", () => coord.putState(bad, text("{}"))],
      [
        "putStateStream",
        () =>
          coord.putStateStream(
            bad,
            (async function* () {
              yield text("{}");
            })(),
          ),
      ],
      ["deleteState", () => coord.deleteState(bad)],
      ["restoreVersion", () => coord.restoreVersion(bad, 1)],
      ["listVersions", () => coord.listVersions(bad)],
      ["getVersion", () => coord.getVersion(bad, 1)],
      ["lock", () => coord.lock(bad, lockInfo("x"))],
      ["lock with a wait", () => coord.lock(bad, lockInfo("x"), { waitMs: 1000 })],
      ["unlock", () => coord.unlock(bad, "x")],
      ["getLock", () => coord.getLock(bad)],
      ["describeWorkspaces", () => coord.describeWorkspaces(["default", bad])],
      ["getWorkspace", () => coord.getWorkspace(bad)],
      ["createWorkspace", () => coord.createWorkspace(bad)],
      ["deleteWorkspace", () => coord.deleteWorkspace(bad)],
    ];
    for (const [name, call] of calls) {
      await assert.rejects(
        call(),
        (e: unknown) => e instanceof InvalidArgumentError && rule.test(e.message),
        name,
      );
    }
    assert.throws(() => coord.watchLock(bad), rule, "watchLock");
    assert.deepEqual(fx.proxy.requests.slice(from), [], "no registry request");
  });
});

/** A lock manifest whose LockInfo is not JSON, as a broken tool might leave it. */
async function pushUnreadableLock(repo: string, ws: string): Promise<void> {
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
      "org.terraform.lock.generation": "{}",
      "org.terraform.lock.id": "x",
      "org.terraform.lock.info": "{not json",
      "org.terraform.workspace": ws,
    },
  };
  await pushManifest(fx.registry.url, repo, `locked-${ws}`, Buffer.from(JSON.stringify(manifest)));
}
