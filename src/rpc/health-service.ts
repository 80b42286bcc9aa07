/**
 * grpc.health.v1.Health, so load balancers, Kubernetes gRPC probes and grpc_health_probe can ask
 * whether the service works: SERVING while the registry answers and the server is not draining.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ServiceImpl } from "@connectrpc/connect";
import { NotFoundError } from "../errors.ts";
import { type Health, HealthCheckResponse_ServingStatus as Status } from "../gen/grpc/health/v1/health_pb.ts";
import { StateService } from "../gen/tfstate/v1/state_service_pb.ts";
import { WorkspaceService } from "../gen/tfstate/v1/workspace_service_pb.ts";
import { ServerDrainingError } from "./fast-methods.ts";
import type { Readiness } from "./readiness.ts";

/** The server as a whole ("") and each API service; all depend on the same registry. */
export const HEALTH_SERVICES: readonly string[] = ["", StateService.typeName, WorkspaceService.typeName];

export interface HealthDeps {
  readiness: Readiness;
  /** How often a Watch stream re-checks. Default 5 s. */
  watchIntervalMs?: number;
}

export function healthService(deps: HealthDeps): ServiceImpl<typeof Health> {
  const interval = deps.watchIntervalMs ?? 5000;
  const current = async () => ((await deps.readiness.status()).ready ? Status.SERVING : Status.NOT_SERVING);

  return {
    async check(req) {
      if (!HEALTH_SERVICES.includes(req.service)) {
        throw new NotFoundError(`unknown service ${JSON.stringify(req.service)}`);
      }
      return { status: await current() };
    },

    async list() {
      const status = await current();
      return { statuses: Object.fromEntries(HEALTH_SERVICES.map((name) => [name, { status }])) };
    },

    async *watch(req, ctx) {
      const known = HEALTH_SERVICES.includes(req.service);
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const status = known ? await current() : Status.SERVICE_UNKNOWN;
        if (status !== last) {
          yield { status };
          last = status;
        }
        await sleep(interval, undefined, { signal: ctx.signal }).catch(() => {});
      }
      if (!(ctx.signal.reason instanceof ServerDrainingError)) throw ctx.signal.reason;
      // Draining: tell the watcher first, so it moves traffic before the stream ends.
      if (known && last !== Status.NOT_SERVING) yield { status: Status.NOT_SERVING };
      throw ctx.signal.reason;
    },
  };
}
