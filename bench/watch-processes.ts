/**
 * The client processes of the watch benchmark. Two kinds speak the same messages
 * (bench/watch-protocol.ts): the Go program in bench/watch-go (the project's Go client, gRPC over
 * h2c), as JSON lines over its stdin and stdout, and bench/watch-client.ts (connect-node, the Connect
 * protocol), over Node's IPC channel. One WatchClient drives either through a MessageChannel.
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { trackForCleanup } from "../test/harness/cleanup.ts";
import { CLIENT_PROTOCOL } from "./lib/connect-client.ts";
import { progress } from "./lib/report.ts";
import type { ClientMessage, EventKind, OpenCommand, ParentMessage } from "./watch-protocol.ts";

export type WatchClientKind = "go" | "node";

const KINDS: readonly WatchClientKind[] = ["go", "node"];
const OPEN_TIMEOUT_MS = 120_000;
const DELIVERY_TIMEOUT_MS = 60_000;
/** Time a client process has to exit after "close" before it is killed. */
const CLOSE_TIMEOUT_MS = 5000;

const GO_SOURCE_DIR = fileURLToPath(new URL("./watch-go/", import.meta.url));
const NODE_CLIENT = fileURLToPath(new URL("./watch-client.ts", import.meta.url));

/** `BENCH_WATCH_CLIENT`: "go" (the default) or "node". */
export function watchClientKind(value: string | undefined): WatchClientKind {
  const kind = value === undefined || value === "" ? "go" : value;
  if (!(KINDS as readonly string[]).includes(kind)) {
    throw new Error(`BENCH_WATCH_CLIENT must be ${KINDS.join(" or ")}, not ${JSON.stringify(value)}`);
  }
  return kind as WatchClientKind;
}

/** Starts client processes of one kind; `dispose` removes what preparing them made. */
export interface WatchClientLauncher {
  kind: WatchClientKind;
  /** The watchers' protocol and client library, for the report. */
  description: string;
  start(): WatchClient;
  dispose(): Promise<void>;
}

/** For "go", builds bench/watch-go once into a temporary directory. */
export async function prepareWatchClients(kind: WatchClientKind): Promise<WatchClientLauncher> {
  if (kind === "node") {
    return {
      kind,
      description: `${CLIENT_PROTOCOL}, Node connect-node clients`,
      start: () => new WatchClient(ipcChannel(fork(NODE_CLIENT, [], { stdio: "inherit" }))),
      dispose: async () => {},
    };
  }
  const dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-watch-go-"));
  const untrack = trackForCleanup(undefined, dir);
  const dispose = async () => {
    await rm(dir, { recursive: true, force: true });
    untrack();
  };
  const binary = path.join(dir, "watch-go");
  try {
    progress("watch: building the Go watch client (bench/watch-go)");
    await goBuild(binary);
  } catch (err) {
    await dispose();
    throw err;
  }
  return {
    kind,
    description: `gRPC (binary) over HTTP/2 (h2c), Go connect-go clients (${goGcSetting()})`,
    start: () => new WatchClient(jsonLinesChannel(spawn(binary, [], { stdio: ["pipe", "pipe", "inherit"] }))),
    dispose,
  };
}

/** What the Go watcher process does with its garbage collector (see deferGC in bench/watch-go). */
function goGcSetting(): string {
  const set = ["GOGC", "GOMEMLIMIT"]
    .filter((k) => (process.env[k] ?? "") !== "")
    .map((k) => `${k}=${process.env[k]}`);
  return set.length > 0 ? `GC: ${set.join(" ")}` : "GC between rounds only";
}

async function goBuild(output: string): Promise<void> {
  const child = spawn("go", ["build", "-buildvcs=false", "-o", output, "."], {
    cwd: GO_SOURCE_DIR,
    stdio: ["ignore", "inherit", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (text: string) => {
    stderr += text;
  });
  const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code, signal) => resolve({ code, signal }));
    },
  ).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") {
      throw new Error(
        "BENCH_WATCH_CLIENT=go needs the Go toolchain to build bench/watch-go, and `go` is not on PATH; " +
          "install Go 1.26 or later, or run with BENCH_WATCH_CLIENT=node",
      );
    }
    throw new Error(`cannot run \`go build\` for bench/watch-go: ${err.message}`);
  });
  if (result.code !== 0) {
    throw new Error(
      `\`go build\` of bench/watch-go failed (${result.code ?? result.signal}):\n${stderr.trimEnd()}`,
    );
  }
}

/** How messages reach a client process and come back from it. */
interface MessageChannel {
  readonly child: ChildProcess;
  /** Dropped once the process can no longer take commands. */
  send(message: ParentMessage): void;
  onMessage(listener: (message: ClientMessage) => void): void;
  /** Sends "close" and tells the process no more commands come. */
  end(): void;
}

/** Node's IPC channel to a forked bench/watch-client.ts, which disconnects itself on "close". */
function ipcChannel(child: ChildProcess): MessageChannel {
  return {
    child,
    send(message) {
      if (child.connected) child.send(message);
    },
    onMessage(listener) {
      child.on("message", listener);
    },
    end() {
      if (child.connected) child.send({ type: "close" } satisfies ParentMessage);
    },
  };
}

/** One JSON message a line, over the stdin and stdout pipes of the Go program. */
function jsonLinesChannel(child: ChildProcess): MessageChannel {
  const { stdin, stdout } = child;
  if (stdin === null || stdout === null) throw new Error("the watch client was started without stdio pipes");
  // A process that died takes its pipe with it; its exit is reported, not the broken pipe.
  stdin.on("error", () => {});
  const send = (message: ParentMessage) => {
    if (stdin.writable) stdin.write(`${JSON.stringify(message)}\n`);
  };
  return {
    child,
    send,
    onMessage(listener) {
      createInterface({ input: stdout, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) => {
        listener(parseMessage(line));
      });
    },
    end() {
      send({ type: "close" });
      stdin.end();
    },
  };
}

function parseMessage(line: string): ClientMessage {
  try {
    const m: unknown = JSON.parse(line);
    if (typeof m === "object" && m !== null && typeof (m as { type?: unknown }).type === "string") {
      return m as ClientMessage;
    }
  } catch {
    // Reported below.
  }
  return { type: "error", message: `unreadable message line: ${line.slice(0, 200)}` };
}

/**
 * One client process and the messages it sends back. An "error" message or an early exit means a
 * watcher is lost, so every wait fails at once rather than at its timeout.
 */
export class WatchClient {
  readonly #channel: MessageChannel;
  readonly #untrack: () => void;
  readonly #exited: Promise<void>;
  readonly #waiters = new Set<{
    match: (m: ClientMessage) => boolean;
    resolve: (m: ClientMessage) => void;
    reject: (err: Error) => void;
  }>();
  readonly #seen: ClientMessage[] = [];
  #failure: Error | undefined;
  #closing = false;

  constructor(channel: MessageChannel) {
    this.#channel = channel;
    const { child } = channel;
    this.#untrack = trackForCleanup(child.pid, undefined);
    this.#exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        if (!this.#closing) this.#fail(`the watch client process exited (${code ?? signal})`);
        resolve();
      });
      child.once("error", (err) => {
        this.#fail(`the watch client process failed: ${err.message}`);
        resolve();
      });
    });
    channel.onMessage((m) => this.#receive(m));
  }

  async open(cmd: OpenCommand): Promise<number> {
    this.#channel.send(cmd);
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

  async collect(lockId: string): Promise<Omit<Extract<ClientMessage, { type: "times" }>, "type" | "lockId">> {
    this.#channel.send({ type: "collect", lockId });
    const m = await this.#await(
      (x) => x.type === "times" && x.lockId === lockId,
      DELIVERY_TIMEOUT_MS,
      "times",
    );
    if (m.type !== "times") throw new Error(`expected the times of ${lockId}, got ${m.type}`);
    return m;
  }

  async close(): Promise<void> {
    this.#closing = true;
    const { child } = this.#channel;
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      this.#channel.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), CLOSE_TIMEOUT_MS);
      await this.#exited;
      clearTimeout(timer);
    }
    this.#untrack();
  }

  #receive(m: ClientMessage): void {
    if (m.type === "error") {
      progress(`watch client error: ${m.message}`);
      if (!this.#closing) this.#fail(m.message);
      return;
    }
    for (const w of this.#waiters) {
      if (w.match(m)) {
        this.#waiters.delete(w);
        w.resolve(m);
        return;
      }
    }
    this.#seen.push(m);
  }

  #fail(message: string): void {
    this.#failure ??= new Error(`watch client: ${message}`);
    for (const w of this.#waiters) w.reject(this.#failure);
    this.#waiters.clear();
  }

  #await(match: (m: ClientMessage) => boolean, timeoutMs: number, what: string): Promise<ClientMessage> {
    const i = this.#seen.findIndex(match);
    if (i !== -1) return Promise.resolve(this.#seen.splice(i, 1)[0] as ClientMessage);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter = {
        match,
        resolve: (m: ClientMessage) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.#waiters.add(waiter);
    });
  }
}
