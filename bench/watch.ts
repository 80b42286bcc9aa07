/**
 * WatchLock fan-out: 10,000 streams on one workspace, then rounds of Lock and Unlock through the
 * service; for every watcher, the time from the Lock call (sent, and returned) to the LOCKED event
 * reaching it, and from Unlock's return to UNLOCKED. The server is its own process (the CLI), so
 * its memory is its own; the watchers live in separate client processes on the same machine,
 * spread over many HTTP/2 connections, and their times include their own processing.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { trackForCleanup } from "../test/harness/cleanup.ts";
import { startRegistry } from "../test/harness/registry.ts";
import { monotonicMs } from "./lib/clock.ts";
import { CLIENT_PROTOCOL, stateClient } from "./lib/connect-client.ts";
import { RssSampler, readMemory } from "./lib/proc-memory.ts";
import { type BenchResult, progress, type TargetCheck } from "./lib/report.ts";
import { startServerProcess } from "./lib/server-process.ts";
import { mib, ms, round3, type Summary, summarize } from "./lib/stats.ts";
import { renderTable } from "./lib/table.ts";
import type { ClientMessage, EventKind, ParentMessage } from "./watch-protocol.ts";

const WATCHERS = Number(process.env.BENCH_WATCHERS ?? 10_000);
/** HTTP/2 connections in all: 100 streams each, Node's default stream limit for a client. */
const CONNECTIONS = Number(process.env.BENCH_WATCH_CONNECTIONS ?? 100);
const CLIENT_PROCESSES = Number(process.env.BENCH_WATCH_CLIENT_PROCESSES ?? 2);
const ROUNDS = Number(process.env.BENCH_WATCH_ROUNDS ?? 10);
const WORKSPACE = "watched";
const DELIVERY_TIMEOUT_MS = 60_000;
const OPEN_TIMEOUT_MS = 120_000;
/** Time for the server to settle (GC, buffers) before a memory reading. */
const SETTLE_MS = 1000;
const TARGET_P99_MS = 100;
const TARGET_RSS_BYTES = 300 * 1024 * 1024;

export async function runWatch(): Promise<BenchResult> {
  const cleanups: Array<() => unknown> = [];
  try {
    const registry = await startRegistry();
    cleanups.push(() => registry.stop());
    const server = await startServerProcess({ repository: `${registry.host}/bench/watch` });
    cleanups.push(() => server.stop());
    await sleep(SETTLE_MS);
    const idle = await readMemory(server.pid);

    progress(
      `watch: opening ${WATCHERS} watchers over ${CONNECTIONS} connections in ${CLIENT_PROCESSES} processes`,
    );
    const clients = Array.from({ length: CLIENT_PROCESSES }, () => WatchClient.start());
    cleanups.push(() => Promise.all(clients.map((c) => c.close())));
    const openStarted = monotonicMs();
    await Promise.all(
      clients.map((c, i) =>
        c.open({
          type: "open",
          url: server.url,
          workspace: WORKSPACE,
          watchers: share(WATCHERS, CLIENT_PROCESSES, i),
          connections: share(CONNECTIONS, CLIENT_PROCESSES, i),
        }),
      ),
    );
    const openMs = monotonicMs() - openStarted;
    await sleep(SETTLE_MS);
    const watching = await readMemory(server.pid);

    const sampler = new RssSampler(server.pid, 10);
    const locker = stateClient(server.url);
    cleanups.push(() => locker.close());
    const samples = { fromSent: [] as number[], fromReturn: [] as number[], unlocked: [] as number[] };
    const lockCalls: number[] = [];
    // Round 0 warms up the path and is not counted.
    for (let round = 0; round <= ROUNDS; round++) {
      const lockId = `bench-round-${round}`;
      const sent = monotonicMs();
      await locker.client.lock({
        workspace: WORKSPACE,
        lock: { id: lockId, who: "bench", operation: "watch" },
      });
      const returned = monotonicMs();
      await Promise.all(clients.map((c) => c.delivered("locked", lockId)));
      await locker.client.unlock({ workspace: WORKSPACE, lockId });
      const unlockReturned = monotonicMs();
      await Promise.all(clients.map((c) => c.delivered("unlocked", lockId)));
      const times = await Promise.all(clients.map((c) => c.collect(lockId)));
      if (round === 0) continue;
      lockCalls.push(returned - sent);
      for (const t of times) {
        for (const at of t.locked) {
          samples.fromSent.push(at - sent);
          samples.fromReturn.push(at - returned);
        }
        for (const at of t.unlocked) samples.unlocked.push(at - unlockReturned);
      }
      progress(`watch: round ${round}/${ROUNDS} delivered`);
      await sleep(100);
    }
    const peakSampled = await sampler.stop();
    const end = await readMemory(server.pid);
    return report({
      openMs,
      lockCall: summarize(lockCalls),
      fromSent: summarize(samples.fromSent),
      fromReturn: summarize(samples.fromReturn),
      unlocked: summarize(samples.unlocked),
      memory: { idle: idle.rssBytes, watching: watching.rssBytes, peakSampled, hwm: end.hwmBytes },
    });
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

interface Figures {
  openMs: number;
  lockCall: Summary;
  fromSent: Summary;
  fromReturn: Summary;
  unlocked: Summary;
  memory: { idle: number; watching: number; peakSampled: number; hwm: number };
}

function report(f: Figures): BenchResult {
  const latency = renderTable(
    ["measured", "p50", "p99", "max", "samples"],
    [
      ["LOCKED delivered, from Lock returned", f.fromReturn],
      ["LOCKED delivered, from Lock sent", f.fromSent],
      ["UNLOCKED delivered, from Unlock returned", f.unlocked],
      ["Lock call itself", f.lockCall],
    ].map(([what, s]) => {
      const x = s as Summary;
      return [what as string, `${ms(x.p50)} ms`, `${ms(x.p99)} ms`, `${ms(x.max)} ms`, String(x.n)];
    }),
  );
  const memory = renderTable(
    ["server process", "memory"],
    [
      ["VmRSS before any watcher", mib(f.memory.idle)],
      [`VmRSS with ${WATCHERS} watchers, idle`, mib(f.memory.watching)],
      ["VmRSS peak sampled during the rounds (every 10 ms)", mib(f.memory.peakSampled)],
      ["VmHWM at the end (peak since start)", mib(f.memory.hwm)],
    ],
  );
  const targets: TargetCheck[] = [
    {
      what: `LOCKED delivery p99 at ${WATCHERS} watchers, from Lock returned`,
      target: `≤ ${TARGET_P99_MS} ms`,
      actual: `${ms(f.fromReturn.p99)} ms`,
      met: f.fromReturn.p99 <= TARGET_P99_MS,
    },
    {
      // The Lock response can wait behind the fan-out writes, so "returned" alone flatters.
      what: `LOCKED delivery p99 at ${WATCHERS} watchers, from Lock sent`,
      target: `≤ ${TARGET_P99_MS} ms`,
      actual: `${ms(f.fromSent.p99)} ms`,
      met: f.fromSent.p99 <= TARGET_P99_MS,
    },
    {
      what: `server peak RSS (VmHWM) with ${WATCHERS} watchers`,
      target: `≤ ${mib(TARGET_RSS_BYTES)}`,
      actual: mib(f.memory.hwm),
      met: f.memory.hwm <= TARGET_RSS_BYTES,
    },
  ];
  const text = [
    `${WATCHERS} WatchLock streams on one workspace (${CLIENT_PROTOCOL}), over ${CONNECTIONS} HTTP/2`,
    `connections from ${CLIENT_PROCESSES} client processes; ${ROUNDS} rounds of Lock then Unlock, each waiting`,
    `for every watcher. Opening all streams took ${ms(f.openMs)} ms.`,
    "",
    latency,
    "",
    memory,
  ].join("\n");
  const s = (x: Summary) => ({ p50Ms: round3(x.p50), p99Ms: round3(x.p99), maxMs: round3(x.max), n: x.n });
  return {
    name: "watch",
    text,
    targets,
    figures: {
      watchers: WATCHERS,
      connections: CONNECTIONS,
      clientProcesses: CLIENT_PROCESSES,
      rounds: ROUNDS,
      openMs: round3(f.openMs),
      lockedFromReturn: s(f.fromReturn),
      lockedFromSent: s(f.fromSent),
      unlockedFromReturn: s(f.unlocked),
      lockCall: s(f.lockCall),
      serverMemoryBytes: f.memory,
    },
  };
}

/** The i-th of `parts` near-equal shares of `total`. */
function share(total: number, parts: number, i: number): number {
  return Math.floor(total / parts) + (i < total % parts ? 1 : 0);
}

function sleep(msec: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, msec));
}

/** One client process (bench/watch-client.ts) and the messages it sends back. */
class WatchClient {
  readonly #child: ChildProcess;
  readonly #untrack: () => void;
  readonly #exited: Promise<void>;
  readonly #waiters = new Set<{
    match: (m: ClientMessage) => boolean;
    resolve: (m: ClientMessage) => void;
  }>();
  readonly #seen: ClientMessage[] = [];
  #failure: Error | undefined;

  static start(): WatchClient {
    return new WatchClient(
      fork(fileURLToPath(new URL("./watch-client.ts", import.meta.url)), [], { stdio: "inherit" }),
    );
  }

  constructor(child: ChildProcess) {
    this.#child = child;
    this.#untrack = trackForCleanup(child.pid, undefined);
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    child.on("message", (m: ClientMessage) => {
      if (m.type === "error") {
        this.#failure ??= new Error(`watch client: ${m.message}`);
        progress(`watch client error: ${m.message}`);
      }
      for (const w of this.#waiters) {
        if (w.match(m)) {
          this.#waiters.delete(w);
          w.resolve(m);
          return;
        }
      }
      this.#seen.push(m);
    });
  }

  async open(cmd: Extract<ParentMessage, { type: "open" }>): Promise<number> {
    this.#send(cmd);
    const m = await this.#await((x) => x.type === "ready", OPEN_TIMEOUT_MS, "opening the watchers");
    return m.type === "ready" ? m.openMs : 0;
  }

  async delivered(kind: EventKind, lockId: string): Promise<void> {
    await this.#await(
      (m) => m.type === "delivered" && m.kind === kind && m.lockId === lockId,
      DELIVERY_TIMEOUT_MS,
      `the ${kind} event of ${lockId} to reach every watcher`,
    );
  }

  async collect(lockId: string): Promise<{ locked: number[]; unlocked: number[] }> {
    this.#send({ type: "collect", lockId });
    const m = await this.#await(
      (x) => x.type === "times" && x.lockId === lockId,
      DELIVERY_TIMEOUT_MS,
      "times",
    );
    return m.type === "times" ? m : { locked: [], unlocked: [] };
  }

  async close(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      if (this.#child.connected) this.#send({ type: "close" });
      const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5000);
      await this.#exited;
      clearTimeout(timer);
    }
    this.#untrack();
  }

  #send(m: ParentMessage): void {
    this.#child.send(m);
  }

  #await(match: (m: ClientMessage) => boolean, timeoutMs: number, what: string): Promise<ClientMessage> {
    const i = this.#seen.findIndex(match);
    if (i !== -1) return Promise.resolve(this.#seen.splice(i, 1)[0] as ClientMessage);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (m: ClientMessage) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(this.#failure ?? new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }
}
