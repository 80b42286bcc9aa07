/**
 * The service as the http backend meets it: a real registry, the real coordinator on a fresh
 * repository of it, and the real HTTP server (src/http) with the Terraform route mounted, on a
 * random port.
 */
import { after } from "node:test";
import { type CoordinatorOptions, createCoordinator } from "../../src/coordinator/index.ts";
import type { Coordinator } from "../../src/coordinator/types.ts";
import { type Authenticator, createServer, type ExtraRoute } from "../../src/http/server.ts";
import { createJsonLogger } from "../../src/log.ts";
import type { BackendConfig } from "../../src/oras/index.ts";
import {
  createTerraformHttpRoute,
  type TerraformHttpAuthorize,
  type TerraformHttpRouteOptions,
} from "../../src/tfhttp/index.ts";
import { type CoreFixture, startCoreFixture } from "../oras/fixture.ts";

export interface TfhttpFixture {
  /** "http://127.0.0.1:PORT" */
  url: string;
  coordinator: Coordinator;
  core: CoreFixture;
  /** The repository (path in the registry) behind the coordinator. */
  repository: string;
  /** Every request the Terraform route was handed (after authentication), in order. */
  requestLog: Array<{ method: string; path: string; query: string; principal: string }>;
  /** Every log record written, parsed. */
  logLines: Array<Record<string, unknown>>;
  /** A workspace name not used before in this fixture. */
  workspaceName(hint: string): string;
}

export interface TfhttpFixtureOptions {
  maxStateSize?: number;
  /** The server's one authentication point (default: everyone is anonymous). */
  authenticate?: Authenticator;
  authorize?: TerraformHttpAuthorize;
  /** Settings of the backend behind the coordinator (e.g. `lockTTL`). */
  backend?: Partial<BackendConfig>;
  coordinator?: Partial<Omit<CoordinatorOptions, "backend" | "logger">>;
  /** More options of the Terraform route. */
  route?: Partial<Omit<TerraformHttpRouteOptions, "coordinator" | "logger" | "maxStateSize" | "authorize">>;
}

/** Call at the top level of a test file; everything it starts is stopped after the file's tests. */
export async function startTfhttpFixture(opts: TfhttpFixtureOptions = {}): Promise<TfhttpFixture> {
  const stops: Array<() => Promise<void>> = [];
  // Registered before the core fixture's own hook, so the server and coordinator stop before the registry.
  after(async () => {
    for (const stop of stops.reverse()) await stop();
  });
  const core = await startCoreFixture();
  const repository = core.repo();
  const logLines: Array<Record<string, unknown>> = [];
  const logger = createJsonLogger("debug", {
    write: (line: string) => logLines.push(JSON.parse(line) as Record<string, unknown>),
  });
  const coordinator = createCoordinator({
    ...opts.coordinator,
    backend: core.backend(repository, opts.backend),
    logger,
  });
  stops.push(() => coordinator.close());

  const maxStateSize = opts.maxStateSize ?? 1024 * 1024;
  const route = createTerraformHttpRoute({
    // A short LOCK wait keeps tests that expect a 423 quick; tests of the wait set their own.
    lockWaitMs: 300,
    ...opts.route,
    coordinator,
    logger,
    maxStateSize,
    authorize: opts.authorize,
  });
  const requestLog: TfhttpFixture["requestLog"] = [];
  const recorded: ExtraRoute = {
    prefix: route.prefix,
    handle(req, res, ctx) {
      const url = req.url ?? "";
      const q = url.indexOf("?");
      return route.handle(req, res, {
        ...ctx,
        async authenticate() {
          const principal = await ctx.authenticate();
          requestLog.push({
            method: req.method ?? "",
            path: q < 0 ? url : url.slice(0, q),
            query: q < 0 ? "" : url.slice(q + 1),
            principal: principal.name,
          });
          return principal;
        },
      });
    },
  };
  const server = createServer({
    coordinator,
    logger,
    routes: [recorded],
    maxStateSize,
    authenticate: opts.authenticate,
  });
  const { url } = await server.listen(0, "127.0.0.1");
  stops.push(() => server.shutdown());

  let n = 0;
  return {
    url,
    coordinator,
    core,
    repository,
    requestLog,
    logLines,
    workspaceName: (hint) => `${hint}-${++n}`,
  };
}
