/**
 * DownloadState and UploadState move multi-MiB states in 1 MiB messages, check what they move, and
 * never leave a partial state behind.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import { LockHeldDetailSchema } from "../../src/gen/tfstate/v1/error_details_pb.ts";
import { type DownloadStateResponse, StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
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
const MiB = 1024 * 1024;
const md5 = (b: Uint8Array) => createHash("md5").update(b).digest();

type Upload = {
  payload: { case: "header"; value: Record<string, unknown> } | { case: "chunk"; value: Uint8Array };
};

async function* uploadOf(
  workspace: string,
  data: Uint8Array,
  header: Record<string, unknown> = {},
): AsyncGenerator<Upload> {
  yield {
    payload: {
      case: "header",
      value: { workspace, sizeBytes: BigInt(data.length), md5: md5(data), ...header },
    },
  };
  for (let i = 0; i < data.length; i += MiB)
    yield { payload: { case: "chunk", value: data.subarray(i, i + MiB) } };
}

function split(messages: DownloadStateResponse[]) {
  const kinds = messages.map((m) => m.payload.case);
  const chunks = messages.flatMap((m) => (m.payload.case === "chunk" ? [m.payload.value] : []));
  const first = messages[0]?.payload;
  const last = messages.at(-1)?.payload;
  return {
    kinds,
    chunks,
    metadata: first?.case === "metadata" ? first.value : undefined,
    checksum: last?.case === "checksum" ? last.value : undefined,
  };
}

test("a 6 MiB state goes up with UploadState and comes back with DownloadState on every protocol", async () => {
  const { url } = await fx.serve();
  const big = bigState(6 * MiB + 12345, "six");
  const put = await client(StateService, "grpc over h2c", url).uploadState(uploadOf("default", big));
  assert.equal(put.metadata?.sizeBytes, BigInt(big.length));
  assert.deepEqual(Buffer.from(put.metadata?.md5 ?? []), md5(big));

  const protocols: Protocol[] = [
    "grpc over h2c",
    "connect+json over HTTP/1.1",
    "grpc-web over HTTP/1.1",
    "connect+proto over HTTP/2",
  ];
  for (const protocol of protocols) {
    const { messages, error } = await drain(
      client(StateService, protocol, url).downloadState({ workspace: "default" }),
    );
    assert.equal(error, undefined, protocol);
    const { kinds, chunks, metadata, checksum } = split(messages);
    assert.equal(kinds[0], "metadata");
    assert.equal(kinds.at(-1), "checksum");
    assert.ok(chunks.length >= 7, `${protocol}: ${chunks.length} chunks`);
    for (const c of chunks) assert.ok(c.length <= MiB, `${protocol}: a chunk of ${c.length} bytes`);
    assert.equal(metadata?.digest, put.metadata?.digest);
    assert.equal(metadata?.sizeBytes, BigInt(big.length), "known up front when stored uncompressed");
    const got = Buffer.concat(chunks);
    assert.ok(got.equals(big), `${protocol}: the bytes differ`);
    assert.equal(checksum?.sizeBytes, BigInt(big.length));
    assert.deepEqual(Buffer.from(checksum?.md5 ?? []), md5(big));
  }
});

test("a gzip-stored state streams decompressed, its size known only from the final checksum", async () => {
  const { url } = await fx.serve({ backend: { compression: "gzip", maxVersions: 2 } });
  const c = client(StateService, "grpc over h2c", url);
  const data = text(
    JSON.stringify({ version: 4, resources: Array.from({ length: 20000 }, (_, i) => ({ i })) }),
  );
  await c.uploadState(uploadOf("default", data));
  const { messages } = await drain(c.downloadState({ workspace: "default" }));
  const { chunks, metadata, checksum } = split(messages);
  assert.equal(metadata?.sizeBytes, 0n);
  assert.ok(
    (metadata?.storedSizeBytes ?? 0n) > 0n && (metadata?.storedSizeBytes ?? 0n) < BigInt(data.length),
  );
  assert.ok(Buffer.concat(chunks).equals(data));
  assert.equal(checksum?.sizeBytes, BigInt(data.length));

  await c.putState({ workspace: "default", state: text('{"serial":2}') });
  const v1 = split((await drain(c.downloadState({ workspace: "default", version: 1n }))).messages);
  assert.ok(Buffer.concat(v1.chunks).equals(data), "DownloadState reads a version of the history too");
  assert.equal(v1.metadata?.version, 1n);
});

test("UploadState refuses malformed streams and keeps the old state", async () => {
  const { url } = await fx.serve();
  const c = client(StateService, "grpc over h2c", url);
  const old = text('{"serial":1}');
  await c.putState({ workspace: "default", state: old });
  const data = bigState(3 * MiB, "bad-uploads");

  async function* chunkFirst(): AsyncGenerator<Upload> {
    yield { payload: { case: "chunk", value: data.subarray(0, 10) } };
  }
  await rejectsWith(
    c.uploadState(chunkFirst()),
    Code.InvalidArgument,
    /first UploadState message must be a header/,
  );

  async function* twoHeaders(): AsyncGenerator<Upload> {
    yield { payload: { case: "header", value: { workspace: "default" } } };
    yield { payload: { case: "chunk", value: data.subarray(0, 10) } };
    yield { payload: { case: "header", value: { workspace: "default" } } };
  }
  await rejectsWith(c.uploadState(twoHeaders()), Code.InvalidArgument, /second header/);

  const truncated = uploadOf("default", data, { sizeBytes: BigInt(data.length + 1), md5: new Uint8Array() });
  await rejectsWith(c.uploadState(truncated), Code.InvalidArgument, /header announced/);

  const wrongSum = uploadOf("default", data, { md5: md5(text("something else")) });
  await rejectsWith(c.uploadState(wrongSum), Code.InvalidArgument, /MD5/);

  assert.equal(str((await c.getState({ workspace: "default" })).state), str(old), "the old state is intact");
});

test("UploadState is fenced by the lock like PutState, and a refused upload does not hold up shutdown", async () => {
  const served = await fx.serve({ server: { shutdownGraceMs: 10_000 } });
  const { url } = served;
  const c = client(StateService, "grpc over h2c", url);
  await c.lock({ workspace: "default", lock: { id: "L1", who: "carol@host" } });
  const data = bigState(2 * MiB, "fenced");
  const err = await rejectsWith(c.uploadState(uploadOf("default", data)), Code.FailedPrecondition, /locked/);
  assert.equal(err.findDetails(LockHeldDetailSchema)[0]?.holder?.who, "carol@host");
  const ok = await c.uploadState(uploadOf("default", data, { lockId: "L1" }));
  assert.equal(ok.metadata?.sizeBytes, BigInt(data.length));

  // The refused upload's client stopped sending without ending its stream; the server resets it.
  await assert.rejects(c.uploadState(uploadOf("default", data)), /locked/);
  const started = Date.now();
  await served.stop();
  assert.ok(Date.now() - started < 2000, `shutdown took ${Date.now() - started} ms`);
});
