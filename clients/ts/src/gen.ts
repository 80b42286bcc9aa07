/**
 * The generated API types and service descriptors. The one copy of the generated code lives in the
 * repository's src/gen (buf.gen.yaml, checked for drift in CI); this package re-exports it instead
 * of keeping a second copy that could drift.
 */
export * from "../../../src/gen/tfstate/v1/error_details_pb.ts";
export * from "../../../src/gen/tfstate/v1/lock_pb.ts";
export * from "../../../src/gen/tfstate/v1/state_pb.ts";
export * from "../../../src/gen/tfstate/v1/state_service_pb.ts";
export * from "../../../src/gen/tfstate/v1/workspace_pb.ts";
export * from "../../../src/gen/tfstate/v1/workspace_service_pb.ts";
