/**
 * Core values (src/oras, src/coordinator) to and from their tfstate.v1 messages. Pure functions,
 * no I/O.
 */

import { create } from "@bufbuild/protobuf";
import type { WorkspaceSummary } from "../coordinator/types.ts";
import { LockInfoSchema, type LockInfo as ProtoLockInfo } from "../gen/tfstate/v1/lock_pb.ts";
import {
  type StateMetadata,
  StateMetadataSchema,
  type StateVersion,
  StateVersionSchema,
} from "../gen/tfstate/v1/state_pb.ts";
import { type Workspace, WorkspaceSchema } from "../gen/tfstate/v1/workspace_pb.ts";
import type {
  LockInfo,
  PutResult,
  StateHead,
  StatePayload,
  StateReader,
  VersionInfo,
} from "../oras/index.ts";
import type { StateSummary } from "../summary/state-summary.ts";
import { summaryToProto } from "./summary-convert.ts";
import { rfc3339FromTimestamp, timestampFromRfc3339 } from "./time.ts";
import { type CallerView, shownHolder } from "./view.ts";

export function lockInfoToProto(info: LockInfo): ProtoLockInfo {
  const created = timestampFromRfc3339(info.created);
  return create(LockInfoSchema, {
    id: info.id,
    operation: info.operation,
    info: info.info,
    who: info.who,
    version: info.version,
    path: info.path,
    ...(created ? { created } : {}),
  });
}

/**
 * The core's LockInfo for a Lock request. Left empty, `id` and `created` are filled in by the
 * coordinator (a random UUID, the time of the call); `path` is always the server's (the state tag).
 */
export function lockInfoFromProto(info: ProtoLockInfo | undefined): LockInfo {
  return {
    id: info?.id ?? "",
    operation: info?.operation ?? "",
    info: info?.info ?? "",
    who: info?.who ?? "",
    version: info?.version ?? "",
    created: info?.created ? rfc3339FromTimestamp(info.created) : "",
    path: "",
  };
}

/** What is known about one stored revision; every field but the first two is optional. */
export interface StateFacts {
  workspace: string;
  digest: string;
  version?: number | undefined;
  updatedAt?: string | undefined;
  size?: number | undefined;
  md5?: Uint8Array | undefined;
  storedSize?: number | undefined;
}

export function stateMetadata(f: StateFacts): StateMetadata {
  const updateTime = timestampFromRfc3339(f.updatedAt);
  return create(StateMetadataSchema, {
    workspace: f.workspace,
    digest: f.digest,
    version: BigInt(f.version ?? 0),
    ...(updateTime ? { updateTime } : {}),
    sizeBytes: BigInt(f.size ?? 0),
    md5: f.md5 ?? new Uint8Array(0),
    storedSizeBytes: BigInt(f.storedSize ?? 0),
  });
}

export function metadataFromPayload(workspace: string, p: StatePayload): StateMetadata {
  return stateMetadata({
    workspace,
    digest: p.digest,
    version: p.version,
    updatedAt: p.updatedAt,
    size: p.size,
    md5: p.md5,
    storedSize: p.storedSize,
  });
}

/** Metadata of a not-modified answer: only what the manifest says (no size, no MD5). */
export function notModifiedMetadata(workspace: string, p: StateHead): StateMetadata {
  return stateMetadata({
    workspace,
    digest: p.digest,
    version: p.version,
    updatedAt: p.updatedAt,
    storedSize: p.storedSize,
  });
}

/** Metadata sent before a streamed state: size and MD5 come at the end, in the checksum. */
export function metadataFromReader(workspace: string, r: StateReader): StateMetadata {
  return stateMetadata({
    workspace,
    digest: r.digest,
    version: r.version,
    updatedAt: r.updatedAt,
    storedSize: r.storedSize,
    ...(r.gzip ? {} : { size: r.storedSize }),
  });
}

export function metadataFromPut(workspace: string, r: PutResult): StateMetadata {
  return stateMetadata({
    workspace,
    digest: r.digest,
    version: r.version,
    size: r.size,
    md5: r.md5,
    storedSize: r.storedSize,
    updatedAt: r.updatedAt,
  });
}

export function stateVersionToProto(v: VersionInfo): StateVersion {
  const updateTime = timestampFromRfc3339(v.updatedAt);
  return create(StateVersionSchema, {
    number: BigInt(v.version),
    digest: v.digest,
    storedSizeBytes: BigInt(v.storedSize),
    ...(updateTime ? { updateTime } : {}),
  });
}

/** `summary`: the current state's, when known (its key figures only; never its outputs). */
export function workspaceToProto(
  w: WorkspaceSummary,
  basic: boolean,
  view: CallerView,
  summary?: StateSummary | undefined,
): Workspace {
  if (basic) return create(WorkspaceSchema, { name: w.name });
  const updateTime = timestampFromRfc3339(w.updatedAt);
  return create(WorkspaceSchema, {
    name: w.name,
    hasState: w.hasState,
    digest: w.hasState ? (w.digest ?? "") : "",
    storedSizeBytes: BigInt(w.hasState ? w.storedSize : 0),
    version: BigInt(w.hasState ? (w.version ?? 0) : 0),
    ...(w.hasState && updateTime ? { updateTime } : {}),
    ...(w.lock ? { lock: lockInfoToProto(shownHolder(w.lock, w.name, view)) } : {}),
    ...(w.hasState && summary ? { summary: summaryToProto(summary, false) } : {}),
    callerPermissions: view.permissions(w.name),
  });
}
