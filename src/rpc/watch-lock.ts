/**
 * WatchLock, shared by its two ways in: the HTTP/2 stream endpoint (http/watch-endpoint.ts), which
 * serves the usual requests of all three protocols and writes one pre-encoded frame per event to
 * every stream, and the Connect handler (state-service.ts), which serves everything else.
 */
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { LockEvent, LockWatch } from "../coordinator/types.ts";
import { UnavailableError } from "../errors.ts";
import {
  LockEventKind,
  type WatchLockResponse,
  WatchLockResponseSchema,
} from "../gen/tfstate/v1/state_service_pb.ts";
import { lockInfoToProto } from "./convert.ts";
import type { RpcDeps } from "./deps.ts";
import { envelope } from "./envelope.ts";

/** How a stream's messages are encoded, from its content type. */
export type WatchCodec = "proto" | "json";

/**
 * Opens the event stream of one WatchLock call, refusing any call once the server drains with
 * UNAVAILABLE (the coordinator refuses a bad workspace name). `requested` is the request's
 * workspace, "" for all.
 */
export function openWatch(
  deps: Pick<RpcDeps, "coordinator" | "drainSignal">,
  requested: string,
  signal?: AbortSignal,
): LockWatch {
  const ws = requested === "" ? undefined : requested;
  if (deps.drainSignal.aborted) throw watchShutDown();
  return deps.coordinator.watchLock(ws, signal);
}

/** A watch ended by the server (drain or coordinator close): the client should reconnect elsewhere. */
export function watchShutDown(): UnavailableError {
  return new UnavailableError("the server is shutting down; reconnect to keep watching");
}

const EVENT_KINDS = {
  snapshot: LockEventKind.SNAPSHOT,
  locked: LockEventKind.LOCKED,
  unlocked: LockEventKind.UNLOCKED,
} as const;

/**
 * The hub hands the same event object to every stream it reaches, so each event's response is built
 * once and shared (it is only read from then on), as is its encoded frame per codec.
 */
const messages = new WeakMap<LockEvent, WatchLockResponse>();
const frames = new WeakMap<LockEvent, { proto?: Buffer; json?: Buffer }>();

export function watchMessage(event: LockEvent, requested: string): WatchLockResponse {
  if (event.kind === "snapshot_complete") {
    return create(WatchLockResponseSchema, {
      workspace: requested,
      kind: LockEventKind.SNAPSHOT_COMPLETE,
      observeTime: timestampFromMs(event.observedAt),
    });
  }
  let message = messages.get(event);
  if (message === undefined) {
    message = create(WatchLockResponseSchema, {
      workspace: event.workspace,
      kind: EVENT_KINDS[event.kind],
      generation: BigInt(event.generation),
      observeTime: timestampFromMs(event.observedAt),
      ...(event.info ? { lock: lockInfoToProto(event.info) } : {}),
    });
    messages.set(event, message);
  }
  return message;
}

/**
 * The event as one uncompressed data frame (the 5-byte envelope Connect streaming, gRPC and
 * gRPC-Web share: flags 0, big-endian length, payload). Shared by every stream it is written to,
 * so it must not be modified.
 */
export function watchFrame(event: LockEvent, requested: string, codec: WatchCodec): Buffer {
  if (event.kind === "snapshot_complete") return envelope(0, encode(watchMessage(event, requested), codec));
  let byCodec = frames.get(event);
  if (byCodec === undefined) {
    byCodec = {};
    frames.set(event, byCodec);
  }
  let frame = byCodec[codec];
  if (frame === undefined) {
    frame = envelope(0, encode(watchMessage(event, requested), codec));
    byCodec[codec] = frame;
  }
  return frame;
}

function encode(message: WatchLockResponse, codec: WatchCodec): Uint8Array {
  return codec === "proto"
    ? toBinary(WatchLockResponseSchema, message)
    : Buffer.from(toJsonString(WatchLockResponseSchema, message));
}
