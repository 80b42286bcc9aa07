import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AlreadyExistsError, NotFoundError, UnavailableError } from "../../src/errors.ts";
import { lockInfo, nextEvent, startCoordinatorFixture, text } from "./fixture.ts";

const fx = await startCoordinatorFixture();

describe("workspaces through the coordinator", () => {
  test("listWorkspaces reports state, size, version and lock holder of each workspace", async () => {
    const { coord } = fx.coordinator({ backend: { maxVersions: 5 } });
    await coord.createWorkspace("empty");
    await coord.putState("full", text("first"));
    await coord.putState("full", text("second!"));
    await coord.lock("full", lockInfo("holder-f", "alice@host"));

    const list = await coord.listWorkspaces();
    assert.deepEqual(
      list.map((w) => [w.name, w.exists, w.hasState, w.storedSize, w.version, w.lock?.id ?? null]),
      [
        ["default", true, false, 0, undefined, null],
        ["empty", true, false, 0, undefined, null],
        ["full", true, true, 7, 2, "holder-f"],
      ],
    );
    const full = list.find((w) => w.name === "full");
    assert.equal(full?.lock?.who, "alice@host");
    assert.match(full?.digest ?? "", /^sha256:[0-9a-f]{64}$/);
    assert.ok(full?.updatedAt);

    assert.deepEqual(await coord.listWorkspaceNames(), ["default", "empty", "full"]);
    const described = await coord.describeWorkspaces(["full", "empty"]);
    assert.deepEqual(
      described.map((w) => w.name),
      ["full", "empty"],
    );
  });

  test("getWorkspace: NotFoundError for a missing workspace; createWorkspace: AlreadyExistsError for an existing one", async () => {
    const { coord } = fx.coordinator();
    await assert.rejects(coord.getWorkspace("nope"), NotFoundError);
    const created = await coord.createWorkspace("fresh");
    assert.equal(created.name, "fresh");
    assert.equal(created.exists, true);
    assert.equal(created.hasState, false);
    assert.equal(created.lock, undefined);
    await assert.rejects(coord.createWorkspace("fresh"), AlreadyExistsError);
    assert.equal((await coord.getWorkspace("fresh")).name, "fresh");
    assert.equal((await coord.getWorkspace("default")).exists, true);
  });

  test("while an all-workspace watch runs, listings take lock holders from it instead of reading each lock", async () => {
    const { coord, repo } = fx.coordinator();
    await coord.putState("one", text("1"));
    await coord.putState("two", text("2"));
    await coord.lock("two", lockInfo("holder-2"));
    const ac = new AbortController();
    const it = coord.watchLock(undefined, ac.signal)[Symbol.asyncIterator]();
    await nextEvent(it);
    await nextEvent(it);
    const from = fx.proxy.requests.length;
    const list = await coord.listWorkspaces();
    assert.deepEqual(
      list.map((w) => [w.name, w.lock?.id ?? null]),
      [
        ["default", null],
        ["one", null],
        ["two", "holder-2"],
      ],
    );
    const lockReads = fx
      .requestsFor(repo, from)
      .filter((r) => r.path.startsWith("manifests/locked-") && !r.path.endsWith("locked-two"));
    assert.deepEqual(lockReads, [], "no lock reads for the listing");
    ac.abort();
  });

  test("ready() pings the registry and fails with UnavailableError when it is down", async () => {
    const { coord } = fx.coordinator();
    await coord.ready();
    fx.proxy.fault({ method: "GET", path: /^\/v2\/$/, action: { kind: "status", status: 503, body: "" } });
    try {
      await assert.rejects(coord.ready(), UnavailableError);
    } finally {
      fx.proxy.clearFaults();
    }
  });
});
