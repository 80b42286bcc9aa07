/**
 * Starts a real CNCF Distribution 2.8 registry (Debian `docker-registry`) on a random loopback port,
 * each in its own temp dir, and stops it by PID.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { markOwned, sweepStaleDirs, trackForCleanup } from "./cleanup.ts";

const execFileAsync = promisify(execFile);

export type RegistryAuthOptions =
  | { kind: "basic"; users: Record<string, string> }
  | { kind: "token"; realm: string; service: string; issuer: string; rootCertBundle: string };

export interface StartRegistryOptions {
  auth?: RegistryAuthOptions;
  tls?: { certFile: string; keyFile: string };
  /** Default true; without it Distribution answers every DELETE with 405 UNSUPPORTED. */
  deleteEnabled?: boolean;
}

export interface RegistryHandle {
  /** "127.0.0.1:PORT" */
  host: string;
  /** "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT" */
  url: string;
  /** Temp dir holding config.yml, registry.log and the storage under data/. */
  root: string;
  pid: number;
  logFile: string;
  /** SIGTERM, SIGKILL after a timeout, waits for exit, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 3_000;
const POLL_INTERVAL_MS = 5;
const LISTENING_RE = /listening on (127\.0\.0\.1:\d+)/;
const TEMP_PREFIX = "oci-tfstate-registry-";
let swept = false;

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RegistryHandle> {
  if (!swept) {
    swept = true;
    sweepStaleDirs(TEMP_PREFIX);
  }
  const root = await mkdtemp(path.join(tmpdir(), TEMP_PREFIX));
  const untrackDir = trackForCleanup(undefined, root);
  markOwned(root);
  try {
    return await launch(root, opts, untrackDir);
  } catch (err) {
    untrackDir();
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}

async function launch(
  root: string,
  opts: StartRegistryOptions,
  untrackDir: () => void,
): Promise<RegistryHandle> {
  const configFile = path.join(root, "config.yml");
  const logFile = path.join(root, "registry.log");
  await writeFile(configFile, JSON.stringify(await buildConfig(root, opts), null, 2));

  const logHandle = await open(logFile, "a");
  let child: ChildProcess;
  try {
    const [command, args] = withParentDeathSignal("docker-registry", ["serve", configFile]);
    child = spawn(command, args, { stdio: ["ignore", logHandle.fd, logHandle.fd], cwd: root });
  } finally {
    await logHandle.close();
  }
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  // A forgotten registry must not keep the test process alive; the exit hook kills it.
  child.unref();
  const spawnError = new Promise<never>((_, reject) => child.once("error", reject));
  spawnError.catch(() => {});
  const pid = child.pid;
  if (pid === undefined) return await spawnError;
  const untrackPid = trackForCleanup(pid, undefined);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await terminate(child, exited);
      untrackPid();
      if (process.env.OCI_TFSTATE_KEEP_HARNESS_FILES !== "1")
        await rm(root, { recursive: true, force: true });
      untrackDir();
    })();
    return stopping;
  };

  try {
    const host = await Promise.race([waitForListening(logFile, child), spawnError]);
    const url = `${opts.tls ? "https" : "http"}://${host}`;
    await waitForReady(url, child);
    return { host, url, root, pid, logFile, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function buildConfig(root: string, opts: StartRegistryOptions): Promise<Record<string, unknown>> {
  const httpSection: Record<string, unknown> = {
    addr: "127.0.0.1:0",
    // A fixed secret silences the load-balancer warning; one instance never shares upload state.
    secret: randomBytes(16).toString("hex"),
    headers: { "X-Content-Type-Options": ["nosniff"] },
  };
  if (opts.tls) httpSection.tls = { certificate: opts.tls.certFile, key: opts.tls.keyFile };

  const config: Record<string, unknown> = {
    version: 0.1,
    // "info" is the lowest level that still prints the "listening on" line we need for the port.
    log: { level: "info", formatter: "text", accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: path.join(root, "data") },
      delete: { enabled: opts.deleteEnabled ?? true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: httpSection,
  };

  if (opts.auth?.kind === "basic") {
    const htpasswdFile = path.join(root, "htpasswd");
    const lines: string[] = [];
    for (const [user, password] of Object.entries(opts.auth.users)) {
      // bcrypt is the only hash Distribution accepts; cost 5 keeps each request at a few ms.
      const { stdout } = await execFileAsync("htpasswd", ["-nbB", "-C", "5", user, password]);
      lines.push(stdout.trim());
    }
    await writeFile(htpasswdFile, `${lines.join("\n")}\n`);
    config.auth = { htpasswd: { realm: "oci-tfstate-test", path: htpasswdFile } };
  } else if (opts.auth?.kind === "token") {
    config.auth = {
      token: {
        realm: opts.auth.realm,
        service: opts.auth.service,
        issuer: opts.auth.issuer,
        rootcertbundle: opts.auth.rootCertBundle,
      },
    };
  }
  return config;
}

/** Wraps the command so Linux kills it when this process dies, even by SIGKILL (no exit hook runs then). */
function withParentDeathSignal(command: string, args: string[]): [string, string[]] {
  const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
  if (setpriv === undefined) return [command, args];
  return [setpriv, ["--pdeathsig", "SIGKILL", "--", command, ...args]];
}

async function waitForListening(logFile: string, child: ChildProcess): Promise<string> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const log = await readFile(logFile, "utf8");
    const match = LISTENING_RE.exec(log);
    if (match?.[1] !== undefined) return match[1];
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `docker-registry exited (${child.exitCode ?? child.signalCode}) before listening:\n${tail(log)}`,
      );
    }
    if (Date.now() > deadline)
      throw new Error(`docker-registry did not report its port in time:\n${tail(log)}`);
    await sleep(POLL_INTERVAL_MS);
  }
}

async function waitForReady(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastError = "";
  for (;;) {
    try {
      const status = await probe(`${url}/v2/`);
      if (status === 200 || status === 401) return;
      lastError = `status ${status}`;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error("docker-registry exited during startup");
    if (Date.now() > deadline) throw new Error(`docker-registry at ${url} not ready: ${lastError}`);
    await sleep(POLL_INTERVAL_MS);
  }
}

/** Readiness only: certificate trust is the test's business, so TLS is not verified here. */
function probe(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const isHttps = url.startsWith("https:");
    const request = isHttps ? https.request : http.request;
    const req = request(
      url,
      { method: "GET", agent: false, rejectUnauthorized: false, timeout: 1000 },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("probe timed out")));
    req.on("error", reject);
    req.end();
  });
}

async function terminate(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
  });
  const needsKill = await Promise.race([exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (needsKill) {
    child.kill("SIGKILL");
    await exited;
  }
}

function tail(text: string, lines = 20): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
