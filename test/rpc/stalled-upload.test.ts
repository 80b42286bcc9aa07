/**
 * An UploadState whose client stops sending holds up nothing on its workspace: the body is received
 * and stored as a blob before the write takes its turn, so Lock, PutState and the http backend's
 * LOCK go ahead at once; the upload is fenced when it finally commits. Real Connect clients and raw
 * HTTP against one server (the Connect API and the http backend on one port) on a real registry.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import { after, describe, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { fetch } from "undici";
import { LockHeldDetailSchema } from "../../src/gen/tfstate/v1/error_details_pb.ts";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { workspaceTag } from "../../src/oras/index.ts";
import { startTfhttpFixture } from "../tfhttp/fixture.ts";
import { closeClients, md5Base64, newLockInfo, TofuHttpClient } from "../tfhttp/tofu-client.ts";
import { client, rejectsWith, str, text } from "./fixture.ts";

const fx = await startTfhttpFixture();
after(closeClients);

const MiB = 1024 * 1024;
/** Generous for a loaded 2-core machine; an operation stuck behind the upload would take STALL_MS. */
const PROMPT_MS = 500;
const STALL_MS = 6000;

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest();
const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Upload = {
  payload: { case: "header"; value: Record<string, unknown> } | { case: "chunk"; value: Uint8Array };
};

/**
 * An UploadState request stream: the header and `first`, then nothing (the stream stays open) until
 * `release()` or STALL_MS, then `rest`. `stalled` resolves once the client has sent `first` and
 * asks for more.
 */
function stallingUpload(header: Record<string, unknown>, first: Uint8Array, rest: Uint8Array) {
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
  async function* messages(): AsyncGenerator<Upload> {
    yield { payload: { case: "header", value: header } };
    yield { payload: { case: "chunk", value: first } };
    stalledNow();
    await gate;
    if (rest.length > 0) yield { payload: { case: "chunk", value: rest } };
  }
  return { messages: messages(), stalled, release };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

function assertPrompt(timings: Record<string, number>): void {
  for (const [what, ms] of Object.entries(timings)) {
    assert.ok(ms < PROMPT_MS, `${what} took ${Math.round(ms)} ms while an upload was stalled`);
  }
}

const stateTag = (ws: string) => `state-${workspaceTag(ws)}`;

async function blobExists(digest: string): Promise<boolean> {
  const res = await fetch(`${fx.core.registry.url}/v2/${fx.repository}/blobs/${digest}`, { method: "HEAD" });
  await res.arrayBuffer();
  return res.status === 200;
}

describe("a stalled upload holds up nothing on its workspace", () => {
  test("Lock, PutState, Unlock and the http backend's LOCK go ahead while an UploadState stalls; the upload is refused at commit with the holder", async () => {
    const ws = fx.workspaceName("stalled");
    const c = client(StateService, "grpc over h2c", fx.url);
    await c.putState({ workspace: ws, state: text('{"serial":1}') });

    const full = text(`{"serial":2,"lineage":"stalled","pad":"${"x".repeat(100_000)}"}`);
    const upload = stallingUpload(
      { workspace: ws, sizeBytes: BigInt(full.length), md5: md5(full) },
      full.subarray(0, 40_000),
      full.subarray(40_000),
    );
    const uploading = c.uploadState(upload.messages);
    uploading.catch(() => {});
    let meanwhileDigest: string;
    try {
      await upload.stalled;
      await sleep(300); // the server has the header and the first chunk, and waits for more
      const lock = await timed(() => c.lock({ workspace: ws, lock: { id: "L1", who: "alice@rpc" } }));
      const put = await timed(() => c.putState({ workspace: ws, state: text('{"serial":3}'), lockId: "L1" }));
      meanwhileDigest = put.value.metadata?.digest ?? "";
      const unlock = await timed(() => c.unlock({ workspace: ws, lockId: "L1" }));
      const tofu = new TofuHttpClient({ address: `${fx.url}/terraform/state/${ws}` });
      const info = newLockInfo("OperationTypeApply", "carol@http");
      const httpLock = await timed(() => tofu.lock(info));
      assert.equal(httpLock.value.status, 200, httpLock.value.text);
      assertPrompt({ Lock: lock.ms, PutState: put.ms, Unlock: unlock.ms, "http LOCK": httpLock.ms });
    } finally {
      upload.release();
    }

    const err = await rejectsWith(uploading, Code.FailedPrecondition);
    assert.equal(err.findDetails(LockHeldDetailSchema)[0]?.holder?.who, "carol@http");
    const now = await c.getState({ workspace: ws });
    assert.equal(str(now.state), '{"serial":3}', "the state written meanwhile is current");
    assert.equal(now.metadata?.digest, meanwhileDigest, "the state tag did not move");
    const tag = await fx.core.rawManifest(fx.repository, stateTag(ws));
    assert.equal(tag.digest, meanwhileDigest);
    assert.ok(await blobExists(sha256(full)), "the refused body was stored as a blob");
    assert.ok(!tag.bytes.toString().includes(sha256(full)), "that nothing references");
  });

  test("an UploadState that fails its checks or loses its client leaves the state tag where it was", async () => {
    const ws = fx.workspaceName("bad-upload");
    const c = client(StateService, "grpc over h2c", fx.url);
    const old = await c.putState({ workspace: ws, state: text('{"serial":1}') });
    const digestBefore = old.metadata?.digest;
    const unchanged = async (what: string) => {
      const tag = await fx.core.rawManifest(fx.repository, stateTag(ws));
      assert.equal(tag.digest, digestBefore, `${what}: the state tag did not move`);
      assert.equal(str((await c.getState({ workspace: ws })).state), '{"serial":1}', what);
    };

    const data = text(`{"serial":2,"pad":"${"y".repeat(50_000)}"}`);
    const wrongMd5 = stallingUpload(
      { workspace: ws, md5: md5(text("something else")) },
      data.subarray(0, 1000),
      data.subarray(1000),
    );
    wrongMd5.release();
    await rejectsWith(c.uploadState(wrongMd5.messages), Code.InvalidArgument);
    await unchanged("MD5 mismatch");

    // The fixture's server takes states up to 1 MiB.
    const tooBig = stallingUpload({ workspace: ws }, new Uint8Array(MiB).fill(0x20), text(" {}"));
    tooBig.release();
    await rejectsWith(c.uploadState(tooBig.messages), Code.ResourceExhausted);
    await unchanged("over the size limit");

    // No size or MD5 announced: only the client's going away tells the server the body is cut short.
    const ac = new AbortController();
    const gone = stallingUpload({ workspace: ws }, data.subarray(0, 1000), data.subarray(1000));
    const uploading = c.uploadState(gone.messages, { signal: ac.signal });
    uploading.catch(() => {});
    await gone.stalled;
    await sleep(200);
    ac.abort();
    await rejectsWith(uploading, Code.Canceled);
    gone.release();
    await sleep(500); // what the server does once it notices, it has done by now
    await unchanged("client gone mid-stream");

    const lock = await timed(() => c.lock({ workspace: ws, lock: { id: "after" } }));
    assertPrompt({ "Lock after the failed uploads": lock.ms });
  });

  test("an http backend POST whose body stalls holds up no Lock or PutState on the workspace", async () => {
    const ws = fx.workspaceName("stalled-http");
    const c = client(StateService, "grpc over h2c", fx.url);
    await c.putState({ workspace: ws, state: text('{"serial":1}') });
    const body = `{"version":4,"serial":2,"pad":"${"z".repeat(20_000)}"}`;
    const { port } = new URL(fx.url);
    const req = http.request({
      host: "127.0.0.1",
      port: Number(port),
      method: "POST",
      path: `/terraform/state/${ws}`,
      headers: {
        "content-type": "application/json",
        "content-length": String(body.length),
        "content-md5": md5Base64(body),
      },
    });
    req.on("error", () => {});
    req.write(body.slice(0, 1000));
    try {
      await sleep(300);
      const lock = await timed(() => c.lock({ workspace: ws, lock: { id: "L" } }));
      const put = await timed(() => c.putState({ workspace: ws, state: text('{"serial":3}'), lockId: "L" }));
      assertPrompt({ Lock: lock.ms, PutState: put.ms });
    } finally {
      req.destroy();
    }
    assert.equal(str((await c.getState({ workspace: ws })).state), '{"serial":3}');
  });
});
