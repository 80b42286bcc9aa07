/**
 * StateInsights over the real coordinator and a real registry (through the recording proxy): a
 * summary is computed once per state digest, and a cached one costs a manifest read and no blob
 * read; listings compute missing summaries only for small states; a new write is a new digest.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { StateInsights } from "../../src/summary/state-insights.ts";
import { startCoordinatorFixture, text } from "../coordinator/fixture.ts";
import { countRequests } from "../oras/fixture.ts";

const fx = await startCoordinatorFixture();

const tfState = (serial: number, pad = "") =>
  text(
    JSON.stringify({
      version: 4,
      serial,
      lineage: "lin",
      resources: [{ mode: "managed", type: "t", name: "n", instances: [{ attributes: { pad } }] }],
      outputs: { o: { value: serial, type: "number" } },
    }),
  );

describe("StateInsights", () => {
  test("the same digest is summarized once; a cached summary reads no blob; a new write is summarized anew", async () => {
    const { coord } = fx.coordinator({ backend: { maxVersions: 5 } });
    const insights = new StateInsights(coord);
    await coord.putState("ws", tfState(1));
    const first = await insights.summary("ws", undefined);
    assert.equal(first.summary.serial, 1);
    assert.equal(insights.stats().computed, 1);

    const { result: again, calls } = await countRequests(fx.proxy, () => insights.summary("ws", undefined));
    assert.deepEqual(again.summary, first.summary);
    assert.equal(insights.stats().computed, 1, "not computed again");
    assert.ok(!calls.some((c) => c.startsWith("GET blobs")), calls.join());
    assert.deepEqual([again.size, again.md5], [first.size, first.md5]);

    // The version that is the current state is the same manifest: the same cache entry.
    const [v] = await coord.listVersions("ws");
    assert.ok(v);
    const version = await insights.summary("ws", v.version);
    assert.equal(version.digest, first.digest);
    assert.equal(version.version, v.version);
    assert.equal(insights.stats().computed, 1);

    // Listings use the same entries.
    const [described] = await coord.describeWorkspaces(["ws"]);
    assert.ok(described);
    await insights.summariesOf([described]);
    assert.equal(insights.stats().computed, 1);

    await coord.putState("ws", tfState(2));
    assert.equal((await insights.summary("ws", undefined)).summary.serial, 2);
    assert.equal(insights.stats().computed, 2);
  });

  test("a listing computes missing summaries only for states up to its size limit, and never fails for one", async () => {
    const { coord } = fx.coordinator();
    const insights = new StateInsights(coord, { listComputeMaxStoredBytes: 4096 });
    await coord.putState("small", tfState(1));
    await coord.putState("large", tfState(1, "x".repeat(10_000)));
    await coord.createWorkspace("empty");
    const described = await coord.describeWorkspaces(["empty", "large", "small"]);
    const listed = await insights.summariesOf(described);
    assert.deepEqual(
      listed.map((s) => s?.serial),
      [undefined, undefined, 1],
    );
    assert.equal(insights.stats().computed, 1);
    // Once asked for on its own, the large one is cached and listed.
    await insights.summary("large", undefined);
    const relisted = await insights.summariesOf(described);
    assert.equal(relisted[1]?.resourceCount, 1);
    assert.equal(insights.stats().computed, 2);
  });
});
