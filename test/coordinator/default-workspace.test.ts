/**
 * ensureDefaultWorkspace gives a fresh repository `state-default` (an empty state manifest), and
 * never overwrites a state: it runs in the workspace's queue, so a PutState that arrives while it
 * is between its tag check and its write waits for it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startCoordinatorFixture, str, text } from "./fixture.ts";

const fx = await startCoordinatorFixture();

test("a fresh repository gets an empty state-default once; default still has no state", async () => {
  const { coord, repo } = fx.coordinator();
  assert.equal(await coord.ensureDefaultWorkspace(), true);
  const manifest = await fx.rawManifest(repo, "state-default");
  assert.equal(manifest.status, 200, "state-default exists");
  const parsed = JSON.parse(str(manifest.bytes)) as {
    layers: unknown[];
    annotations: Record<string, string>;
  };
  assert.deepEqual(parsed.layers, []);
  assert.equal(parsed.annotations["org.terraform.workspace"], "default");
  assert.equal(await coord.getState("default"), null, "an empty manifest is no state");
  assert.equal(await coord.ensureDefaultWorkspace(), false, "a second call finds it");
});

test("a state written while it checks the tag is kept", async () => {
  const { coord, repo } = fx.coordinator();
  let writing: Promise<unknown> | undefined;
  fx.proxy.fault({
    path: new RegExp(`^/v2/${repo}/manifests/state-default$`),
    times: 1,
    action: {
      kind: "afterUpstream",
      // The registry has answered "no such tag"; a PutState comes in before the answer is read.
      run: async () => {
        writing = coord.putState("default", text('{"serial":1}'));
        await Promise.race([writing, new Promise((resolve) => setTimeout(resolve, 1000))]);
      },
    },
  });
  try {
    await coord.ensureDefaultWorkspace();
    await writing;
  } finally {
    fx.proxy.clearFaults();
  }
  const got = await coord.getState("default");
  assert.equal(got && str(got.data), '{"serial":1}', "the state written meanwhile is the state");
});
