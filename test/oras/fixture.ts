/**
 * A real registry with the recording proxy in front, and backends on fresh repositories of it.
 * Every test gets its own repository, so tests in one file share a registry without sharing state.
 */
import { randomBytes } from "node:crypto";
import { after } from "node:test";
import { fetch } from "undici";
import { type Backend, type BackendConfig, createBackend } from "../../src/oras/index.ts";
import { type ProxyHandle, startProxy } from "../harness/proxy.ts";
import { type RegistryHandle, type StartRegistryOptions, startRegistry } from "../harness/registry.ts";

export interface CoreFixture {
  registry: RegistryHandle;
  proxy: ProxyHandle;
  /** A fresh repository path. */
  repo(): string;
  /** A backend through the proxy (plain HTTP, fast retries), closed after the file's tests. */
  backend(repo: string, cfg?: Partial<BackendConfig>): Backend;
  /** Raw manifest GET straight from the registry (not through the proxy). */
  rawManifest(repo: string, ref: string): Promise<{ status: number; bytes: Buffer; digest: string | null }>;
  /** Tags straight from the registry. */
  rawTags(repo: string): Promise<string[]>;
}

export async function startCoreFixture(opts: StartRegistryOptions = {}): Promise<CoreFixture> {
  const registry = await startRegistry(opts);
  const proxy = await startProxy(registry.url);
  const backends: Backend[] = [];
  after(async () => {
    await Promise.allSettled(backends.map((b) => b.close()));
    await proxy.stop();
    await registry.stop();
  });
  return {
    registry,
    proxy,
    repo: () => `tfstate/t-${randomBytes(5).toString("hex")}`,
    backend(repo, cfg = {}) {
      const b = createBackend({
        repository: `${proxy.host}/${repo}`,
        plainHTTP: true,
        retry: { maxAttempts: 3, initialBackoff: 10, maxBackoff: 50 },
        ...cfg,
      });
      backends.push(b);
      return b;
    },
    async rawManifest(repo, ref) {
      const res = await fetch(`${registry.url}/v2/${repo}/manifests/${ref}`, {
        headers: {
          accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
        },
      });
      return {
        status: res.status,
        bytes: Buffer.from(await res.arrayBuffer()),
        digest: res.headers.get("docker-content-digest"),
      };
    },
    async rawTags(repo) {
      const res = await fetch(`${registry.url}/v2/${repo}/tags/list`);
      if (res.status === 404) {
        await res.arrayBuffer();
        return [];
      }
      const body = (await res.json()) as { tags: string[] | null };
      return (body.tags ?? []).sort();
    },
  };
}

export const text = (s: string) => new TextEncoder().encode(s);
export const str = (b: Uint8Array) => new TextDecoder().decode(b);

export function lockInfo(id: string, who = "alice@host") {
  return {
    id,
    operation: "OperationTypeApply",
    info: "",
    who,
    version: "1.10.0",
    created: "2026-11-25T10:00:00.123456789Z",
    path: "",
  };
}

/** Requests the proxy saw while `fn` ran, as "METHOD path-kind" strings for readable assertions. */
export async function countRequests<T>(
  proxy: ProxyHandle,
  fn: () => Promise<T>,
): Promise<{ result: T; calls: string[] }> {
  proxy.clear();
  const result = await fn();
  const calls = proxy.requests.map(
    (r) => `${r.method} ${r.path.replace(/^\/v2\/[^?]*?\/(manifests|blobs|tags)/, "$1")}`,
  );
  return { result, calls };
}
