/**
 * Coordinators on fresh repositories of a real registry (through the recording proxy), and raw
 * registry writes that stand in for a ghoten CLI working on the same repository.
 */
import { after } from "node:test";
import { fetch } from "undici";
import { type Coordinator, type CoordinatorOptions, createCoordinator } from "../../src/coordinator/index.ts";
import type { LockEvent } from "../../src/coordinator/types.ts";
import type { BackendConfig } from "../../src/oras/index.ts";
import { EMPTY_CONFIG, pushBlob, pushManifest } from "../harness/seed.ts";
import { type CoreFixture, startCoreFixture } from "../oras/fixture.ts";

export { lockInfo, str, text } from "../oras/fixture.ts";

/** Poll interval the tests run with, so foreign changes show up fast. */
export const POLL_MS = 100;

export interface CoordinatorFixture extends CoreFixture {
  /** A coordinator on a fresh repository (or `repo`), closed after the file's tests. */
  coordinator(
    opts?: Partial<Omit<CoordinatorOptions, "backend">> & { repo?: string; backend?: Partial<BackendConfig> },
  ): { coord: Coordinator; repo: string };
  /** Writes a lock in ghoten's format straight into the registry; returns its digest. */
  pushGhotenLock(
    repo: string,
    ws: string,
    id: string,
    opts?: { who?: string; generation?: number },
  ): Promise<string>;
  /** Deletes a manifest straight from the registry, as a ghoten unlock does. */
  deleteManifest(repo: string, digest: string): Promise<void>;
  /** Requests the proxy saw for `repo` since `from` (an index into proxy.requests). */
  requestsFor(repo: string, from?: number): { method: string; path: string; status: number }[];
}

export async function startCoordinatorFixture(): Promise<CoordinatorFixture> {
  const fx = await startCoreFixture();
  const coords: Coordinator[] = [];
  after(async () => {
    await Promise.allSettled(coords.map((c) => c.close()));
  });
  return {
    ...fx,
    coordinator(opts = {}) {
      const { repo = fx.repo(), backend, ...rest } = opts;
      const coord = createCoordinator({
        backend: fx.backend(repo, backend),
        watchPollIntervalMs: POLL_MS,
        ...rest,
      });
      coords.push(coord);
      return { coord, repo };
    },
    async pushGhotenLock(repo, ws, id, opts = {}) {
      await pushBlob(fx.registry.url, repo, EMPTY_CONFIG);
      const empty = {
        mediaType: "application/vnd.oci.empty.v1+json",
        digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        size: 2,
        data: "e30=",
      };
      const info = {
        ID: id,
        Operation: "OperationTypeApply",
        Info: "",
        Who: opts.who ?? "ghoten@ci",
        Version: "1.9.0",
        Created: "2026-11-25T09:00:00.5Z",
        Path: `state-${ws}`,
      };
      const manifest = {
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        artifactType: "application/vnd.terraform.lock.v1",
        config: empty,
        layers: [empty],
        annotations: {
          "org.opencontainers.image.created": "2026-11-25T09:00:00Z",
          "org.terraform.lock.generation": JSON.stringify({
            generation: opts.generation ?? 1,
            holder_id: id,
          }),
          "org.terraform.lock.id": id,
          "org.terraform.lock.info": JSON.stringify(info),
          "org.terraform.workspace": ws,
        },
      };
      return pushManifest(fx.registry.url, repo, `locked-${ws}`, Buffer.from(JSON.stringify(manifest)));
    },
    async deleteManifest(repo, digest) {
      const res = await fetch(`${fx.registry.url}/v2/${repo}/manifests/${digest}`, { method: "DELETE" });
      await res.arrayBuffer();
      if (res.status !== 202) throw new Error(`deleting ${repo}@${digest} answered ${res.status}`);
    },
    requestsFor(repo, from = 0) {
      return fx.proxy.requests
        .slice(from)
        .filter((r) => r.path.startsWith(`/v2/${repo}/`))
        .map((r) => ({ method: r.method, path: r.path.slice(`/v2/${repo}/`.length), status: r.status }));
    },
  };
}

/** Takes the next event, failing after `ms`. */
export async function nextEvent(it: AsyncIterator<LockEvent>, ms = 2000): Promise<LockEvent> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no lock event within ${ms} ms`)), ms);
  });
  try {
    const r = await Promise.race([it.next(), timeout]);
    if (r.done) throw new Error("the watch stream ended");
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves when `cond` holds, polling every 10 ms; fails after `ms`. */
export async function eventually(cond: () => boolean, ms = 2000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
