/**
 * WatchLock's events as responses: one message per event, built once and shared by every stream
 * it goes to, and its encoded frame per codec for the edge's shared frame writer.
 */
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import type { Coordinator, LockEvent, LockWatch } from "../coordinator/types.ts";
import {
  LockEventKind,
  type WatchLockResponse,
  WatchLockResponseSchema,
} from "../gen/tfstate/v1/state_service_pb.ts";
import { lockInfoToProto } from "./convert.ts";
import { envelope } from "./envelope.ts";
import { ServerDrainingError, watchSinkKey } from "./fast-methods.ts";
import { callerView } from "./view.ts";

/** How a stream's messages are encoded, from its content type. */
export type WatchCodec = "proto" | "json";

/**
 * Opens the event stream of one WatchLock call (the coordinator refuses a bad workspace name).
 * `requested` is the request's workspace, "" for all. The watch ends when `signal` aborts (the
 * client left, the deadline passed, the server drains).
 */
export function openWatch(coordinator: Coordinator, requested: string, signal?: AbortSignal): LockWatch {
  return coordinator.watchLock(requested === "" ? undefined : requested, signal);
}

/**
 * A WatchLock stream's responses. With the edge's shared frame writer there (fast-methods.ts), the
 * writer sends the events and the stream is a plain object that settles when the watch ends: no
 * generator, as thousands are open at once. Without it, one message per event. Either way the
 * stream ends with the reason its watch ended (watchEnd), never quietly while the client listens.
 */
export function watchResponses(
  coordinator: Coordinator,
  requested: string,
  ctx: HandlerContext,
): AsyncIterable<WatchLockResponse> {
  const { signal } = ctx;
  const view = callerView(ctx);
  const watch = openWatch(coordinator, requested, signal);
  const sink = ctx.values.get(watchSinkKey);
  if (sink === undefined) return eachEvent(watch, requested, signal, view);
  const ended = (): Promise<IteratorResult<WatchLockResponse>> => {
    watch.close();
    return Promise.reject(watchEnd(watch, signal));
  };
  return {
    [Symbol.asyncIterator]: () => ({
      next: () =>
        sink.pump(watch, requested, view).then(ended, (err: unknown) => {
          watch.close();
          throw err;
        }),
      return: async () => {
        watch.close();
        return { done: true, value: undefined };
      },
    }),
  };
}

async function* eachEvent(
  watch: LockWatch,
  requested: string,
  signal: AbortSignal,
  view: EventView,
): AsyncGenerator<WatchLockResponse> {
  try {
    for await (const event of watch) {
      const { show, hideId } = eventFor(event, view);
      if (show) yield watchMessage(event, requested, hideId);
    }
  } finally {
    watch.close();
  }
  throw watchEnd(watch, signal);
}

/**
 * The error a WatchLock stream ends with once its watch has ended: the reason its signal gave
 * (a deadline is DEADLINE_EXCEEDED, a drain UNAVAILABLE, a client that left hears nothing anyway),
 * or UNAVAILABLE when the coordinator closed it (the service is stopping).
 */
export function watchEnd(watch: LockWatch, signal: AbortSignal): unknown {
  if (watch.failure !== undefined) return watch.failure;
  return signal.aborted ? signal.reason : new ServerDrainingError();
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
/** An event's message with the holder's lock ID, and without it (for callers without `lock`). */
type Variants<T> = { shown?: T; hidden?: T };
const messages = new WeakMap<LockEvent, Variants<WatchLockResponse>>();
const frames = new WeakMap<LockEvent, { proto?: Variants<Buffer>; json?: Variants<Buffer> }>();

/** What one stream's caller sees of the events (rpc/view.ts), for the frame writer and for messages. */
export interface EventView {
  visible(workspace: string): boolean;
  lockIds(workspace: string): boolean;
}

/** Whether a stream's caller sees `event`, and with the holder's ID. */
export function eventFor(event: LockEvent, view: EventView): { show: boolean; hideId: boolean } {
  if (event.kind === "snapshot_complete") return { show: true, hideId: false };
  if (!view.visible(event.workspace)) return { show: false, hideId: false };
  return { show: true, hideId: event.info !== undefined && !view.lockIds(event.workspace) };
}

export function watchMessage(event: LockEvent, requested: string, hideId = false): WatchLockResponse {
  if (event.kind === "snapshot_complete") {
    return create(WatchLockResponseSchema, {
      workspace: requested,
      kind: LockEventKind.SNAPSHOT_COMPLETE,
      observeTime: timestampFromMs(event.observedAt),
    });
  }
  let variants = messages.get(event);
  if (variants === undefined) {
    variants = {};
    messages.set(event, variants);
  }
  const key = hideId ? "hidden" : "shown";
  let message = variants[key];
  if (message === undefined) {
    const info = event.info && hideId ? { ...event.info, id: "" } : event.info;
    message = create(WatchLockResponseSchema, {
      workspace: event.workspace,
      kind: EVENT_KINDS[event.kind],
      generation: BigInt(event.generation),
      observeTime: timestampFromMs(event.observedAt),
      ...(info ? { lock: lockInfoToProto(info) } : {}),
    });
    variants[key] = message;
  }
  return message;
}

/**
 * The event as one uncompressed data frame (the 5-byte envelope Connect streaming, gRPC and
 * gRPC-Web share: flags 0, big-endian length, payload). Shared by every stream it is written to,
 * so it must not be modified.
 */
export function watchFrame(event: LockEvent, requested: string, codec: WatchCodec, hideId = false): Buffer {
  if (event.kind === "snapshot_complete") return envelope(0, encode(watchMessage(event, requested), codec));
  let byCodec = frames.get(event);
  if (byCodec === undefined) {
    byCodec = {};
    frames.set(event, byCodec);
  }
  let variants = byCodec[codec];
  if (variants === undefined) {
    variants = {};
    byCodec[codec] = variants;
  }
  const key = hideId ? "hidden" : "shown";
  let frame = variants[key];
  if (frame === undefined) {
    frame = envelope(0, encode(watchMessage(event, requested, hideId), codec));
    variants[key] = frame;
  }
  return frame;
}

function encode(message: WatchLockResponse, codec: WatchCodec): Uint8Array {
  return codec === "proto"
    ? toBinary(WatchLockResponseSchema, message)
    : Buffer.from(toJsonString(WatchLockResponseSchema, message));
}
