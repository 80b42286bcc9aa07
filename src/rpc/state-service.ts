/**
 * tfstate.v1.StateService: each method turns its request into one coordinator call and the result
 * into its response. Errors are left to errorInterceptor.
 */
import { createHash } from "node:crypto";
import { create, type MessageInitShape, toBinary, toJsonString } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { LockEvent } from "../coordinator/types.ts";
import { InvalidArgumentError, NotFoundError, UnavailableError } from "../errors.ts";
import {
  type DownloadStateResponseSchema,
  LockEventKind,
  type StateService,
  type UploadStateRequest,
  type WatchLockResponse,
  WatchLockResponseSchema,
} from "../gen/tfstate/v1/state_service_pb.ts";
import { callOptions } from "./call-options.ts";
import {
  lockInfoFromProto,
  lockInfoToProto,
  metadataFromPayload,
  metadataFromPut,
  metadataFromReader,
  notModifiedMetadata,
  stateVersionToProto,
} from "./convert.ts";
import { type RpcDeps, versionArg, workspaceArg } from "./deps.ts";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.ts";
import { dataFrame, type FrameCodec, frameCodec, type RawResponse, rawResponseKey } from "./raw-response.ts";
import { rechunk, slices } from "./rechunk.ts";
import { checkUnaryState, STREAM_CHUNK_BYTES, StateSizeError, unaryStateLimit } from "./size-limits.ts";
import { UploadBody } from "./upload-body.ts";

type DownloadMessage = MessageInitShape<typeof DownloadStateResponseSchema>;

const MD5_BYTES = 16;

export function stateService(deps: RpcDeps): ServiceImpl<typeof StateService> {
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
    async getState(req, ctx) {
      const ws = workspaceArg(req.workspace);
      if (req.ifNoneMatch !== "") {
        // The manifest alone says whether the caller's copy is current: no blob read for that.
        const head = await coordinator.stateHead(ws, callOptions(ctx));
        if (!head) throw new NotFoundError(`workspace ${JSON.stringify(ws)} has no state`);
        if (head.digest === req.ifNoneMatch) {
          return { metadata: notModifiedMetadata(ws, head), notModified: true };
        }
      }
      const payload = await coordinator.getState(ws, callOptions(ctx));
      if (!payload) throw new NotFoundError(`workspace ${JSON.stringify(ws)} has no state`);
      checkUnaryState(`the state of workspace ${JSON.stringify(ws)}`, payload.size, unaryLimit(ctx));
      return { metadata: metadataFromPayload(ws, payload), state: payload.data };
    },

    async putState(req, ctx) {
      const ws = workspaceArg(req.workspace);
      checkMaxStateSize(req.state.byteLength);
      checkMd5(req.md5, req.state);
      const result = await coordinator.putState(ws, req.state, {
        ...callOptions(ctx),
        lockId: lockIdArg(req.lockId),
      });
      return { metadata: metadataFromPut(ws, result) };
    },

    async deleteState(req, ctx) {
      const ws = workspaceArg(req.workspace);
      await coordinator.deleteState(ws, { ...callOptions(ctx), lockId: lockIdArg(req.lockId) });
      return {};
    },

    async lock(req, ctx) {
      const ws = workspaceArg(req.workspace);
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
      const ws = workspaceArg(req.workspace);
      if (req.lockId === "" && !req.force) {
        throw new InvalidArgumentError("Unlock needs lock_id, or force to release the lock whoever holds it");
      }
      const released = await coordinator.unlock(ws, req.lockId, { ...callOptions(ctx), force: req.force });
      return released ? { releasedLock: lockInfoToProto(released) } : {};
    },

    async getLock(req, ctx) {
      const ws = workspaceArg(req.workspace);
      const status = await coordinator.getLock(ws, callOptions(ctx));
      if (status.state === "unlocked") return {};
      // An unreadable lock still blocks everyone: it is reported as held, its digest as the ID.
      return {
        lock: lockInfoToProto(status.info),
        generation: BigInt(status.generation),
        ...(status.leaseExpiresAt !== null ? { expireTime: timestampFromMs(status.leaseExpiresAt) } : {}),
      };
    },

    watchLock(req, ctx) {
      const ws = req.workspace === "" ? undefined : workspaceArg(req.workspace);
      if (deps.drainSignal.aborted) throw shuttingDown();
      const signal = AbortSignal.any([ctx.signal, deps.drainSignal]);
      return watchResponses(coordinator.watchLock(ws, signal), {
        requested: req.workspace,
        callSignal: ctx.signal,
        drainSignal: deps.drainSignal,
        raw: ctx.values.get(rawResponseKey),
        codec: frameCodec(ctx.requestHeader.get("content-type")),
      });
    },

    async listVersions(req, ctx) {
      const ws = workspaceArg(req.workspace);
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
      const ws = workspaceArg(req.workspace);
      const version = versionArg(req.version);
      const payload = await coordinator.getVersion(ws, version, callOptions(ctx));
      checkUnaryState(`version ${version} of workspace ${JSON.stringify(ws)}`, payload.size, unaryLimit(ctx));
      return { metadata: metadataFromPayload(ws, { ...payload, version }), state: payload.data };
    },

    async restoreVersion(req, ctx) {
      const ws = workspaceArg(req.workspace);
      const version = versionArg(req.version);
      const result = await coordinator.restoreVersion(ws, version, {
        ...callOptions(ctx),
        lockId: lockIdArg(req.lockId),
      });
      return { metadata: metadataFromPut(ws, result) };
    },

    async *downloadState(req, ctx): AsyncGenerator<DownloadMessage> {
      const ws = workspaceArg(req.workspace);
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
      const ws = workspaceArg(header.workspace);
      if (header.md5.length !== 0 && header.md5.length !== MD5_BYTES) {
        throw new InvalidArgumentError(`md5 must be ${MD5_BYTES} bytes, got ${header.md5.length}`);
      }
      if (header.sizeBytes !== undefined) {
        if (header.sizeBytes < 0n) throw new InvalidArgumentError("size_bytes must not be negative");
        checkMaxStateSize(Number(header.sizeBytes));
      }
      const body = new UploadBody(rest as AsyncIterator<UploadStateRequest>, header, deps.maxStateSize);
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

const EVENT_KINDS = {
  snapshot: LockEventKind.SNAPSHOT,
  locked: LockEventKind.LOCKED,
  unlocked: LockEventKind.UNLOCKED,
} as const;

interface WatchResponsesOptions {
  /** The workspace the caller asked for ("" for all). */
  requested: string;
  callSignal: AbortSignal;
  drainSignal: AbortSignal;
  /** Where frames can be written past Connect's pipeline; without it every message goes through it. */
  raw: RawResponse | undefined;
  codec: FrameCodec;
}

/**
 * A WatchLock stream's responses. The first message goes through Connect, which sends the headers
 * with it; from then on, while Connect waits for the next message, events are written as
 * pre-encoded frames (see raw-response.ts), and the next message handed to Connect is the stream's
 * end, or an event too large to send uncompressed. A stream ended by the shutdown drain fails with
 * UNAVAILABLE so the client reconnects elsewhere; one the client cancelled just ends (its side has
 * ended already). A plain iterator rather than an async generator: a generator stage costs promise
 * hops per message and memory per stream, for every watcher at once.
 */
function watchResponses(
  events: AsyncIterable<LockEvent>,
  opts: WatchResponsesOptions,
): AsyncIterable<WatchLockResponse> {
  const { requested, callSignal, drainSignal, raw, codec } = opts;
  return {
    [Symbol.asyncIterator]() {
      const source = events[Symbol.asyncIterator]();
      let finished = false;
      let opened = false;
      const done = (): IteratorResult<WatchLockResponse> => ({ done: true, value: undefined });
      const ended = (): IteratorResult<WatchLockResponse> => {
        finished = true;
        if (callSignal.aborted) return done();
        throw shuttingDown();
      };
      const failed = (err: unknown): IteratorResult<WatchLockResponse> => {
        if (!drainSignal.aborted || callSignal.aborted) {
          finished = true;
          throw err;
        }
        return ended();
      };
      const viaConnect = () =>
        source.next().then((r): IteratorResult<WatchLockResponse> => {
          if (r.done) return ended();
          opened = true;
          return { done: false, value: watchMessage(r.value, requested) };
        }, failed);
      const direct = async (out: RawResponse): Promise<IteratorResult<WatchLockResponse>> => {
        for (;;) {
          let r: IteratorResult<LockEvent>;
          try {
            r = await source.next();
          } catch (err) {
            return failed(err);
          }
          if (r.done) return ended();
          const frame = watchFrame(r.value, requested, codec, out.maxPayloadBytes);
          if (frame === undefined) return { done: false, value: watchMessage(r.value, requested) };
          if (!out.write(frame)) await out.drained();
        }
      };
      return {
        next() {
          if (finished) return Promise.resolve(done());
          return raw !== undefined && opened ? direct(raw) : viaConnect();
        },
        async return() {
          finished = true;
          await source.return?.();
          return done();
        },
      };
    },
  };
}

/** Frames per event and codec, shared like the messages below. */
const watchFrames = new WeakMap<LockEvent, Partial<Record<FrameCodec, Buffer | null>>>();

/**
 * The event's data frame, or undefined when it must go through Connect: a larger message (a lock
 * with a long info) is compressed by Connect as the stream negotiated, and checked against the
 * write limit.
 */
function watchFrame(
  event: LockEvent,
  requested: string,
  codec: FrameCodec,
  maxPayloadBytes: number,
): Buffer | undefined {
  const encode = () => encodeFrame(watchMessage(event, requested), codec, maxPayloadBytes);
  if (event.kind === "snapshot_complete") return encode();
  let frames = watchFrames.get(event);
  if (frames === undefined) {
    frames = {};
    watchFrames.set(event, frames);
  }
  let frame = frames[codec];
  if (frame === undefined) {
    frame = encode() ?? null;
    frames[codec] = frame;
  }
  return frame ?? undefined;
}

function encodeFrame(
  message: WatchLockResponse,
  codec: FrameCodec,
  maxPayloadBytes: number,
): Buffer | undefined {
  const payload =
    codec === "proto"
      ? toBinary(WatchLockResponseSchema, message)
      : Buffer.from(toJsonString(WatchLockResponseSchema, message));
  return payload.byteLength > maxPayloadBytes ? undefined : dataFrame(payload);
}

/**
 * The hub hands the same event object to every stream it reaches, so each event's response is built
 * once and shared (it is only read from then on): with thousands of watchers, building it per
 * stream was a large part of the cost of a fan-out.
 */
const watchMessages = new WeakMap<LockEvent, WatchLockResponse>();

function watchMessage(event: LockEvent, requested: string): WatchLockResponse {
  if (event.kind === "snapshot_complete") {
    return create(WatchLockResponseSchema, {
      workspace: requested,
      kind: LockEventKind.SNAPSHOT_COMPLETE,
      observeTime: timestampFromMs(event.observedAt),
    });
  }
  let message = watchMessages.get(event);
  if (message === undefined) {
    message = create(WatchLockResponseSchema, {
      workspace: event.workspace,
      kind: EVENT_KINDS[event.kind],
      generation: BigInt(event.generation),
      observeTime: timestampFromMs(event.observedAt),
      ...(event.info ? { lock: lockInfoToProto(event.info) } : {}),
    });
    watchMessages.set(event, message);
  }
  return message;
}

function shuttingDown(): UnavailableError {
  return new UnavailableError("the server is shutting down; reconnect to keep watching");
}
