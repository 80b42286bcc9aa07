/**
 * Summaries and diffs (src/summary) to their tfstate.v1 messages. Pure functions, no I/O.
 */
import { create } from "@bufbuild/protobuf";
import {
  ChangeKind,
  type DiffSide,
  DiffSideSchema,
  type DiffVersionsResponse,
  DiffVersionsResponseSchema,
} from "../gen/tfstate/v1/state_service_pb.ts";
import {
  StateFormat,
  type StateOutput,
  StateOutputSchema,
  type StateSummary,
  StateSummarySchema,
} from "../gen/tfstate/v1/summary_pb.ts";
import type { ChangeKind as CoreChangeKind } from "../summary/state-diff.ts";
import type { DiffSide as CoreDiffSide, RevisionDiff } from "../summary/state-insights.ts";
import type {
  StateFormat as CoreFormat,
  StateSummary as CoreSummary,
  MaskedOutput,
} from "../summary/state-summary.ts";

const FORMATS: Record<CoreFormat, StateFormat> = {
  terraform_json: StateFormat.TERRAFORM_JSON,
  encrypted: StateFormat.ENCRYPTED,
  opaque: StateFormat.OPAQUE,
};

const KINDS: Record<CoreChangeKind, ChangeKind> = {
  added: ChangeKind.ADDED,
  removed: ChangeKind.REMOVED,
  changed: ChangeKind.CHANGED,
};

export function formatToProto(f: CoreFormat): StateFormat {
  return FORMATS[f];
}

export function outputToProto(o: MaskedOutput): StateOutput {
  return create(StateOutputSchema, o);
}

/**
 * `full`: with outputs and the resource list (GetStateSummary); otherwise the key figures a
 * Workspace carries.
 */
export function summaryToProto(s: CoreSummary, full: boolean): StateSummary {
  return create(StateSummarySchema, {
    format: FORMATS[s.format],
    detail: s.detail,
    serial: BigInt(s.serial),
    lineage: s.lineage,
    terraformVersion: s.terraformVersion,
    stateVersion: s.stateVersion,
    resourceCount: BigInt(s.resourceCount),
    dataSourceCount: BigInt(s.dataSourceCount),
    resourcesByType: s.byType.map(([key, count]) => ({ key, count: BigInt(count) })),
    resourcesByModule: s.byModule.map(([key, count]) => ({ key, count: BigInt(count) })),
    outputCount: s.outputs.length,
    ...(full
      ? {
          outputs: s.outputs.map(outputToProto),
          resources: s.resources.map((r) => ({ ...r, instanceCount: BigInt(r.instanceCount) })),
          resourcesTruncated: s.resourcesTruncated,
        }
      : {}),
  });
}

function sideToProto(s: CoreDiffSide): DiffSide {
  return create(DiffSideSchema, {
    version: BigInt(s.version ?? 0),
    digest: s.digest,
    serial: BigInt(s.serial),
    lineage: s.lineage,
  });
}

export function diffToProto(d: RevisionDiff): DiffVersionsResponse {
  return create(DiffVersionsResponseSchema, {
    from: sideToProto(d.from),
    to: sideToProto(d.to),
    resources: d.resources.map((r) => ({ ...r, kind: KINDS[r.kind] })),
    outputs: d.outputs.map((o) => ({
      name: o.name,
      kind: KINDS[o.kind],
      ...(o.from ? { from: outputToProto(o.from) } : {}),
      ...(o.to ? { to: outputToProto(o.to) } : {}),
    })),
    pathsTruncated: d.pathsTruncated,
  });
}
