/**
 * A server on an OCI layout directory (the embedded default storage, no registry needed), with the
 * Terraform http backend mounted as the CLI mounts it, started on port 0 and stopped after the file.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after } from "node:test";
import { createCoordinator } from "../../src/coordinator/index.ts";
import type { Coordinator } from "../../src/coordinator/types.ts";
import { stopGracefully } from "../../src/http/lifecycle.ts";
import { createServer, type ServerOptions, type TfstateServer } from "../../src/http/server.ts";
import type { Logger } from "../../src/log.ts";
import { createBackend } from "../../src/oras/index.ts";
import { createTerraformHttpRoute } from "../../src/tfhttp/index.ts";

export interface DiskServer {
  server: TfstateServer;
  coordinator: Coordinator;
  url: string;
  port: number;
  /** What the server logged, level and message. */
  logs: { level: string; msg: string; fields: Record<string, unknown> | undefined }[];
}

export async function serveOnDisk(
  opts: Partial<Omit<ServerOptions, "coordinator" | "logger">> = {},
): Promise<DiskServer> {
  const dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-edge-"));
  const logs: DiskServer["logs"] = [];
  const record =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      logs.push({ level, msg, fields });
    };
  const logger: Logger = {
    debug: record("debug"),
    info: record("info"),
    warn: record("warn"),
    error: record("error"),
  };
  const backend = createBackend({ repository: `oci-layout:${dir}` });
  const coordinator = createCoordinator({ backend, logger, watchPollIntervalMs: 200 });
  const maxStateSize = 64 * 1024 * 1024;
  const server = createServer({
    coordinator,
    logger,
    maxStateSize,
    routes: [createTerraformHttpRoute({ coordinator, logger, maxStateSize })],
    ...opts,
  });
  const { url, port } = await server.listen(0);
  after(async () => {
    await stopGracefully(server, coordinator);
    await rm(dir, { recursive: true, force: true });
  });
  return { server, coordinator, url, port, logs };
}
