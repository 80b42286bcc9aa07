/**
 * A state whose layer blob is gone from the registry (a registry cleanup job, a bad copy) is lost
 * data on every surface, never "no state": OpenTofu takes a 404 from the http backend as an empty
 * state and would plan to recreate everything, then overwrite the real state.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { fetch } from "undici";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { noopLogger } from "../../src/log.ts";
import { createTerraformHttpRoute } from "../../src/tfhttp/index.ts";
import { client, drain, PROTOCOLS, rejectsWith, startRegistryFixture, text } from "../rpc/fixture.ts";

const fx = await startRegistryFixture();

/** A server with an empty cache on `repository`, with the http backend mounted. */
function freshServer(repository: string, maxVersions = 0) {
  return fx.serve({
    repository,
    backend: { maxVersions },
    routes: (coordinator) => [
      createTerraformHttpRoute({ coordinator, logger: noopLogger, maxStateSize: 1024 * 1024 }),
    ],
  });
}

async function layerOf(repository: string, tag: string): Promise<string> {
  const res = await fetch(`${fx.registry.url}/v2/${repository}/manifests/${tag}`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  const m = (await res.json()) as { layers: { digest: string }[] };
  return m.layers[0]?.digest as string;
}

async function deleteBlob(repository: string, digest: string): Promise<void> {
  const res = await fetch(`${fx.registry.url}/v2/${repository}/blobs/${digest}`, { method: "DELETE" });
  await res.arrayBuffer();
  assert.equal(res.status, 202);
}

test("a state whose layer blob is gone is DATA_LOSS over every protocol and a 500 over http, naming tag and digest", async () => {
  const repository = `tfstate/lost-${Date.now()}`;
  const writer = await fx.serve({ repository, backend: { maxVersions: 2 } });
  await client(StateService, "grpc over h2c", writer.url).putState({
    workspace: "prod",
    state: text('{"serial":1,"resources":[{"type":"x"}]}'),
  });
  const digest = await layerOf(repository, "state-prod");
  await deleteBlob(repository, digest);
  const served = await freshServer(repository, 2);

  for (const protocol of PROTOCOLS) {
    const c = client(StateService, protocol, served.url);
    const message = (await rejectsWith(c.getState({ workspace: "prod" }), Code.DataLoss)).rawMessage;
    assert.match(message, /state at tag state-prod/, protocol);
    assert.ok(message.includes(digest), `${protocol}: ${message}`);
    const { error } = await drain(c.downloadState({ workspace: "prod" }));
    assert.equal(Code[ConnectError.from(error).code], "DataLoss", protocol);
    await rejectsWith(c.getVersion({ workspace: "prod", version: 1n }), Code.DataLoss);
  }

  const res = await fetch(`${served.url}/terraform/state/prod`);
  const body = await res.text();
  assert.ok(res.status >= 500, `status ${res.status}: ${body}`);
  assert.match(body, /state-prod/);
  assert.ok(body.includes(digest), body);
  assert.notEqual(res.status, 404);
});

test("only a missing state tag is 'no state': the same server still answers 404 for a workspace never written", async () => {
  const repository = `tfstate/none-${Date.now()}`;
  const served = await freshServer(repository);
  const res = await fetch(`${served.url}/terraform/state/never`);
  await res.arrayBuffer();
  assert.equal(res.status, 404);
  try {
    await client(StateService, "grpc over h2c", served.url).getState({ workspace: "never" });
    assert.fail("expected NOT_FOUND");
  } catch (err) {
    assert.equal(Code[ConnectError.from(err).code], "NotFound");
  }
});
