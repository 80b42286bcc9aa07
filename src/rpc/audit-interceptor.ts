/**
 * The audit record of every RPC that reads or changes state (src/audit/audit-record.ts), written
 * once its result is known: when a unary call returns or fails, when a stream ends. It sits inside
 * telemetry and outside error mapping, so it sees the final code of every call the request gate let
 * in; calls the gate refuses (no or bad credentials) are recorded by `auditGateRefusal`.
 *
 * Recorded: the calls that return state content (GetState, DownloadState, GetVersion: reads,
 * sampled by `--audit-reads`) and those that change a state, a lock or a workspace. Not recorded:
 * GetLock, WatchLock, ListVersions, ListWorkspaces, GetWorkspace. They return lock holders and
 * manifest facts, never state content, and WatchLock is a stream per open dashboard; an audit of
 * who saw or changed which state has nothing to learn from them.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { AuditLog } from "../audit/audit-log.ts";
import type { AuditEvent } from "../audit/audit-record.ts";
import { REQUEST_ID_HEADER, requestIdFrom } from "../audit/request-id.ts";
import type { StateMetadata } from "../gen/tfstate/v1/state_pb.ts";
import {
  type DeleteStateRequest,
  type DownloadStateResponse,
  type GetStateResponse,
  type LockRequest,
  type LockResponse,
  type PutStateRequest,
  type RestoreVersionRequest,
  StateService,
  type UnlockRequest,
  type UnlockResponse,
  type UploadStateRequest,
} from "../gen/tfstate/v1/state_service_pb.ts";
import {
  type CreateWorkspaceRequest,
  type DeleteWorkspaceRequest,
  WorkspaceService,
} from "../gen/tfstate/v1/workspace_service_pb.ts";
import { remoteAddressKey } from "./peer-address.ts";
import { principalKey } from "./principal.ts";

/** What a record says beyond who and how it ended. */
interface Facts {
  workspace?: string | undefined;
  version?: number | undefined;
  digest?: string | undefined;
  lockId?: string | undefined;
}

interface Audited {
  access: "read" | "change";
  /** From the request message (for a request stream, its first message). */
  request(message: unknown): Facts;
  /** From a response message (for a response stream, each one). */
  response?(message: unknown): Facts;
}

function audited<I, O>(access: Audited["access"], request: (m: I) => Facts, response?: (m: O) => Facts) {
  return {
    access,
    request: request as (m: unknown) => Facts,
    ...(response ? { response: response as (m: unknown) => Facts } : {}),
  } satisfies Audited;
}

const ofWorkspace = (m: { workspace: string }): Facts => ({ workspace: m.workspace });
const ofWrite = (m: { workspace: string; lockId: string }): Facts => ({
  workspace: m.workspace,
  lockId: m.lockId,
});
const ofMetadata = (metadata: StateMetadata | undefined): Facts =>
  metadata === undefined ? {} : { version: Number(metadata.version), digest: metadata.digest };
const withMetadata = (m: { metadata?: StateMetadata | undefined }) => ofMetadata(m.metadata);

/** Every audited method. */
const AUDITED: ReadonlyMap<DescMethod, Audited> = new Map<DescMethod, Audited>([
  [StateService.method.getState, audited("read", ofWorkspace, (m: GetStateResponse) => withMetadata(m))],
  [
    StateService.method.downloadState,
    audited("read", ofWorkspace, (m: DownloadStateResponse) =>
      m.payload.case === "metadata" ? ofMetadata(m.payload.value) : {},
    ),
  ],
  [StateService.method.getVersion, audited("read", ofWorkspace, withMetadata)],
  [StateService.method.putState, audited("change", (m: PutStateRequest) => ofWrite(m), withMetadata)],
  [
    StateService.method.uploadState,
    audited(
      "change",
      (m: UploadStateRequest) => (m.payload.case === "header" ? ofWrite(m.payload.value) : {}),
      withMetadata,
    ),
  ],
  [StateService.method.deleteState, audited("change", (m: DeleteStateRequest) => ofWrite(m))],
  [
    StateService.method.restoreVersion,
    audited("change", (m: RestoreVersionRequest) => ofWrite(m), withMetadata),
  ],
  [
    StateService.method.lock,
    audited(
      "change",
      (m: LockRequest) => ({ workspace: m.workspace, lockId: m.lock?.id }),
      (m: LockResponse) => ({ lockId: m.lock?.id }),
    ),
  ],
  [
    StateService.method.unlock,
    audited(
      "change",
      (m: UnlockRequest) => ofWrite(m),
      // A forced Unlock may name no ID: the released lock's then says which lock went.
      (m: UnlockResponse) => ({ lockId: m.releasedLock?.id }),
    ),
  ],
  [
    WorkspaceService.method.createWorkspace,
    audited("change", (m: CreateWorkspaceRequest) => ({ workspace: m.name })),
  ],
  [
    WorkspaceService.method.deleteWorkspace,
    audited("change", (m: DeleteWorkspaceRequest) => ({ workspace: m.name, lockId: m.lockId })),
  ],
]);

/** Adds what `more` knows; a lock ID the request named wins over the response's. */
function merge(facts: Facts, more: Facts): void {
  if (more.workspace) facts.workspace ??= more.workspace;
  if (more.version !== undefined) facts.version = more.version;
  if (more.digest) facts.digest = more.digest;
  if (more.lockId) facts.lockId ||= more.lockId;
}

function resultOf(err: unknown): string {
  return err === undefined ? "ok" : codeToString(ConnectError.from(err).code);
}

export function auditInterceptor(audit: AuditLog): Interceptor {
  return (next) => async (req) => {
    const entry = AUDITED.get(req.method);
    if (entry === undefined || (entry.access === "read" && !audit.sampleRead())) return next(req);
    const facts: Facts = {};
    const values = req.contextValues;
    const base = {
      requestId: requestIdFrom(req.header.get(REQUEST_ID_HEADER)),
      surface: "rpc",
      method: `${req.service.typeName}/${req.method.name}`,
    } as const;
    let done = false;
    const finish = (err: unknown) => {
      if (done) return;
      done = true;
      const event: AuditEvent = {
        ...base,
        ...facts,
        principal: values.get(principalKey),
        remoteAddress: values.get(remoteAddressKey),
        result: resultOf(err),
      };
      audit.record(event);
    };
    const request = req.stream
      ? { ...req, message: tapFirst(req.message, (m) => merge(facts, entry.request(m))) }
      : req;
    if (!req.stream) merge(facts, entry.request(req.message));
    try {
      const res = await next(request);
      if (!res.stream) {
        if (entry.response) merge(facts, entry.response(res.message));
        finish(undefined);
        return res;
      }
      const { response } = entry;
      const see = response ? (m: unknown) => merge(facts, response(m)) : undefined;
      return { ...res, message: tapStream(res.message, see, finish) };
    } catch (err) {
      finish(err);
      throw err;
    }
  };
}

/**
 * Records an audited call the request gate refused (no or bad credentials): before the request
 * was read, so without a workspace. Reads are sampled like the others.
 */
export function auditGateRefusal(audit: AuditLog, ctx: HandlerContext, err: unknown): void {
  const entry = AUDITED.get(ctx.method);
  if (entry === undefined || (entry.access === "read" && !audit.sampleRead())) return;
  audit.record({
    requestId: requestIdFrom(ctx.requestHeader.get(REQUEST_ID_HEADER)),
    principal: ctx.values.get(principalKey),
    remoteAddress: ctx.values.get(remoteAddressKey),
    surface: "rpc",
    method: `${ctx.service.typeName}/${ctx.method.name}`,
    result: resultOf(err),
  });
}

/** The request stream, telling `see` its first message as it passes. */
async function* tapFirst<T>(source: AsyncIterable<T>, see: (m: T) => void): AsyncIterable<T> {
  let first = true;
  for await (const m of source) {
    if (first) {
      first = false;
      see(m);
    }
    yield m;
  }
}

/** The response stream, telling `see` each message and `end` how it ended (a reader that stops: canceled). */
function tapStream<T>(
  source: AsyncIterable<T>,
  see: ((m: T) => void) | undefined,
  end: (err: unknown) => void,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = source[Symbol.asyncIterator]();
      return {
        next: () =>
          it.next().then(
            (r) => {
              if (r.done) end(undefined);
              else see?.(r.value);
              return r;
            },
            (err: unknown) => {
              end(err);
              throw err;
            },
          ),
        async return(value?: unknown) {
          end(new ConnectError("the client went away", Code.Canceled));
          await it.return?.(value);
          return { done: true, value: undefined };
        },
        async throw(err?: unknown) {
          end(err);
          return it.throw ? it.throw(err) : Promise.reject(err);
        },
      };
    },
  };
}
