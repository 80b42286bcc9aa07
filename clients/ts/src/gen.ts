/**
 * The generated API types and service descriptors: the package's own copy, generated from proto/
 * into src/gen by buf.gen.ts-client.yaml (scripts/generate.sh; CI fails when it drifts), so the
 * published package carries it.
 */
export * from "./gen/tfstate/v1/error_details_pb.js";
export * from "./gen/tfstate/v1/lock_pb.js";
export * from "./gen/tfstate/v1/state_pb.js";
export * from "./gen/tfstate/v1/state_service_pb.js";
export * from "./gen/tfstate/v1/summary_pb.js";
export * from "./gen/tfstate/v1/workspace_pb.js";
export * from "./gen/tfstate/v1/workspace_service_pb.js";
