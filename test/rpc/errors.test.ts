/**
 * Domain errors reach clients as the documented Connect/gRPC codes, with typed error details the
 * client decodes: LockHeldDetail for a held lock, SizeLimitDetail for a state too large.
 */
import assert from "node:assert/strict";
import { readdir, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { test } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { fetch } from "undici";
import {
  LockHeldDetailSchema,
  SizeLimitDetailSchema,
  SizeLimitKind,
} from "../../src/gen/tfstate/v1/error_details_pb.ts";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import {
  bigState,
  client,
  drain,
  type Protocol,
  rejectsWith,
  startRegistryFixture,
  str,
  text,
} from "./fixture.ts";

const fx = await startRegistryFixture();

const DETAIL_PROTOCOLS: Protocol[] = [
  "connect+json over HTTP/1.1",
  "connect+proto over HTTP/2",
  "grpc over h2c",
  "grpc-web over HTTP/1.1",
];

test("a held lock fails with FAILED_PRECONDITION and the holder as LockHeldDetail, on every protocol", async () => {
  const { url } = await fx.serve();
  const owner = client(StateService, "grpc over h2c", url);
  await owner.lock({
    workspace: "default",
    lock: { id: "holder-1", who: "alice@host", operation: "OperationTypeApply" },
  });
  for (const protocol of DETAIL_PROTOCOLS) {
    const other = client(StateService, protocol, url);
    const err = await rejectsWith(
      other.lock({ workspace: "default", lock: { id: "other" } }),
      Code.FailedPrecondition,
      /alice@host/,
    );
    const details = err.findDetails(LockHeldDetailSchema);
    assert.equal(details.length, 1, protocol);
    assert.equal(details[0]?.holder?.id, "holder-1", protocol);
    assert.equal(details[0]?.holder?.who, "alice@host", protocol);
    assert.equal(details[0]?.holder?.operation, "OperationTypeApply", protocol);
    assert.equal(details[0]?.holder?.path, "state-default", protocol);
    assert.equal(details[0]?.generation, 1n, protocol);

    const unlock = await rejectsWith(
      other.unlock({ workspace: "default", lockId: "other" }),
      Code.FailedPrecondition,
    );
    assert.equal(unlock.findDetails(LockHeldDetailSchema)[0]?.holder?.id, "holder-1");
    const write = await rejectsWith(
      other.putState({ workspace: "default", state: text("{}"), lockId: "wrong" }),
      Code.FailedPrecondition,
    );
    assert.equal(write.findDetails(LockHeldDetailSchema)[0]?.holder?.id, "holder-1");
  }
  // A forced unlock clears it; the old holder's fenced write then fails: its lock is gone.
  const released = await client(StateService, "connect+json over HTTP/1.1", url).unlock({
    workspace: "default",
    force: true,
  });
  assert.equal(released.releasedLock?.id, "holder-1");
  await rejectsWith(
    owner.putState({ workspace: "default", state: text("{}"), lockId: "holder-1" }),
    Code.FailedPrecondition,
  );
});

test("bad arguments fail with INVALID_ARGUMENT naming the problem", async () => {
  const { url } = await fx.serve();
  const c = client(StateService, "connect+json over HTTP/1.1", url);
  await rejectsWith(c.getState({ workspace: "" }), Code.InvalidArgument, /empty/);
  await rejectsWith(c.getState({ workspace: "bad\u0001name" }), Code.InvalidArgument, /control character/);
  await rejectsWith(c.getLock({ workspace: "x".repeat(300) }), Code.InvalidArgument, /255 bytes/);
  await rejectsWith(c.unlock({ workspace: "default" }), Code.InvalidArgument, /lock_id/);
  await rejectsWith(c.getVersion({ workspace: "default", version: 0n }), Code.InvalidArgument, /positive/);
  await rejectsWith(
    c.listVersions({ workspace: "default", pageSize: -1 }),
    Code.InvalidArgument,
    /page_size/,
  );
  await rejectsWith(
    c.listVersions({ workspace: "default", pageToken: "garbage" }),
    Code.InvalidArgument,
    /page_token/,
  );

  await c.putState({ workspace: "default", state: text('{"serial":1}') });
  const wrongMd5 = new Uint8Array(16).fill(7);
  await rejectsWith(
    c.putState({ workspace: "default", state: text('{"serial":2}'), md5: wrongMd5 }),
    Code.InvalidArgument,
    /md5/,
  );
  await rejectsWith(
    c.putState({ workspace: "default", state: text("{}"), md5: new Uint8Array(3) }),
    Code.InvalidArgument,
    /16 bytes/,
  );
  assert.equal(
    str((await c.getState({ workspace: "default" })).state),
    '{"serial":1}',
    "nothing was written",
  );
});

test("missing things fail with NOT_FOUND", async () => {
  const { url } = await fx.serve({ backend: { maxVersions: 3 } });
  const c = client(StateService, "grpc over h2c", url);
  await rejectsWith(c.getState({ workspace: "default" }), Code.NotFound);
  const { error } = await drain(c.downloadState({ workspace: "default" }));
  assert.equal(ConnectError.from(error).code, Code.NotFound);
  await c.putState({ workspace: "default", state: text("{}") });
  await rejectsWith(c.getVersion({ workspace: "default", version: 99n }), Code.NotFound);
  await rejectsWith(c.restoreVersion({ workspace: "default", version: 99n }), Code.NotFound);
});

test("a state over the maximum size fails with RESOURCE_EXHAUSTED and a SizeLimitDetail", async () => {
  const limit = 64 * 1024;
  const { url } = await fx.serve({ backend: { maxStateSize: limit }, server: { maxStateSize: limit } });
  const c = client(StateService, "grpc over h2c", url);
  const err = await rejectsWith(
    c.putState({ workspace: "default", state: bigState(limit + 1, "a") }),
    Code.ResourceExhausted,
  );
  const [detail] = err.findDetails(SizeLimitDetailSchema);
  assert.equal(detail?.limitBytes, BigInt(limit));
  assert.equal(detail?.sizeBytes, BigInt(limit + 1));
  assert.equal(detail?.kind, SizeLimitKind.MAX_STATE_SIZE);

  const tooBig = bigState(limit + 10, "b");
  async function* upload() {
    yield { payload: { case: "header" as const, value: { workspace: "default" } } };
    for (let i = 0; i < tooBig.length; i += 16 * 1024) {
      yield { payload: { case: "chunk" as const, value: tooBig.subarray(i, i + 16 * 1024) } };
    }
  }
  const streamed = await rejectsWith(c.uploadState(upload()), Code.ResourceExhausted);
  const [d2] = streamed.findDetails(SizeLimitDetailSchema);
  assert.equal(d2?.kind, SizeLimitKind.MAX_STATE_SIZE);
  assert.ok((d2?.sizeBytes ?? 0n) > BigInt(limit));

  async function* announced() {
    yield {
      payload: { case: "header" as const, value: { workspace: "default", sizeBytes: BigInt(limit * 2) } },
    };
  }
  const early = await rejectsWith(c.uploadState(announced()), Code.ResourceExhausted);
  assert.equal(early.findDetails(SizeLimitDetailSchema)[0]?.sizeBytes, BigInt(limit * 2));
  await rejectsWith(c.getState({ workspace: "default" }), Code.NotFound);
});

test("a state too large for one message fails GetState with UNARY_MESSAGE; DownloadState still works", async () => {
  const maxMessageBytes = 2 * 1024 * 1024;
  const { url } = await fx.serve({ server: { maxMessageBytes } });
  const big = bigState(Math.floor(maxMessageBytes * 0.9), "unary");
  const grpc = client(StateService, "grpc over h2c", url);
  async function* upload() {
    yield {
      payload: { case: "header" as const, value: { workspace: "default", sizeBytes: BigInt(big.length) } },
    };
    for (let i = 0; i < big.length; i += 512 * 1024) {
      yield { payload: { case: "chunk" as const, value: big.subarray(i, i + 512 * 1024) } };
    }
  }
  await grpc.uploadState(upload());

  // Binary: 90% of the limit fits. JSON carries bytes as base64, so there it does not.
  assert.equal((await grpc.getState({ workspace: "default" })).state.length, big.length);
  const json = client(StateService, "connect+json over HTTP/1.1", url);
  const err = await rejectsWith(
    json.getState({ workspace: "default" }),
    Code.ResourceExhausted,
    /DownloadState/,
  );
  const [detail] = err.findDetails(SizeLimitDetailSchema);
  assert.equal(detail?.kind, SizeLimitKind.UNARY_MESSAGE);
  assert.equal(detail?.sizeBytes, BigInt(big.length));
  assert.ok((detail?.limitBytes ?? 0n) < BigInt(big.length));

  const { messages, error } = await drain(json.downloadState({ workspace: "default" }));
  assert.equal(error, undefined);
  const bytes = Buffer.concat(messages.flatMap((m) => (m.payload.case === "chunk" ? [m.payload.value] : [])));
  assert.equal(bytes.length, big.length);
});

test("corrupt registry content fails with DATA_LOSS", async () => {
  const writer = await fx.serve();
  const state = text('{"version":4,"serial":7,"lineage":"corrupt-me"}');
  await client(StateService, "grpc over h2c", writer.url).putState({ workspace: "default", state });
  const res = await fetch(`${fx.registry.url}/v2/${writer.repository}/manifests/state-default`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  const manifest = (await res.json()) as { layers: { digest: string }[] };
  const digest = manifest.layers[0]?.digest.replace("sha256:", "") ?? "";
  const blobDir = path.join(
    fx.registry.root,
    "data/docker/registry/v2/blobs/sha256",
    digest.slice(0, 2),
    digest,
  );
  assert.deepEqual(await readdir(blobDir), ["data"]);
  // Same length, different bytes: only the digest check can notice.
  await writeFile(path.join(blobDir, "data"), text(str(state).replace("corrupt-me", "corrupt-it")));

  // A second server has no cached copy, so it reads the blob from the registry.
  const reader = await fx.serve({ repository: writer.repository });
  const c = client(StateService, "connect+proto over HTTP/2", reader.url);
  await rejectsWith(c.getState({ workspace: "default" }), Code.DataLoss, /digest/);
  const { error } = await drain(c.downloadState({ workspace: "default" }));
  assert.equal(ConnectError.from(error).code, Code.DataLoss);
});

test("an unreachable registry fails with UNAVAILABLE", async () => {
  const port = await closedPort();
  const { url } = await fx.serve({
    backend: {
      repository: `127.0.0.1:${port}/tfstate/gone`,
      retry: { maxAttempts: 2, initialBackoff: 5, maxBackoff: 10 },
    },
  });
  await rejectsWith(
    client(StateService, "grpc over h2c", url).getState({ workspace: "default" }),
    Code.Unavailable,
    /127\.0\.0\.1/,
  );
});

test("the RPC deadline bounds the work done for it", async () => {
  const { url } = await fx.serve();
  const c = client(StateService, "grpc over h2c", url);
  await c.lock({ workspace: "default", lock: { id: "first" } });
  const started = Date.now();
  await rejectsWith(
    c.lock(
      { workspace: "default", lock: { id: "second" }, wait: durationFromMs(30_000) },
      { timeoutMs: 400 },
    ),
    Code.DeadlineExceeded,
  );
  const took = Date.now() - started;
  assert.ok(took >= 350 && took < 3000, `took ${took} ms`);
  // The abandoned wait left nothing behind: the holder can still unlock and another can lock.
  await c.unlock({ workspace: "default", lockId: "first" });
  assert.equal((await c.lock({ workspace: "default", lock: { id: "third" } })).lock?.id, "third");
});

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}
