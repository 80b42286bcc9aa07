/**
 * Credentials from Docker's config.json, as `docker login` leaves them: `credHelpers[host]`, then
 * `credsStore`, then the inline `auths` entry. Helpers run as `docker-credential-<name> get` with the
 * server on stdin. "Not found" from a helper means anonymous; so does a missing config file.
 */
import { spawn } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import path from "node:path";
import { InvalidArgumentError } from "../errors.ts";
import type { Credential, CredentialFunc, CredentialLogger } from "./credentials.ts";

export interface DockerConfigOptions {
  /** config.json path; default `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
  configPath?: string | undefined;
  logger?: CredentialLogger | undefined;
  helperTimeoutMs?: number | undefined;
  /** How long a helper's answer is reused (found or not found). */
  helperCacheMs?: number | undefined;
  /** How long a helper failure is remembered before the helper is run again. */
  helperErrorCacheMs?: number | undefined;
  /** Environment for the default path and the helper's PATH; default process.env. */
  env?: NodeJS.ProcessEnv | undefined;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

interface DockerConfigFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

const DOCKER_HUB_SERVER = "https://index.docker.io/v1/";
const DOCKER_HUB_HOSTS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);
const HELPER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const MAX_HELPER_OUTPUT = 1024 * 1024;

export function defaultDockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG ? env.DOCKER_CONFIG : path.join(homedir(), ".docker");
  return path.join(dir, "config.json");
}

/** `https://ghcr.io/v2/` → `ghcr.io`; Docker Hub's legacy key maps to `docker.io`. */
export function normalizeServerKey(key: string): string {
  let s = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const slash = s.indexOf("/");
  if (slash >= 0) s = s.slice(0, slash);
  s = s.toLowerCase();
  return DOCKER_HUB_HOSTS.has(s) ? "docker.io" : s;
}

/** What a credential helper is given on stdin for a host. */
function helperServer(host: string): string {
  return normalizeServerKey(host) === "docker.io" ? DOCKER_HUB_SERVER : host;
}

function credentialFromEntry(entry: AuthEntry, configPath: string, key: string): Credential | undefined {
  if (entry.registrytoken) return { accessToken: entry.registrytoken };
  if (entry.identitytoken) {
    return { username: entry.username, refreshToken: entry.identitytoken };
  }
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) {
      throw new InvalidArgumentError(
        `docker config ${JSON.stringify(configPath)}: auths[${JSON.stringify(key)}].auth is not base64 of user:password`,
      );
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username && entry.password !== undefined) {
    return { username: entry.username, password: entry.password };
  }
  return undefined;
}

interface CachedHelperResult {
  value: Credential | undefined;
  error: Error | undefined;
  until: number;
}

export function dockerConfigCredentials(opts: DockerConfigOptions = {}): CredentialFunc {
  const env = opts.env ?? process.env;
  const configPath = opts.configPath ?? defaultDockerConfigPath(env);
  const timeoutMs = opts.helperTimeoutMs ?? 30_000;
  const cacheMs = opts.helperCacheMs ?? 5 * 60_000;
  const errorCacheMs = opts.helperErrorCacheMs ?? 10_000;
  const logger = opts.logger;

  let parsed: { mtimeMs: number; size: number; config: DockerConfigFile } | undefined;
  const helperCache = new Map<string, CachedHelperResult>();
  const helperInflight = new Map<string, Promise<Credential | undefined>>();

  async function loadConfig(): Promise<DockerConfigFile | undefined> {
    let info: { mtimeMs: number; size: number };
    try {
      info = await stat(configPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new InvalidArgumentError(`docker config ${JSON.stringify(configPath)} cannot be read`, {
        cause: err,
      });
    }
    if (parsed !== undefined && parsed.mtimeMs === info.mtimeMs && parsed.size === info.size)
      return parsed.config;
    let text: string;
    try {
      text = await readFile(configPath, "utf8");
    } catch (err) {
      throw new InvalidArgumentError(`docker config ${JSON.stringify(configPath)} cannot be read`, {
        cause: err,
      });
    }
    let config: unknown;
    try {
      config = text.trim() === "" ? {} : JSON.parse(text);
    } catch (err) {
      throw new InvalidArgumentError(`docker config ${JSON.stringify(configPath)} is not valid JSON`, {
        cause: err,
      });
    }
    if (config === null || typeof config !== "object" || Array.isArray(config)) {
      throw new InvalidArgumentError(`docker config ${JSON.stringify(configPath)} is not a JSON object`);
    }
    parsed = { mtimeMs: info.mtimeMs, size: info.size, config: config as DockerConfigFile };
    return parsed.config;
  }

  function findAuthEntry(config: DockerConfigFile, host: string): Credential | undefined {
    const want = normalizeServerKey(host);
    const auths = config.auths ?? {};
    // An exact key wins over a normalised match (`ghcr.io` over `https://ghcr.io/v1/`).
    const exact = auths[host];
    if (exact !== undefined) {
      const cred = credentialFromEntry(exact, configPath, host);
      if (cred !== undefined) return cred;
    }
    for (const [key, entry] of Object.entries(auths)) {
      if (normalizeServerKey(key) !== want) continue;
      const cred = credentialFromEntry(entry, configPath, key);
      if (cred !== undefined) return cred;
    }
    return undefined;
  }

  function helperFor(config: DockerConfigFile, host: string): string | undefined {
    const want = normalizeServerKey(host);
    for (const [key, helper] of Object.entries(config.credHelpers ?? {})) {
      if (key === host || normalizeServerKey(key) === want) return helper;
    }
    return config.credsStore || undefined;
  }

  async function fromHelper(
    helper: string,
    host: string,
    signal?: AbortSignal,
  ): Promise<Credential | undefined> {
    const server = helperServer(host);
    const key = `${helper}\n${server}`;
    const cached = helperCache.get(key);
    if (cached !== undefined && cached.until > Date.now()) {
      if (cached.error !== undefined) throw cached.error;
      return cached.value;
    }
    let inflight = helperInflight.get(key);
    if (inflight === undefined) {
      // The shared run ignores any one caller's signal, so a canceled caller cannot poison the cache.
      inflight = runHelper(helper, server).then(
        (value) => {
          helperCache.set(key, { value, error: undefined, until: Date.now() + cacheMs });
          return value;
        },
        (error: Error) => {
          helperCache.set(key, { value: undefined, error, until: Date.now() + errorCacheMs });
          throw error;
        },
      );
      const settled = inflight.finally(() => helperInflight.delete(key));
      settled.catch(() => {});
      helperInflight.set(key, inflight);
    }
    return untilAborted(inflight, signal);
  }

  async function runHelper(helper: string, server: string): Promise<Credential | undefined> {
    if (!HELPER_NAME_RE.test(helper)) {
      throw new InvalidArgumentError(
        `docker config ${JSON.stringify(configPath)} names credential helper ${JSON.stringify(helper)}, ` +
          "which is not a valid helper name",
      );
    }
    const program = `docker-credential-${helper}`;
    const result = await execHelper(program, server, timeoutMs, env);
    if (result.kind === "missing") {
      logger?.warn("docker credential helper not found on PATH; using anonymous access", { helper: program });
      return undefined;
    }
    if (result.kind === "timeout") {
      throw new InvalidArgumentError(
        `docker credential helper ${program} did not answer within ${timeoutMs} ms`,
      );
    }
    if (result.exitCode !== 0) {
      const output = `${result.stdout}\n${result.stderr}`;
      if (/credentials not found/i.test(output)) return undefined;
      logger?.warn("docker credential helper failed; using anonymous access", {
        helper: program,
        exitCode: result.exitCode,
        // Helpers print their error message, never the secret, on failure.
        message: result.stderr.trim().slice(0, 200) || result.stdout.trim().slice(0, 200),
      });
      return undefined;
    }
    let answer: { Username?: unknown; Secret?: unknown };
    try {
      answer = JSON.parse(result.stdout) as typeof answer;
    } catch {
      throw new InvalidArgumentError(
        `docker credential helper ${program} printed something that is not JSON`,
      );
    }
    const username = typeof answer.Username === "string" ? answer.Username : "";
    const secret = typeof answer.Secret === "string" ? answer.Secret : "";
    if (secret === "") return undefined;
    // Docker's convention: a helper that stores an identity token reports the user "<token>".
    if (username === "<token>") return { refreshToken: secret };
    return { username, password: secret };
  }

  return async (host, signal) => {
    const config = await loadConfig();
    if (config === undefined) return undefined;
    const helper = helperFor(config, host);
    if (helper !== undefined) {
      const cred = await fromHelper(helper, host, signal);
      if (cred !== undefined) return cred;
    }
    return findAuthEntry(config, host);
  };
}

type HelperResult =
  | { kind: "missing" }
  | { kind: "timeout" }
  | { kind: "exited"; exitCode: number; stdout: string; stderr: string };

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

function execHelper(
  program: string,
  server: string,
  timeoutMs: number,
  env: NodeJS.ProcessEnv,
): Promise<HelperResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, ["get"], { env, stdio: ["pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let outSize = 0;
    let settled = false;
    const finish = (result: HelperResult | Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish({ kind: "timeout" });
    }, timeoutMs);
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      outSize += chunk.byteLength;
      if (outSize <= MAX_HELPER_OUTPUT) into.push(chunk);
    };
    child.stdout.on("data", collect(stdout));
    child.stderr.on("data", collect(stderr));
    child.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") finish({ kind: "missing" });
      else finish(err);
    });
    child.on("close", (code) => {
      finish({
        kind: "exited",
        exitCode: code ?? -1,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
      });
    });
    child.stdin.on("error", () => {
      // The helper may exit without reading stdin; its exit status tells what happened.
    });
    child.stdin.end(server);
  });
}
