/**
 * tfstate.v1.StateService: each method turns its request into one coordinator call and the result
 * into its response. Errors are left to errorInterceptor.
 */
import { createHash } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { InvalidArgumentError, NotFoundError } from "../errors.ts";
import {
  type DownloadStateResponseSchema,
  LockState,
  type StateService,
  type UploadStateRequest,
} from "../gen/tfstate/v1/state_service_pb.ts";
import { callOptions } from "./call-options.ts";
import {
  lockInfoFromProto,
  lockInfoToProto,
  metadataFromPayload,
  metadataFromPut,
  metadataFromReader,
  stateVersionToProto,
} from "./convert.ts";
import { type ServiceDeps, versionArg } from "./deps.ts";
import { stateBodyKey } from "./fast-methods.ts";
import { getStateAnswer } from "./get-state.ts";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.ts";
import { rechunk, slices } from "./rechunk.ts";
import { checkUnaryState, STREAM_CHUNK_BYTES, StateSizeError, unaryStateLimit } from "./size-limits.ts";
import { insightMethods } from "./state-insight-methods.ts";
import { UploadBody } from "./upload-body.ts";
import { callerView, shownHolder } from "./view.ts";
import { watchResponses } from "./watch-lock.ts";

type DownloadMessage = MessageInitShape<typeof DownloadStateResponseSchema>;

const MD5_BYTES = 16;

export function stateService(deps: ServiceDeps): ServiceImpl<typeof StateService> {
  const { coordinator } = deps;

  const checkMaxStateSize = (size: number) => {
    if (size <= deps.maxStateSize) return;
    throw new StateSizeError(
      `the state is ${size} bytes, more than the maximum state size of ${deps.maxStateSize} bytes`,
      deps.maxStateSize,
      size,
      "max_state_size",
    );
  };

  return {
    ...insightMethods(deps),

    async getState(req, ctx) {
      const answer = await getStateAnswer(deps, req, callOptions(ctx), unaryLimit(ctx));
      // The edge's writer sends the state buffer as it is, after the rest of the message.
      if (answer.state !== undefined && ctx.values.get(stateBodyKey)?.take(answer.state)) {
        return { metadata: answer.metadata };
      }
      return answer;
    },

    async putState(req, ctx) {
      const ws = req.workspace;
      checkMaxStateSize(req.state.byteLength);
      checkMd5(req.md5, req.state);
      const result = await coordinator.putState(ws, req.state, {
        ...callOptions(ctx),
        lockId: lockIdArg(req.lockId),
      });
      return { metadata: metadataFromPut(ws, result) };
    },

    async deleteState(req, ctx) {
      const ws = req.workspace;
      await coordinator.deleteState(ws, { ...callOptions(ctx), lockId: lockIdArg(req.lockId) });
      return {};
    },

    async lock(req, ctx) {
      const ws = req.workspace;
      const waitMs = req.wait ? Math.ceil(durationMs(req.wait)) : 0;
      if (waitMs < 0) throw new InvalidArgumentError("wait must not be negative");
      const result = await coordinator.lock(ws, lockInfoFromProto(req.lock), { ...callOptions(ctx), waitMs });
      return {
        lock: lockInfoToProto(result.info),
        generation: BigInt(result.generation),
        ...(result.leaseExpiresAt !== null ? { expireTime: timestampFromMs(result.leaseExpiresAt) } : {}),
      };
    },

    async unlock(req, ctx) {
      const ws = req.workspace;
      if (req.lockId === "" && !req.force) {
        throw new InvalidArgumentError("Unlock needs lock_id, or force to release the lock whoever holds it");
      }
      const released = await coordinator.unlock(ws, req.lockId, { ...callOptions(ctx), force: req.force });
      return released ? { releasedLock: lockInfoToProto(shownHolder(released, ws, callerView(ctx))) } : {};
    },

    async getLock(req, ctx) {
      const ws = req.workspace;
      const status = await coordinator.getLock(ws, callOptions(ctx));
      if (status.state === "unlocked") return { state: LockState.UNLOCKED };
      // An unreadable lock still blocks everyone: it is reported as held, its digest as the ID.
      return {
        state: LockState.LOCKED,
        lock: lockInfoToProto(shownHolder(status.info, ws, callerView(ctx))),
        generation: BigInt(status.generation),
        ...(status.leaseExpiresAt !== null ? { expireTime: timestampFromMs(status.leaseExpiresAt) } : {}),
      };
    },

    watchLock(req, ctx) {
      return watchResponses(coordinator, req.workspace, ctx);
    },

    async listVersions(req, ctx) {
      const ws = req.workspace;
      const size = pageSize(req.pageSize);
      const scope = `versions\u0000${ws}`;
      const after = decodePageToken(req.pageToken, scope);
      const before = after === undefined ? Number.POSITIVE_INFINITY : Number(after);
      if (Number.isNaN(before))
        throw new InvalidArgumentError("page_token is not a token this server issued");
      const all = await coordinator.listVersions(ws, callOptions(ctx));
      const newestFirst = all.filter((v) => v.version < before).sort((a, b) => b.version - a.version);
      const page = newestFirst.slice(0, size);
      const last = page.at(-1);
      return {
        versions: page.map(stateVersionToProto),
        nextPageToken: newestFirst.length > size && last ? encodePageToken(scope, String(last.version)) : "",
      };
    },

    async getVersion(req, ctx) {
      const ws = req.workspace;
      const version = versionArg(req.version);
      const payload = await coordinator.getVersion(ws, version, callOptions(ctx));
      checkUnaryState(`version ${version} of workspace ${JSON.stringify(ws)}`, payload.size, unaryLimit(ctx));
      return { metadata: metadataFromPayload(ws, { ...payload, version }), state: payload.data };
    },

    async restoreVersion(req, ctx) {
      const ws = req.workspace;
      const version = versionArg(req.version);
      const result = await coordinator.restoreVersion(ws, version, {
        ...callOptions(ctx),
        lockId: lockIdArg(req.lockId),
      });
      return { metadata: metadataFromPut(ws, result) };
    },

    async *downloadState(req, ctx): AsyncGenerator<DownloadMessage> {
      const ws = req.workspace;
      if (req.version < 0n)
        throw new InvalidArgumentError(`version must not be negative, got ${req.version}`);
      const opts = callOptions(ctx);
      if (req.version === 0n) {
        const reader = await coordinator.openRead(ws, opts);
        if (!reader) throw new NotFoundError(`workspace ${JSON.stringify(ws)} has no state`);
        yield { payload: { case: "metadata", value: metadataFromReader(ws, reader) } };
        // A chunk may be overwritten by the next one: Connect has serialized it by then.
        for await (const chunk of rechunk(reader.stream, STREAM_CHUNK_BYTES)) {
          yield { payload: { case: "chunk", value: chunk } };
        }
        yield checksum(reader.size(), reader.md5());
        return;
      }
      const version = versionArg(req.version);
      const payload = await coordinator.getVersion(ws, version, opts);
      yield { payload: { case: "metadata", value: metadataFromPayload(ws, { ...payload, version }) } };
      for (const chunk of slices(payload.data, STREAM_CHUNK_BYTES))
        yield { payload: { case: "chunk", value: chunk } };
      yield checksum(payload.size, payload.md5);
    },

    async uploadState(requests, ctx) {
      const rest = requests[Symbol.asyncIterator]();
      const first = await rest.next();
      if (first.done || first.value.payload.case !== "header") {
        throw new InvalidArgumentError("the first UploadState message must be a header");
      }
      const header = first.value.payload.value;
      const ws = header.workspace;
      if (header.md5.length !== 0 && header.md5.length !== MD5_BYTES) {
        throw new InvalidArgumentError(`md5 must be ${MD5_BYTES} bytes, got ${header.md5.length}`);
      }
      if (header.sizeBytes !== undefined) {
        if (header.sizeBytes < 0n) throw new InvalidArgumentError("size_bytes must not be negative");
        checkMaxStateSize(Number(header.sizeBytes));
      }
      const body = new UploadBody(rest as AsyncIterator<UploadStateRequest>, header, deps.maxStateSize);
      // The coordinator reads the whole stream (and stores it as a blob) before the write takes its
      // turn on the workspace, so a client that stops sending holds up nobody else there; the
      // call's cancel or deadline ends the read. The lock is checked after that, at commit.
      try {
        const result = await coordinator.putStateStream(ws, body, {
          ...callOptions(ctx),
          lockId: lockIdArg(header.lockId),
        });
        return { metadata: metadataFromPut(ws, result) };
      } catch (err) {
        throw body.failure ?? err;
      }
    },
  };

  function unaryLimit(ctx: HandlerContext): number {
    return unaryStateLimit(deps.maxMessageBytes, ctx);
  }
}

/** An empty lock_id means "I hold no lock". */
function lockIdArg(lockId: string): string | undefined {
  return lockId === "" ? undefined : lockId;
}

function checkMd5(expected: Uint8Array, data: Uint8Array): void {
  if (expected.length === 0) return;
  if (expected.length !== MD5_BYTES) {
    throw new InvalidArgumentError(`md5 must be ${MD5_BYTES} bytes, got ${expected.length}`);
  }
  const actual = createHash("md5").update(data).digest();
  if (!actual.equals(expected)) {
    throw new InvalidArgumentError(
      `md5 ${Buffer.from(expected).toString("hex")} does not match the state (its MD5 is ${actual.toString("hex")})`,
    );
  }
}

function checksum(size: number, md5: Uint8Array): DownloadMessage {
  return { payload: { case: "checksum", value: { sizeBytes: BigInt(size), md5 } } };
}
