/**
 * The one place where domain errors (src/errors.ts) become Connect errors. Every RPC passes
 * through errorInterceptor; the request gate (authentication) uses toConnectError directly.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  AUTH_REALM,
  type ErrorCode,
  isTfstateError,
  ResourceExhaustedError,
  type TfstateError,
} from "../errors.ts";
import {
  LockHeldDetailSchema,
  SizeLimitDetailSchema,
  SizeLimitKind,
} from "../gen/tfstate/v1/error_details_pb.ts";
import type { Logger } from "../log.ts";
import { LockError } from "../oras/index.ts";
import { lockInfoToProto } from "./convert.ts";
import { StateSizeError } from "./size-limits.ts";

const CODES: Record<ErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  resource_exhausted: Code.ResourceExhausted,
  data_loss: Code.DataLoss,
  unavailable: Code.Unavailable,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  unimplemented: Code.Unimplemented,
  deadline_exceeded: Code.DeadlineExceeded,
  canceled: Code.Canceled,
  internal: Code.Internal,
};

/** Codes that mean the server or its registry failed, worth an operator's attention. */
const SERVER_FAULTS = new Set<Code>([Code.Internal, Code.Unknown, Code.DataLoss, Code.Unavailable]);

/**
 * Maps any error to a ConnectError. Domain errors keep their message (they never carry secrets);
 * anything else is an internal error whose message is not sent, only logged.
 */
/** The challenge an RPC refused for its credentials carries: an API token or a JWT as a Bearer token. */
const BEARER_CHALLENGE = `Bearer realm="${AUTH_REALM}"`;

export function toConnectError(err: unknown, logger?: Logger, procedure?: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isTfstateError(err)) {
    const code = CODES[err.code];
    // RFC 9110 section 11.6.1: a refusal for missing or bad credentials names the scheme to use;
    // Connect sends it as a response header, gRPC and gRPC-Web as metadata in the trailers.
    const metadata = code === Code.Unauthenticated ? { "www-authenticate": BEARER_CHALLENGE } : undefined;
    const out = new ConnectError(err.message, code, metadata, detailsFor(err), err);
    if (logger && SERVER_FAULTS.has(out.code)) {
      const level = out.code === Code.Unavailable ? "warn" : "error";
      logger[level]("rpc failed", { procedure, code: Code[out.code], error: err });
    }
    return out;
  }
  logger?.error("rpc failed with an unexpected error", {
    procedure,
    error: err,
    stack: err instanceof Error ? err.stack : undefined,
  });
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

function detailsFor(err: TfstateError) {
  if (err instanceof LockError) {
    const lease = (err as { leaseExpiresAt?: unknown }).leaseExpiresAt;
    return [
      {
        desc: LockHeldDetailSchema,
        value: create(LockHeldDetailSchema, {
          holder: lockInfoToProto(err.holder),
          generation: BigInt(err.generation),
          ...(typeof lease === "number" ? { expireTime: timestampFromMs(lease) } : {}),
        }),
      },
    ];
  }
  if (err instanceof ResourceExhaustedError) {
    const sized = err instanceof StateSizeError ? err : undefined;
    return [
      {
        desc: SizeLimitDetailSchema,
        value: create(SizeLimitDetailSchema, {
          limitBytes: BigInt(err.limit),
          sizeBytes: BigInt(sized?.size ?? 0),
          kind: sized?.kind === "unary_message" ? SizeLimitKind.UNARY_MESSAGE : SizeLimitKind.MAX_STATE_SIZE,
        }),
      },
    ];
  }
  return [];
}

/**
 * Converts errors of every RPC, unary or streaming, in either direction. A streaming request's
 * messages are decoded as the handler reads them; Connect reports a message it cannot decode as
 * INTERNAL, but whatever the request stream itself fails with is the client's doing.
 */
export function errorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(
        req.stream
          ? { ...req, message: mapRequestStreamErrors(req.message, req.method.name, req.method.methodKind) }
          : req,
      );
      if (!res.stream) return res;
      return { ...res, message: mapStreamErrors(res.message, logger, procedure) };
    } catch (err) {
      throw toConnectError(err, logger, procedure);
    }
  };
}

/**
 * Errors of a streaming request's own messages are the client's: INTERNAL from Connect's decoding
 * becomes INVALID_ARGUMENT, and so does a server-streaming call with no request message or more than
 * one (Connect calls that UNIMPLEMENTED).
 */
async function* mapRequestStreamErrors<T>(
  source: AsyncIterable<T>,
  method: string,
  kind: string,
): AsyncIterable<T> {
  let count = 0;
  try {
    for await (const message of source) {
      if (++count > 1 && kind === "server_streaming") {
        throw new ConnectError(`${method} takes exactly one request message, got more`, Code.InvalidArgument);
      }
      yield message;
    }
  } catch (err) {
    if (!(err instanceof ConnectError) || err.code !== Code.Internal) throw err;
    const detail = err.rawMessage.replace(/^parse binary: /, "");
    throw new ConnectError(
      `cannot decode the ${method} request: ${detail}`,
      Code.InvalidArgument,
      undefined,
      undefined,
      err,
    );
  }
  if (count === 0 && kind === "server_streaming") {
    throw new ConnectError(`${method} takes one request message, got none`, Code.InvalidArgument);
  }
}

/** A response stream whose failure is mapped; a plain iterator, as it wraps every open stream. */
function mapStreamErrors<T>(source: AsyncIterable<T>, logger: Logger, procedure: string): AsyncIterable<T> {
  const map = (err: unknown): never => {
    throw toConnectError(err, logger, procedure);
  };
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        next: () => it.next().catch(map),
        return: (value?: unknown) =>
          it.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }),
        throw: (err?: unknown) => it.throw?.(err) ?? Promise.reject(err),
      };
    },
  };
}
