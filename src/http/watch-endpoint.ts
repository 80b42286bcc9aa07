/**
 * WatchLock served straight on HTTP/2 streams, below Connect. A watch is a long-lived stream that
 * carries a few small messages, and thousands of them are open at once: through connect-node each
 * held a request/response adapter and a chain of async pipeline stages (tens of KB per stream),
 * and every event ran that chain once per stream. Here a stream holds its HTTP/2 stream, its
 * subscription and one small object; an event is encoded once and the same frame is written to
 * every stream.
 *
 * It takes the usual requests of all three protocols (see stream-wire.ts) and leaves anything else
 * (HTTP/1.1, compressed requests, deadlines) to the Connect handler in rpc/state-service.ts, which
 * shares rpc/watch-lock.ts with it. It passes the same authentication point, telemetry and error
 * mapping as every RPC.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { context } from "@opentelemetry/api";
import type { LockWatch } from "../coordinator/types.ts";
import { InvalidArgumentError, ResourceExhaustedError } from "../errors.ts";
import { StateService, WatchLockRequestSchema } from "../gen/tfstate/v1/state_service_pb.ts";
import type { Logger } from "../log.ts";
import type { RpcDeps } from "../rpc/deps.ts";
import { toConnectError } from "../rpc/errors.ts";
import type { RpcCall, RpcTelemetry } from "../rpc/telemetry-interceptor.ts";
import { openWatch, watchFrame, watchShutDown } from "../rpc/watch-lock.ts";
import { resetStalledStream, watchBodyIdle } from "./body-idle.ts";
import { readBody, singleMessage } from "./request-message.ts";
import { pathOf, requestHeaders } from "./request-parts.ts";
import { StreamResponse, type StreamWire, streamWire } from "./stream-wire.ts";

const SERVICE = StateService.typeName;
const METHOD = StateService.method.watchLock.name;
const PROCEDURE = `${SERVICE}/${METHOD}`;
export const WATCH_LOCK_PATH = `/${PROCEDURE}`;

export interface WatchEndpointOptions {
  deps: Pick<RpcDeps, "coordinator" | "drainSignal">;
  /** The server's authentication point; rejects with UNAUTHENTICATED or PERMISSION_DENIED. */
  authenticate(headers: Headers, remoteAddress: string | undefined): Promise<unknown>;
  telemetry: RpcTelemetry;
  logger: Logger;
  /** Largest message read or written, in bytes. */
  maxMessageBytes: number;
  /** How long the request body may pause while the endpoint waits for it (see body-idle.ts). */
  bodyIdleTimeoutMs: number;
}

/**
 * Streams a change is written to before the event loop gets a turn. Node sends what was written
 * only when the loop turns, so writing a change to 10,000 streams in one pass would hold every
 * byte back until the last stream is done; in slices, the first watchers are reading while the
 * server writes to the rest.
 */
const WRITES_PER_TURN = 250;

/**
 * Runs the watchers' writes, at most WRITES_PER_TURN per turn of the event loop, grouped by
 * connection: Node sends each HTTP/2 session's pending frames in one socket write per turn, so a
 * slice that covers a few connections' streams costs a few system calls, where the same slice
 * taken in subscription order (streams spread over every connection) cost one per connection.
 * Writes of one connection keep their order, and connections are served in the order their first
 * write came.
 */
class FanOut {
  readonly #groups = new Map<object, (() => void)[]>();
  #turnScheduled = false;

  run(write: () => void, connection: object): void {
    const queue = this.#groups.get(connection);
    if (queue === undefined) this.#groups.set(connection, [write]);
    else queue.push(write);
    if (!this.#turnScheduled) {
      this.#turnScheduled = true;
      setImmediate(this.#turn);
    }
  }

  readonly #turn = (): void => {
    this.#turnScheduled = false;
    let budget = WRITES_PER_TURN;
    for (const [connection, queue] of this.#groups) {
      let done = 0;
      // A write may queue more on this connection (a new event): the loop takes it too.
      while (done < queue.length && budget > 0) {
        (queue[done++] as () => void)();
        budget--;
      }
      if (done < queue.length) {
        queue.splice(0, done);
        break;
      }
      this.#groups.delete(connection);
    }
    if (this.#groups.size > 0 && !this.#turnScheduled) {
      this.#turnScheduled = true;
      setImmediate(this.#turn);
    }
  };
}

export class WatchEndpoint {
  readonly #opts: WatchEndpointOptions;
  readonly #calls = new Set<WatchCall>();
  readonly #fanOut = new FanOut();
  readonly #forget = (call: WatchCall) => this.#calls.delete(call);

  constructor(opts: WatchEndpointOptions) {
    this.#opts = opts;
    // One listener for all calls: a signal's listeners are a list, slow to add to by the thousand.
    opts.deps.drainSignal.addEventListener("abort", () => {
      for (const call of this.#calls) call.shutDown();
    });
  }

  /** Serves the stream when it is a WatchLock call this endpoint answers; false leaves it to Connect. */
  serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean {
    if (pathOf(headers[":path"]) !== WATCH_LOCK_PATH) return false;
    const wire = streamWire(headers);
    if (wire === undefined) return false;
    const call = new WatchCall(stream, wire, this.#opts, this.#fanOut, this.#forget);
    this.#calls.add(call);
    call.start(headers).catch((err: unknown) => call.fail(err));
    return true;
  }
}

/**
 * One watch. Once open, events flow without a promise or a closure per event: `#pump` takes what
 * the watch has queued and writes it, then asks the watch to wake it again (from inside the lock
 * change that queues the next event; the fan-out then runs it at once or in a later slice), or
 * waits for the stream to drain when the client reads slowly (the watch coalesces meanwhile).
 */
class WatchCall {
  readonly #stream: ServerHttp2Stream;
  readonly #wire: StreamWire;
  readonly #opts: WatchEndpointOptions;
  readonly #res: StreamResponse;
  readonly #done: (call: WatchCall) => void;
  readonly #fanOut: FanOut;
  #rpc: RpcCall | undefined;
  #watch: LockWatch | undefined;
  #requested = "";
  #clientGone = false;
  #finished = false;

  constructor(
    stream: ServerHttp2Stream,
    wire: StreamWire,
    opts: WatchEndpointOptions,
    fanOut: FanOut,
    done: (call: WatchCall) => void,
  ) {
    this.#stream = stream;
    this.#wire = wire;
    this.#opts = opts;
    this.#fanOut = fanOut;
    this.#done = done;
    this.#res = new StreamResponse(stream, wire);
    stream.once("close", this.#onClose);
    // A reset stream reports an error; "close" has it covered.
    stream.on("error", ignore);
  }

  /** Authenticates, reads the request and opens the watch; then the events flow. */
  async start(headers: IncomingHttpHeaders): Promise<void> {
    const header = requestHeaders(headers);
    const rpc = this.#opts.telemetry.start(SERVICE, METHOD, header);
    this.#rpc = rpc;
    const stream = this.#stream;
    watchBodyIdle(stream, this.#opts.bodyIdleTimeoutMs, {
      onIdle: (err) => this.#finish(err),
      release: () => resetStalledStream(stream),
    });
    try {
      await this.#opts.authenticate(header, stream.session?.socket?.remoteAddress);
      const request = await this.#readRequest();
      this.#requested = request.workspace;
      this.#watch = context.with(rpc.context, () => openWatch(this.#opts.deps, request.workspace));
    } catch (err) {
      this.#finish(err);
      return;
    }
    if (this.#finished) this.#watch.close();
    else this.#pump();
  }

  /** Ends the call with `err` after a failure outside its own handling (a bug); never throws. */
  fail(err: unknown): void {
    try {
      this.#finish(err);
    } catch {
      this.#stream.destroy();
    }
  }

  /** The server drains: end with UNAVAILABLE so the client reconnects elsewhere. */
  shutDown(): void {
    this.#watch?.close();
  }

  readonly #onClose = (): void => {
    this.#clientGone = true;
    this.#finish(undefined);
  };

  /** Called by the watch, from inside the change, when it has an event (or has ended). */
  readonly #wake = (): void => this.#fanOut.run(this.#pump, this.#stream.session ?? this.#stream);

  readonly #pump = (): void => {
    const watch = this.#watch as LockWatch;
    try {
      for (;;) {
        const event = watch.take();
        if (event === undefined) {
          if (watch.ended) this.#finish(watch.failure);
          else watch.wait(this.#wake);
          return;
        }
        const frame = watchFrame(event, this.#requested, this.#wire.codec);
        const max = this.#opts.maxMessageBytes;
        if (frame.byteLength - 5 > max) {
          throw new ResourceExhaustedError(
            `a WatchLock message of ${frame.byteLength - 5} bytes is larger than the ${max}-byte message limit`,
            max,
          );
        }
        if (!this.#res.write(frame)) {
          this.#res.onDrain(this.#pump);
          return;
        }
      }
    } catch (err) {
      this.#finish(err);
    }
  };

  /**
   * Ends the call once: with `err`; else, unless the client went away, with UNAVAILABLE (the watch
   * was ended by the server's drain or the coordinator closing).
   */
  #finish(err: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#watch?.close();
    let error: ConnectError | undefined;
    if (err !== undefined) error = toConnectError(err, this.#opts.logger, PROCEDURE);
    else if (!this.#clientGone) error = toConnectError(watchShutDown());
    this.#res.end(error);
    this.#rpc?.finish(this.#clientGone ? undefined : error);
    this.#done(this);
  }

  /** The one request message, read to the end of the request stream. */
  async #readRequest() {
    const body = await readBody(this.#stream, METHOD, this.#opts.maxMessageBytes, 5);
    const payload = singleMessage(body, METHOD);
    try {
      return this.#wire.codec === "proto"
        ? fromBinary(WatchLockRequestSchema, payload)
        : fromJsonString(WatchLockRequestSchema, Buffer.from(payload).toString("utf8"));
    } catch (err) {
      throw new InvalidArgumentError(
        `cannot decode the WatchLock request: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
}

function ignore(): void {}
