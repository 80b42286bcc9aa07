/**
 * Every service the server answers, registered in one place: the tfstate API, gRPC health checking
 * and server reflection (v1 and v1alpha).
 */
import type { DescService } from "@bufbuild/protobuf";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { ServerReflection as ServerReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { StateService } from "../gen/tfstate/v1/state_service_pb.ts";
import { WorkspaceService } from "../gen/tfstate/v1/workspace_service_pb.ts";
import { StateInsights } from "../summary/state-insights.ts";
import type { RpcDeps, ServiceDeps } from "./deps.ts";
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

export interface RpcRoutesOptions extends RpcDeps {
  readiness: Readiness;
  /** How often a health Watch stream re-checks readiness. */
  healthWatchIntervalMs?: number | undefined;
}

/** One service and its implementation. */
export interface ServedService {
  service: DescService;
  impl: object;
}

/** The implementations of every served service, in SERVED_SERVICES order. */
export function rpcServices(opts: RpcRoutesOptions): ServedService[] {
  const index = new DescriptorIndex(SERVED_SERVICES);
  const deps: ServiceDeps = { ...opts, insights: opts.insights ?? new StateInsights(opts.coordinator) };
  return [
    { service: StateService, impl: stateService(deps) },
    { service: WorkspaceService, impl: workspaceService(deps) },
    {
      service: Health,
      impl: healthService({
        readiness: opts.readiness,
        ...(opts.healthWatchIntervalMs !== undefined ? { watchIntervalMs: opts.healthWatchIntervalMs } : {}),
      }),
    },
    { service: ServerReflection, impl: reflectionService(index) },
    { service: ServerReflectionV1Alpha, impl: reflectionServiceV1Alpha(index) },
  ];
}
