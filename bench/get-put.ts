/**
 * GetState and PutState through the service, next to the registry requests a client talking to
 * the registry directly needs for the same thing, measured in one run with the sides taking turns
 * (in rotating order), so drift in the machine hits them alike.
 *
 * - GetState: the service already has the state (it wrote it), so it asks the registry whether
 *   the manifest changed (one conditional GET, 304) and answers from its cache (96 MiB by
 *   default, a state may take up to half). A direct client reads the manifest and the blob (2
 *   requests) and checks the blob's digest. The service client speaks HTTP/1.1 like the direct
 *   one (registries serve plain HTTP/1.1), asking for uncompressed responses like for like (the
 *   registry does not compress either); these rows are the target's. Measured again with
 *   connect-node's default client, which offers gzip, so the server compresses the response (once
 *   per state: the time is the transfer and the client's inflate), and over HTTP/2 (h2c), both
 *   for comparison.
 * - DownloadState: the same read as a stream of 1 MiB chunks (the RPC meant for large states),
 *   read chunk by chunk by the client; shown for comparison, not a target.
 * - GetState (unchanged): the client sends the digest it holds (`if_none_match`) and gets a
 *   not-modified answer; directly, that is one conditional manifest GET answered 304.
 * - PutState: the service reads the lock tag (fencing), uploads the blob and puts the manifest. A
 *   direct client that respects locks does the same: lock GET (404), blob POST + PUT, manifest PUT.
 *
 * The state is Terraform-shaped JSON (it compresses about 6×), new content on every write.
 */
import { startRegistry } from "../test/harness/registry.ts";
import { BareRegistry } from "./lib/bare-registry.ts";
import { CLIENT_PROTOCOL_HTTP1, type StateClient, stateClient } from "./lib/connect-client.ts";
import { type BenchResult, progress, type TargetCheck } from "./lib/report.ts";
import { startServerProcess } from "./lib/server-process.ts";
import { setSerial, stateBytes } from "./lib/state-data.ts";
import { ms, round3, type Summary } from "./lib/stats.ts";
import { renderTable } from "./lib/table.ts";
import { takeTurns } from "./lib/take-turns.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const WORKSPACE = "bench";
const GET_TARGET_RATIO = 1.2;

interface SizeCase {
  label: string;
  bytes: number;
  /** Timed rounds; in each, every side does the operation once. */
  iterations: number;
  warmup: number;
}

const CASES: readonly SizeCase[] = [
  { label: "1 KiB", bytes: KiB, iterations: 300, warmup: 20 },
  { label: "1 MiB", bytes: MiB, iterations: 100, warmup: 5 },
  { label: "32 MiB", bytes: 32 * MiB, iterations: 30, warmup: 2 },
];

interface Row {
  size: string;
  operation: string;
  /** Whether the GetState target applies to this row. */
  targeted: boolean;
  directRequests: string;
  service: Summary;
  direct: Summary;
}

interface Clients {
  /** HTTP/1.1, uncompressed responses. */
  plain: StateClient;
  /** HTTP/1.1, connect-node's default compression offer. */
  gzip: StateClient;
  /** HTTP/2 (h2c), uncompressed responses. */
  h2: StateClient;
  direct: BareRegistry;
}

export async function runGetPut(): Promise<BenchResult> {
  const registry = await startRegistry();
  const cleanups: Array<() => unknown> = [() => registry.stop()];
  try {
    const server = await startServerProcess({
      repository: `${registry.host}/bench/service`,
      // Room for a 32 MiB state in one message (the default is 4 MiB).
      args: ["--max-message-size", "40MiB"],
    });
    cleanups.push(() => server.stop());
    const clients: Clients = {
      plain: stateClient(server.url, { httpVersion: "1.1", responseCompression: "none" }),
      gzip: stateClient(server.url, { httpVersion: "1.1" }),
      h2: stateClient(server.url, { responseCompression: "none" }),
      direct: new BareRegistry(registry.url, "bench/bare"),
    };
    cleanups.push(
      () => clients.plain.close(),
      () => clients.gzip.close(),
      () => clients.h2.close(),
      () => clients.direct.close(),
    );
    await clients.direct.ensureEmptyBlob();

    const rows: Row[] = [];
    for (const c of CASES) {
      progress(`get-put: ${c.label}, ${c.iterations} rounds per operation`);
      rows.push(...(await measureSize(c, clients)));
    }
    return report(rows);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

async function measureSize(c: SizeCase, clients: Clients): Promise<Row[]> {
  const { plain, gzip, h2, direct } = clients;
  const state = stateBytes(c.bytes, c.bytes);
  let serial = 0;
  const nextState = () => {
    setSerial(state, ++serial);
    return state;
  };
  const expectSize = (n: number, who: string) => {
    if (n !== c.bytes) throw new Error(`${who} returned ${n} bytes, not ${c.bytes}`);
  };

  const put = await takeTurns(c, {
    service: async () => {
      await plain.client.putState({ workspace: WORKSPACE, state: nextState() });
    },
    direct: async () => {
      await direct.writeState(WORKSPACE, nextState());
    },
  });

  const get = await takeTurns(c, {
    service: async () => {
      expectSize((await plain.client.getState({ workspace: WORKSPACE })).state.byteLength, "GetState");
    },
    gzip: async () => {
      expectSize((await gzip.client.getState({ workspace: WORKSPACE })).state.byteLength, "GetState");
    },
    h2: async () => {
      expectSize((await h2.client.getState({ workspace: WORKSPACE })).state.byteLength, "GetState");
    },
    direct: async () => {
      expectSize((await direct.readState(`state-${WORKSPACE}`)).byteLength, "the direct read");
    },
  });

  const download = await takeTurns(c, {
    service: async () => {
      let received = 0;
      for await (const m of plain.client.downloadState({ workspace: WORKSPACE })) {
        if (m.payload.case === "chunk") received += m.payload.value.byteLength;
      }
      expectSize(received, "DownloadState");
    },
    direct: async () => {
      expectSize((await direct.readState(`state-${WORKSPACE}`)).byteLength, "the direct read");
    },
  });

  const digest = (await plain.client.getState({ workspace: WORKSPACE })).metadata?.digest ?? "";
  const directDigest = (await direct.getManifest(`state-${WORKSPACE}`)).digest;
  const unchanged = await takeTurns(c, {
    service: async () => {
      const res = await plain.client.getState({ workspace: WORKSPACE, ifNoneMatch: digest });
      if (!res.notModified) throw new Error("GetState with the current digest was not answered not-modified");
    },
    direct: async () => {
      const status = await direct.manifestStatus(`state-${WORKSPACE}`, directDigest);
      if (status !== 304) throw new Error(`the conditional manifest GET was answered ${status}`);
    },
  });

  const row = (
    operation: string,
    service: Summary,
    d: Summary,
    directRequests: string,
    targeted: boolean,
  ) => ({
    size: c.label,
    operation,
    targeted,
    directRequests,
    service,
    direct: d,
  });
  const getDirect = get.direct as Summary;
  return [
    row("GetState", get.service as Summary, getDirect, "manifest GET + blob GET", true),
    // Not a target: the direct side reads uncompressed bytes; this row adds the client's inflate.
    row("GetState, gzip response", get.gzip as Summary, getDirect, "manifest GET + blob GET", false),
    row("GetState over HTTP/2", get.h2 as Summary, getDirect, "manifest GET + blob GET", false),
    row(
      "DownloadState",
      download.service as Summary,
      download.direct as Summary,
      "manifest GET + blob GET",
      false,
    ),
    row(
      "GetState, unchanged",
      unchanged.service as Summary,
      unchanged.direct as Summary,
      "manifest GET (304)",
      false,
    ),
    row(
      "PutState",
      put.service as Summary,
      put.direct as Summary,
      "lock GET (404) + blob POST + PUT + manifest PUT",
      false,
    ),
  ];
}

function report(rows: Row[]): BenchResult {
  const ratio = (r: Row, p: "p50" | "p99") => r.service[p] / r.direct[p];
  const table = renderTable(
    [
      "size",
      "operation",
      "service p50",
      "service p99",
      "direct p50",
      "direct p99",
      "ratio p50",
      "ratio p99",
      "n",
      "direct requests",
    ],
    rows.map((r) => [
      r.size,
      r.operation,
      `${ms(r.service.p50)} ms`,
      `${ms(r.service.p99)} ms`,
      `${ms(r.direct.p50)} ms`,
      `${ms(r.direct.p99)} ms`,
      `${ratio(r, "p50").toFixed(2)}×`,
      `${ratio(r, "p99").toFixed(2)}×`,
      String(r.service.n),
      r.directRequests,
    ]),
    ["left", "left", "right", "right", "right", "right", "right", "right", "right", "left"],
  );

  const targets: TargetCheck[] = [];
  for (const r of rows.filter((x) => x.targeted)) {
    for (const p of ["p50", "p99"] as const) {
      const value = ratio(r, p);
      targets.push({
        what: `${r.operation} ${r.size} ${p}, service / direct`,
        target: `≤ ${GET_TARGET_RATIO.toFixed(2)}×`,
        actual: `${value.toFixed(2)}×`,
        met: value <= GET_TARGET_RATIO,
      });
    }
  }

  const text = [
    `Service: ${CLIENT_PROTOCOL_HTTP1} (connect-node), the server in its own process; "gzip response"`,
    "rows use connect-node's default client (it offers gzip, so the server compresses), the others",
    'ask for uncompressed responses; "over HTTP/2" is the same client over h2c. Direct: the same',
    "operation with undici (HTTP/1.1) against the same registry.",
    "All on loopback. Times are per call, client side.",
    "",
    table,
  ].join("\n");
  const figures = {
    client: CLIENT_PROTOCOL_HTTP1,
    rows: rows.map((r) => ({
      size: r.size,
      operation: r.operation,
      n: r.service.n,
      serviceP50Ms: round3(r.service.p50),
      serviceP99Ms: round3(r.service.p99),
      directP50Ms: round3(r.direct.p50),
      directP99Ms: round3(r.direct.p99),
      ratioP50: round3(ratio(r, "p50")),
      ratioP99: round3(ratio(r, "p99")),
    })),
  };
  return { name: "get-put", text, targets, figures };
}
