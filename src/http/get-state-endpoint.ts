/**
 * GetState answered below Connect for binary requests, on HTTP/1.1 and HTTP/2, in all three
 * protocols (see unary-wire.ts). The reason is the state bytes: through Connect, protobuf-es
 * encodes a response into a buffer it grows by doubling and then copies out, and gRPC framing
 * copies it once more, so a 32 MiB state cost about 60 ms of copying per call before the first
 * byte left. Here the response is the small encoded metadata, a field header, and the state
 * buffer the coordinator holds (usually its cache's), written to the socket as it is.
 *
 * A compressed response is made once per state and compression and kept beside the state buffer
 * for as long as that buffer lives (the cache entry, or just this call), so repeated reads of an
 * unchanged state do not compress it again.
 *
 * It passes the same authentication point, telemetry, error mapping and size limits as the
 * Connect handler, and shares its work with it (rpc/get-state.ts). JSON, Connect GET, compressed
 * requests and the rest stay with Connect.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Compression, createDeadlineSignal } from "@connectrpc/connect/protocol";
import { context } from "@opentelemetry/api";
import { CanceledError, InvalidArgumentError } from "../errors.ts";
import {
  type GetStateRequest,
  GetStateRequestSchema,
  GetStateResponseSchema,
  StateService,
} from "../gen/tfstate/v1/state_service_pb.ts";
import type { Logger } from "../log.ts";
import type { RpcDeps } from "../rpc/deps.ts";
import { toConnectError } from "../rpc/errors.ts";
import { type GetStateAnswer, getStateAnswer } from "../rpc/get-state.ts";
import { unaryStateLimit } from "../rpc/size-limits.ts";
import type { RpcTelemetry } from "../rpc/telemetry-interceptor.ts";
import type { NodeRequest, NodeResponse } from "./listener.ts";
import { readBody, singleMessage } from "./request-message.ts";
import { pathOf, requestHeaders } from "./request-parts.ts";
import { type UnaryMessage, UnaryResponse, type UnaryWire, unaryWire } from "./unary-wire.ts";

const SERVICE = StateService.typeName;
const METHOD = StateService.method.getState.name;
const PROCEDURE = `${SERVICE}/${METHOD}`;
export const GET_STATE_PATH = `/${PROCEDURE}`;

/** GetStateResponse.state is field 2, length-delimited: tag (2 << 3) | 2. */
const STATE_FIELD_TAG = 0x12;

export interface GetStateEndpointOptions {
  deps: Pick<RpcDeps, "coordinator">;
  /** The server's authentication point; rejects with UNAUTHENTICATED or PERMISSION_DENIED. */
  authenticate(headers: Headers, remoteAddress: string | undefined): Promise<unknown>;
  telemetry: RpcTelemetry;
  logger: Logger;
  /** Largest message read or written, in bytes. */
  maxMessageBytes: number;
  /** The compressions the server offers, as for Connect: a response uses the first the client accepts. */
  compressions: readonly Compression[];
  /** Messages smaller than this are sent uncompressed. */
  compressMinBytes: number;
  /** Aborts every call still running (the end of the shutdown grace period). */
  cutOffSignal: AbortSignal;
}

/** A compressed response message, kept for the state buffer it was made from. */
interface Compressed {
  compression: string;
  /** Everything before the state bytes, uncompressed: the metadata and the field header. */
  prefix: Buffer;
  bytes: Promise<Uint8Array>;
}

export class GetStateEndpoint {
  readonly #opts: GetStateEndpointOptions;
  readonly #compressed = new WeakMap<Uint8Array, Compressed>();

  constructor(opts: GetStateEndpointOptions) {
    this.#opts = opts;
  }

  /**
   * Serves the request when it is a GetState call this endpoint answers, resolving once answered;
   * undefined leaves it to Connect. `stalled` aborts when the request body stalls: the call ends
   * with its reason.
   */
  serve(req: NodeRequest, res: NodeResponse, stalled?: AbortSignal): Promise<void> | undefined {
    if (pathOf(req.url) !== GET_STATE_PATH) return undefined;
    const wire = unaryWire(req, this.#opts.compressions);
    if (wire === undefined) return undefined;
    return this.#call(req, res, wire, stalled);
  }

  async #call(req: NodeRequest, res: NodeResponse, wire: UnaryWire, stalled?: AbortSignal): Promise<void> {
    const opts = this.#opts;
    const headers = requestHeaders(req.headers);
    const rpc = opts.telemetry.start(SERVICE, METHOD, headers);
    const response = new UnaryResponse(res, wire);
    const gone = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) gone.abort(new CanceledError("the client went away"));
    });
    const { timeoutMs, error: timeoutError } = wire.timeout;
    const deadline = timeoutMs !== undefined ? createDeadlineSignal(timeoutMs) : undefined;
    try {
      if (timeoutError !== undefined) throw timeoutError;
      // The deadline goes down as `deadline`, not in the signal: the two would race, and a call
      // that ran out of time could end as CANCELED.
      const callOptions = {
        signal: AbortSignal.any([gone.signal, opts.cutOffSignal]),
        deadline: timeoutMs !== undefined ? Date.now() + timeoutMs : undefined,
      };
      const reading = [callOptions.signal];
      if (deadline !== undefined) reading.push(deadline.signal);
      if (stalled !== undefined) reading.push(stalled);
      const message = await context.with(rpc.context, async () => {
        await opts.authenticate(headers, req.socket?.remoteAddress);
        const request = await this.#readRequest(req, wire, AbortSignal.any(reading));
        const limit = unaryStateLimit(opts.maxMessageBytes, { requestHeader: headers, url: req.url ?? "" });
        const answer = await getStateAnswer(opts.deps, request, callOptions, limit);
        return this.#encode(answer, wire.responseCompression);
      });
      response.send(message);
      rpc.finish(undefined);
    } catch (err) {
      const error = toConnectError(err, opts.logger, PROCEDURE);
      response.fail(error);
      rpc.finish(gone.signal.aborted ? undefined : error);
    } finally {
      deadline?.cleanup();
    }
  }

  async #readRequest(req: NodeRequest, wire: UnaryWire, signal: AbortSignal): Promise<GetStateRequest> {
    const body = await readBody(req, METHOD, this.#opts.maxMessageBytes, wire.framing, signal);
    const payload = wire.framing === 0 ? body : singleMessage(body, METHOD);
    try {
      return fromBinary(GetStateRequestSchema, payload);
    } catch (err) {
      throw new InvalidArgumentError(
        `cannot decode the ${METHOD} request: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  /**
   * The response message, in canonical field order: the metadata (field 1), the state (field 2)
   * as a field header and the state buffer itself, not-modified (field 3) only when there are no
   * state bytes. Compressed when the client accepts it and the message is large enough.
   */
  async #encode(answer: GetStateAnswer, compression: Compression | null): Promise<UnaryMessage> {
    const state = answer.state ?? new Uint8Array(0);
    if (state.byteLength === 0) {
      const whole = toBinary(GetStateResponseSchema, create(GetStateResponseSchema, answer));
      if (compression === null || whole.byteLength < this.#opts.compressMinBytes) {
        return { head: whole, compressed: false };
      }
      return { head: await compression.compress(whole), compressed: true };
    }
    const metadata = toBinary(
      GetStateResponseSchema,
      create(GetStateResponseSchema, { metadata: answer.metadata }),
    );
    const prefix = Buffer.concat([metadata, fieldHeader(STATE_FIELD_TAG, state.byteLength)]);
    if (compression === null || prefix.byteLength + state.byteLength < this.#opts.compressMinBytes) {
      return { head: prefix, tail: state, compressed: false };
    }
    return { head: await this.#compressedFor(state, prefix, compression), compressed: true };
  }

  /** The compressed message for `state` after `prefix`: made once, then reused while `state` lives. */
  #compressedFor(state: Uint8Array, prefix: Buffer, compression: Compression): Promise<Uint8Array> {
    const kept = this.#compressed.get(state);
    if (kept !== undefined && kept.compression === compression.name && kept.prefix.equals(prefix)) {
      return kept.bytes;
    }
    const entry: Compressed = {
      compression: compression.name,
      prefix,
      bytes: compression.compress(Buffer.concat([prefix, state])),
    };
    this.#compressed.set(state, entry);
    entry.bytes.catch(() => {
      if (this.#compressed.get(state) === entry) this.#compressed.delete(state);
    });
    return entry.bytes;
  }
}

/** A length-delimited field's tag and its length as a varint. */
function fieldHeader(tag: number, length: number): Buffer {
  const out = [tag];
  let n = length;
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}
