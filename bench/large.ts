/**
 * A 256 MiB state through UploadState (client streaming) and back through DownloadState (server
 * streaming), in 1 MiB chunks, against a fresh server process so that its peak resident size
 * (VmHWM, which cannot be reset) reflects this run alone. The client makes the state on the fly
 * from a seed (bench/lib/state-data.ts: 16 distinct MiB, cycled) and never holds it whole: one
 * pass hashes it for the header's MD5, the next sends it; the download is hashed as it arrives.
 * The client is connect-node's default one, so DownloadState chunks come gzip-compressed.
 */
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { UploadStateRequestSchema } from "../src/gen/tfstate/v1/state_service_pb.ts";
import { startRegistry } from "../test/harness/registry.ts";
import { CLIENT_PROTOCOL, stateClient } from "./lib/connect-client.ts";
import { RssSampler, readMemory } from "./lib/proc-memory.ts";
import { type BenchResult, progress, type TargetCheck } from "./lib/report.ts";
import { startServerProcess } from "./lib/server-process.ts";
import { cycledChunks } from "./lib/state-data.ts";
import { mib, ms, round3 } from "./lib/stats.ts";
import { renderTable } from "./lib/table.ts";

const MiB = 1024 * 1024;
const STATE_BYTES = Number(process.env.BENCH_LARGE_BYTES ?? 256 * MiB);
const CHUNK_BYTES = MiB;
const SEED = 20_260_125;
const WORKSPACE = "large";
const TARGET_GROWTH_BYTES = 64 * MiB;
const SETTLE_MS = 1000;

type UploadMessage = MessageInitShape<typeof UploadStateRequestSchema>;

export async function runLarge(): Promise<BenchResult> {
  const cleanups: Array<() => unknown> = [];
  try {
    progress(`large: hashing the ${mib(STATE_BYTES)} state`);
    const md5 = createHash("md5");
    for (const chunk of cycledChunks(STATE_BYTES, SEED, CHUNK_BYTES)) md5.update(chunk);
    const sentMd5 = md5.digest();

    const registry = await startRegistry();
    cleanups.push(() => registry.stop());
    // The default --max-state-size is 256 MiB: the state is exactly at the limit.
    const server = await startServerProcess({ repository: `${registry.host}/bench/large` });
    cleanups.push(() => server.stop());
    const { client, close } = stateClient(server.url);
    cleanups.push(close);
    await sleep(SETTLE_MS);
    const before = await readMemory(server.pid);

    progress("large: UploadState");
    const uploadSampler = new RssSampler(server.pid);
    let started = performance.now();
    const uploaded = await client.uploadState(
      uploadMessages({ workspace: WORKSPACE, sizeBytes: BigInt(STATE_BYTES), md5: sentMd5 }),
    );
    const uploadMs = performance.now() - started;
    const uploadPeak = await uploadSampler.stop();
    const afterUpload = await readMemory(server.pid);
    if (uploaded.metadata?.sizeBytes !== BigInt(STATE_BYTES)) {
      throw new Error(`UploadState stored ${uploaded.metadata?.sizeBytes} bytes, not ${STATE_BYTES}`);
    }

    progress("large: DownloadState");
    const downloadSampler = new RssSampler(server.pid);
    started = performance.now();
    const received = createHash("md5");
    let receivedBytes = 0;
    let checksum: { sizeBytes: bigint; md5: Uint8Array } | undefined;
    for await (const m of client.downloadState({ workspace: WORKSPACE })) {
      if (m.payload.case === "chunk") {
        received.update(m.payload.value);
        receivedBytes += m.payload.value.byteLength;
      } else if (m.payload.case === "checksum") {
        checksum = m.payload.value;
      }
    }
    const downloadMs = performance.now() - started;
    const downloadPeak = await downloadSampler.stop();
    const end = await readMemory(server.pid);
    const receivedMd5 = received.digest();

    const md5Match =
      receivedMd5.equals(sentMd5) && checksum !== undefined && Buffer.from(checksum.md5).equals(sentMd5);
    if (receivedBytes !== STATE_BYTES || !md5Match) {
      throw new Error(
        `DownloadState returned ${receivedBytes} bytes with MD5 ${receivedMd5.toString("hex")}; ` +
          `uploaded ${STATE_BYTES} bytes with MD5 ${sentMd5.toString("hex")}`,
      );
    }
    return report({
      uploadMs,
      downloadMs,
      before: before.rssBytes,
      afterUpload: afterUpload.rssBytes,
      uploadPeak,
      downloadPeak,
      hwm: end.hwmBytes,
      md5: sentMd5.toString("hex"),
    });
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

/** The header, then the state in 1 MiB chunks, made as the transport asks for them. */
async function* uploadMessages(header: {
  workspace: string;
  sizeBytes: bigint;
  md5: Uint8Array;
}): AsyncGenerator<UploadMessage> {
  yield { payload: { case: "header", value: header } } satisfies UploadMessage;
  for (const chunk of cycledChunks(STATE_BYTES, SEED, CHUNK_BYTES)) {
    yield { payload: { case: "chunk", value: chunk } } satisfies UploadMessage;
  }
}

interface Figures {
  uploadMs: number;
  downloadMs: number;
  before: number;
  afterUpload: number;
  uploadPeak: number;
  downloadPeak: number;
  hwm: number;
  md5: string;
}

function report(f: Figures): BenchResult {
  const growth = f.hwm - f.before;
  const rate = (msec: number) => `${(STATE_BYTES / MiB / (msec / 1000)).toFixed(0)} MiB/s`;
  const table = renderTable(
    ["phase", "time", "throughput", "server VmRSS peak (sampled)", "growth over start"],
    [
      [
        "UploadState",
        `${ms(f.uploadMs)} ms`,
        rate(f.uploadMs),
        mib(f.uploadPeak),
        mib(f.uploadPeak - f.before),
      ],
      [
        "DownloadState",
        `${ms(f.downloadMs)} ms`,
        rate(f.downloadMs),
        mib(f.downloadPeak),
        mib(f.downloadPeak - f.before),
      ],
    ],
  );
  const targets: TargetCheck[] = [
    {
      what: `server peak RSS growth over a ${mib(STATE_BYTES)} upload and download (VmHWM after − VmRSS before)`,
      target: `≤ ${mib(TARGET_GROWTH_BYTES)}`,
      actual: mib(growth),
      met: growth <= TARGET_GROWTH_BYTES,
    },
  ];
  const text = [
    `A ${mib(STATE_BYTES)} state up and down in 1 MiB chunks (${CLIENT_PROTOCOL}), fresh server process.`,
    `Server VmRSS before: ${mib(f.before)}; VmHWM at the end: ${mib(f.hwm)} (growth ${mib(growth)}).`,
    `Downloaded MD5 equals the uploaded one: ${f.md5}.`,
    "",
    table,
  ].join("\n");
  return {
    name: "large",
    text,
    targets,
    figures: {
      stateBytes: STATE_BYTES,
      chunkBytes: CHUNK_BYTES,
      uploadMs: round3(f.uploadMs),
      downloadMs: round3(f.downloadMs),
      serverRssBeforeBytes: f.before,
      serverRssAfterUploadBytes: f.afterUpload,
      serverRssPeakUploadBytes: f.uploadPeak,
      serverRssPeakDownloadBytes: f.downloadPeak,
      serverHwmBytes: f.hwm,
      peakGrowthBytes: growth,
      md5: f.md5,
      md5Verified: true,
    },
  };
}

function sleep(msec: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, msec));
}
