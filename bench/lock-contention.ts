/**
 * Mixed-protocol lock contention on one workspace: 15 http backend clients and 30 RPC clients take
 * the lock in turn, hold it for a short piece of work, and let it go, over and over.
 *
 * - An http client does what OpenTofu does (internal/backend/remote-state/http/client.go under
 *   statemgr.LockWithContext): LOCK with its LockInfo; on 423, sleep 1 s, doubling to 16 s, and
 *   LOCK again with the same LockInfo (so the same lock ID) until it gets 200; then GET the state,
 *   POST it with `?ID=`, and UNLOCK with the LockInfo. Each client has its own connection, as each
 *   CLI process does.
 * - An RPC client (Connect, binary, HTTP/2) calls Lock with a wait, PutState with its lock ID and
 *   Unlock.
 *
 * Clients start spread over 3 s and pause up to 300 ms (seeded) between turns, so the http
 * clients' backoffs do not march in step.
 *
 * The lock wait is the time from a client's first LOCK (or its Lock call) to holding the lock,
 * backoffs included. Run twice against fresh server processes: with `--http-lock-wait 0` (an http
 * LOCK on a held lock is answered 423 at once, as before the shared line) and with the default
 * (it waits in the line with the RPC callers and keeps its place across its retries). When the
 * time is up, no client starts a new lock, and every lock already asked for is waited for, so
 * the longest waits are counted too. A client-side check fails the run if two clients ever hold
 * the lock at once.
 *
 * BENCH_LOCK_SECONDS (default 60) sets each run's length; BENCH_LOCK_WORK_MS (default 100) the
 * work done while holding the lock.
 */
import { createHash, randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Agent, request } from "undici";
import { startRegistry } from "../test/harness/registry.ts";
import { type StateClient, stateClient } from "./lib/connect-client.ts";
import { type BenchResult, progress, type TargetCheck } from "./lib/report.ts";
import { startServerProcess } from "./lib/server-process.ts";
import { setSerial, stateBytes } from "./lib/state-data.ts";
import { round3, type Summary, summarize } from "./lib/stats.ts";
import { renderTable } from "./lib/table.ts";

const HTTP_CLIENTS = 15;
const RPC_CLIENTS = 30;
const RUN_SECONDS = Number(process.env.BENCH_LOCK_SECONDS ?? 60);
const WORK_MS = Number(process.env.BENCH_LOCK_WORK_MS ?? 100);
const WORKSPACE = "contended";
const STATE_SIZE = 4 * 1024;
const TARGET_RATIO = 2;
/** OpenTofu's LockWithContext: 1 s after the first refusal, doubling, at most 16 s. */
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 16_000;
/** Clients start spread over this many ms, so their retries do not march in step from the start. */
const START_SPREAD_MS = 3000;
/** Between a client's unlock and its next lock: a random pause up to this (seeded, so runs compare). */
const MAX_PAUSE_MS = 300;

interface Phase {
  label: string;
  /** The server's --http-lock-wait. */
  httpLockWait: string;
}

const PHASES: readonly Phase[] = [
  { label: "http LOCK answered at once (--http-lock-wait 0)", httpLockWait: "0" },
  { label: "http LOCK waits in the shared line (--http-lock-wait 5s, the default)", httpLockWait: "5s" },
];

interface PhaseResult {
  phase: Phase;
  http: Summary;
  rpc: Summary;
  /** LOCK requests answered 423, per http lock taken. */
  refusalsPerHttpLock: number;
  /** Locks taken per second while the run's time lasted. */
  locksPerSecond: number;
  /** The run with its drain. */
  seconds: number;
}

/** Shared by every client of a run: who holds the lock, to catch two holders at once. */
class Holding {
  #holder: string | null = null;
  overlaps = 0;
  enter(who: string): void {
    if (this.#holder !== null) this.overlaps++;
    this.#holder = who;
  }
  leave(who: string): void {
    if (this.#holder === who) this.#holder = null;
  }
}

export async function runLockContention(): Promise<BenchResult> {
  const registry = await startRegistry();
  try {
    const results: PhaseResult[] = [];
    for (const [i, phase] of PHASES.entries()) {
      progress(`lock-contention: ${phase.label}, ${RUN_SECONDS} s`);
      results.push(await runPhase(`${registry.host}/bench/locks-${i}`, phase));
    }
    return report(results);
  } finally {
    await registry.stop();
  }
}

async function runPhase(repository: string, phase: Phase): Promise<PhaseResult> {
  const server = await startServerProcess({
    repository,
    args: ["--http-lock-wait", phase.httpLockWait],
  });
  const rpcClients: StateClient[] = [];
  const agents: Agent[] = [];
  try {
    const seedClient = stateClient(server.url);
    rpcClients.push(seedClient);
    await seedClient.client.putState({ workspace: WORKSPACE, state: stateBytes(STATE_SIZE, 1) });

    const holding = new Holding();
    const httpWaits: number[] = [];
    const rpcWaits: number[] = [];
    let refusals = 0;
    /** Locks taken while the run's time lasted (the drain after it is not counted). */
    let granted = 0;
    const started = performance.now();
    const stopAt = Date.now() + RUN_SECONDS * 1000;

    const httpLoop = async (n: number) => {
      const random = new Random(1000 + n);
      await sleep((n / HTTP_CLIENTS) * START_SPREAD_MS);
      const agent = new Agent({ connections: 1, keepAliveTimeout: 60_000 });
      agents.push(agent);
      const base = `${server.url}/terraform/state/${WORKSPACE}`;
      const state = stateBytes(STATE_SIZE, 1000 + n);
      let serial = 0;
      while (Date.now() < stopAt) {
        const info = lockInfo(`http-${n}@bench`);
        const body = JSON.stringify(info);
        const t0 = performance.now();
        let delay = FIRST_RETRY_MS;
        for (;;) {
          const res = await send(agent, "LOCK", `${base}/lock`, body);
          if (res.status === 200) break;
          if (res.status !== 423) throw new Error(`LOCK answered ${res.status}: ${res.text.slice(0, 200)}`);
          refusals++;
          await sleep(delay);
          delay = Math.min(delay * 2, MAX_RETRY_MS);
        }
        httpWaits.push(performance.now() - t0);
        if (Date.now() < stopAt) granted++;
        holding.enter(info.ID);
        const got = await send(agent, "GET", base);
        if (got.status !== 200) throw new Error(`GET answered ${got.status}`);
        await sleep(WORK_MS);
        setSerial(state, ++serial);
        const put = await send(agent, "POST", `${base}?ID=${encodeURIComponent(info.ID)}`, state);
        if (put.status !== 200) throw new Error(`POST answered ${put.status}: ${put.text.slice(0, 200)}`);
        holding.leave(info.ID);
        const unlock = await send(agent, "UNLOCK", `${base}/lock`, body);
        if (unlock.status !== 200) throw new Error(`UNLOCK answered ${unlock.status}`);
        await sleep(random.below(MAX_PAUSE_MS));
      }
    };

    const rpcLoop = async (n: number) => {
      const random = new Random(2000 + n);
      await sleep((n / RPC_CLIENTS) * START_SPREAD_MS);
      const own = stateClient(server.url);
      rpcClients.push(own);
      const { client } = own;
      const state = stateBytes(STATE_SIZE, 2000 + n);
      let serial = 0;
      while (Date.now() < stopAt) {
        const id = randomUUID();
        const t0 = performance.now();
        await client.lock({
          workspace: WORKSPACE,
          lock: { id, who: `rpc-${n}@bench`, operation: "OperationTypeApply" },
          wait: durationFromMs(10 * 60_000),
        });
        rpcWaits.push(performance.now() - t0);
        if (Date.now() < stopAt) granted++;
        holding.enter(id);
        await sleep(WORK_MS);
        setSerial(state, ++serial);
        await client.putState({ workspace: WORKSPACE, state, lockId: id });
        holding.leave(id);
        await client.unlock({ workspace: WORKSPACE, lockId: id });
        await sleep(random.below(MAX_PAUSE_MS));
      }
    };

    await Promise.all([
      ...Array.from({ length: HTTP_CLIENTS }, (_, n) => httpLoop(n)),
      ...Array.from({ length: RPC_CLIENTS }, (_, n) => rpcLoop(n)),
    ]);
    const seconds = (performance.now() - started) / 1000;
    if (holding.overlaps > 0) throw new Error(`two clients held the lock at once ${holding.overlaps} times`);
    return {
      phase,
      http: summarize(httpWaits),
      rpc: summarize(rpcWaits),
      refusalsPerHttpLock: refusals / Math.max(1, httpWaits.length),
      locksPerSecond: granted / RUN_SECONDS,
      seconds,
    };
  } finally {
    for (const c of rpcClients) c.close();
    await Promise.allSettled(agents.map((a) => a.close()));
    await server.stop();
  }
}

/** What statemgr.NewLockInfo and the CLI fill in, in Go's field order. */
function lockInfo(who: string) {
  return {
    ID: randomUUID(),
    Operation: "OperationTypeApply",
    Info: "",
    Who: who,
    Version: "1.12.6",
    Created: new Date().toISOString(),
    Path: "",
  };
}

/** One request as OpenTofu's http client sends it: JSON bodies with their Content-MD5. */
async function send(
  agent: Agent,
  method: string,
  url: string,
  body?: string | Uint8Array,
): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-md5"] = createHash("md5").update(body).digest("base64");
  }
  const res = await request(url, { dispatcher: agent, method, headers, body: body ?? null });
  const text = await res.body.text();
  return { status: res.statusCode, text };
}

/** xorshift32, seeded: the same pauses in every run. */
class Random {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0 || 0x9e3779b9;
  }
  below(n: number): number {
    let x = this.#s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s = x >>> 0;
    return this.#s % n;
  }
}

function sleep(msec: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, msec));
}

function report(results: PhaseResult[]): BenchResult {
  const s = (v: number) => `${(v / 1000).toFixed(2)} s`;
  const rows = results.flatMap((r) => [
    [r.phase.label, "http backend", String(r.http.n), s(r.http.p50), s(r.http.p99), s(r.http.max), ""],
    ["", "RPC Lock with wait", String(r.rpc.n), s(r.rpc.p50), s(r.rpc.p99), s(r.rpc.max), ""],
    [
      "",
      "http p99 ÷ RPC p99",
      "",
      "",
      `${(r.http.p99 / r.rpc.p99).toFixed(2)}×`,
      "",
      `${r.locksPerSecond.toFixed(1)}`,
    ],
  ]);
  const table = renderTable(
    ["run", "lockers", "locks", "wait p50", "wait p99", "wait max", "locks/s"],
    rows,
    ["left", "left", "right", "right", "right", "right", "right"],
  );
  const after = results.at(-1) as PhaseResult;
  const ratio = after.http.p99 / after.rpc.p99;
  const targets: TargetCheck[] = [
    {
      what: "http lockers' lock-wait p99 against RPC lockers' (shared line)",
      target: `≤ ${TARGET_RATIO.toFixed(2)}×`,
      actual: `${ratio.toFixed(2)}×`,
      met: ratio <= TARGET_RATIO,
    },
  ];
  const text = [
    `${HTTP_CLIENTS} http backend clients (OpenTofu's LOCK retry: 1 s doubling to 16 s, same lock ID) and ` +
      `${RPC_CLIENTS} RPC clients (Lock with wait) on one workspace, each holding the lock ${WORK_MS} ms ` +
      `per turn and pausing up to ${MAX_PAUSE_MS} ms between turns; ${RUN_SECONDS} s per run, then the ` +
      "locks asked for are waited for.",
    ...results.map(
      (r) => `${r.phase.label}: ${r.refusalsPerHttpLock.toFixed(2)} LOCKs answered 423 per http lock taken.`,
    ),
    "",
    table,
  ].join("\n");
  return {
    name: "lock-contention",
    text,
    targets,
    figures: {
      httpClients: HTTP_CLIENTS,
      rpcClients: RPC_CLIENTS,
      workMs: WORK_MS,
      runSeconds: RUN_SECONDS,
      runs: results.map((r) => ({
        httpLockWait: r.phase.httpLockWait,
        seconds: round3(r.seconds),
        locksPerSecond: round3(r.locksPerSecond),
        refusalsPerHttpLock: round3(r.refusalsPerHttpLock),
        http: roundSummary(r.http),
        rpc: roundSummary(r.rpc),
        p99Ratio: round3(r.http.p99 / r.rpc.p99),
      })),
    },
  };
}

function roundSummary(v: Summary) {
  return { n: v.n, p50Ms: round3(v.p50), p99Ms: round3(v.p99), maxMs: round3(v.max), meanMs: round3(v.mean) };
}
