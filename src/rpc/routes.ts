/**
 * Every service the server answers, registered in one place: the tfstate API, gRPC health checking
 * and server reflection (v1 and v1alpha).
 */
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { ServerReflection as ServerReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { StateService } from "../gen/tfstate/v1/state_service_pb.ts";
import { WorkspaceService } from "../gen/tfstate/v1/workspace_service_pb.ts";
import type { RpcDeps } from "./deps.ts";
import { DescriptorIndex } from "./descriptor-index.ts";
import { healthService } from "./health-service.ts";
import type { Readiness } from "./readiness.ts";
import { reflectionService, reflectionServiceV1Alpha } from "./reflection-service.ts";
import { stateService } from "./state-service.ts";
import { workspaceService } from "./workspace-service.ts";

export const SERVED_SERVICES: readonly DescService[] = [
  StateService,
  WorkspaceService,
  Health,
  ServerReflection,
  ServerReflectionV1Alpha,
];

/** Services any caller may use without authenticating (probes come without credentials). */
export const PUBLIC_SERVICES: ReadonlySet<string> = new Set([Health.typeName]);

export interface RpcRoutesOptions extends RpcDeps {
  readiness: Readiness;
  /** How often a health Watch stream re-checks readiness. */
  healthWatchIntervalMs?: number | undefined;
}

export function rpcRoutes(opts: RpcRoutesOptions): (router: ConnectRouter) => void {
  const index = new DescriptorIndex(SERVED_SERVICES);
  return (router) => {
    router.service(StateService, stateService(opts));
    router.service(WorkspaceService, workspaceService(opts));
    router.service(
      Health,
      healthService({
        readiness: opts.readiness,
        drainSignal: opts.drainSignal,
        ...(opts.healthWatchIntervalMs !== undefined ? { watchIntervalMs: opts.healthWatchIntervalMs } : {}),
      }),
    );
    router.service(ServerReflection, reflectionService(index));
    router.service(ServerReflectionV1Alpha, reflectionServiceV1Alpha(index));
  };
}
