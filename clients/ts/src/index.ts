/**
 * The runtime-neutral part of the client: the generated types, a client over any Connect
 * transport, bearer-token authentication (a token, or a source asked for every call) and the typed
 * error details. `@oci-tfstate/client/node`
 * and `@oci-tfstate/client/web` build the transports for Node and for browsers.
 */
import type { DescService } from "@bufbuild/protobuf";
import {
  type CallOptions,
  type Client,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  type LockHeldDetail,
  LockHeldDetailSchema,
  type SizeLimitDetail,
  SizeLimitDetailSchema,
  StateService,
  WorkspaceService,
} from "./gen.js";

export * from "./gen.js";

/** Clients of both services of one oci-tfstate server, sharing one transport. */
export interface TfstateClient {
  /** Reads and writes states, locks workspaces and watches locks. */
  readonly state: Client<typeof StateService>;
  /** Lists, creates and deletes workspaces. */
  readonly workspaces: Client<typeof WorkspaceService>;
}

/** The wire protocols the service answers, all on one port. */
export type Protocol = "connect" | "grpc" | "grpc-web";

/**
 * Clients of both services over a transport made elsewhere (any Connect transport).
 *
 * Server streams (WatchLock, DownloadState) end their call when the loop reading them stops early
 * (`break`, `return`, an exception): plain Connect clients leave such a call open until its deadline
 * or until the caller aborts its signal, and a WatchLock has no natural end.
 */
export function createTfstateClient(transport: Transport): TfstateClient {
  return {
    state: endingStreams(StateService, createClient(StateService, transport)),
    workspaces: endingStreams(WorkspaceService, createClient(WorkspaceService, transport)),
  };
}

type StreamFn = (request: unknown, options?: CallOptions) => AsyncIterable<unknown>;

function endingStreams<T extends DescService>(service: T, client: Client<T>): Client<T> {
  const wrapped: Record<string, unknown> = { ...client };
  for (const method of service.methods) {
    if (method.methodKind !== "server_streaming") continue;
    const call = wrapped[method.localName] as StreamFn;
    wrapped[method.localName] = (request: unknown, options?: CallOptions) =>
      endOnReturn(call, request, options);
  }
  return wrapped as Client<T>;
}

/**
 * Runs the call on the first read, and aborts it when the reader stops before the stream ended;
 * one more read then settles it (the Connect iterator has no return(), and only a read after the
 * abort releases the call and its deadline timer).
 */
async function* endOnReturn(
  call: StreamFn,
  request: unknown,
  options?: CallOptions,
): AsyncGenerator<unknown> {
  const stop = new AbortController();
  const signal = options?.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const messages = call(request, { ...options, signal })[Symbol.asyncIterator]();
  let settled = false;
  try {
    for (;;) {
      const next = await messages.next();
      if (next.done) {
        settled = true;
        return;
      }
      yield next.value;
    }
  } catch (err) {
    settled = true;
    throw err;
  } finally {
    if (!settled) {
      stop.abort(new ConnectError("the stream's reader stopped", Code.Canceled));
      await messages.next().catch(() => {});
    }
  }
}

/**
 * Returns the token for one call: an API token (`otfs_...`) or a JWT such as a CI job's OIDC token.
 * Called for every unary call and at the start of every stream, so a short-lived token fetched
 * again, or a rotated token file, reaches the next call. Whatever it throws fails the call with
 * UNAUTHENTICATED before anything is sent; never put the token in what it throws.
 */
export type TokenSource = () => string | Promise<string>;

/** The environment variable the service's token is read from by convention (`tokenFromEnv`). */
export const TOKEN_ENV_VAR = "OCI_TFSTATE_TOKEN";

/** The problem with a token that cannot travel as a bearer token, or undefined; never quotes it. */
function tokenProblem(token: unknown): string | undefined {
  if (typeof token !== "string") return `the token source returned ${typeof token}, not a string`;
  if (token === "") return "the bearer token is empty";
  for (let i = 0; i < token.length; i++) {
    // Visible ASCII only: API tokens and JWTs are base64url and dots; a space, a control character
    // (CR/LF would split the header) or non-ASCII is a broken token.
    const c = token.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) {
      return `the bearer token holds a character not allowed in a header (character ${i + 1} of ${token.length})`;
    }
  }
  return undefined;
}

/**
 * An interceptor that sends `Authorization: Bearer <token>` with every unary and streaming call.
 * `token` is a string, or a TokenSource asked for every call and every stream's start. When the
 * source throws, or returns an empty token or one that cannot be a header value, the call fails
 * with a ConnectError UNAUTHENTICATED (the source's error is its `cause`) and is never sent.
 */
export function bearerToken(token: string | TokenSource): Interceptor {
  if (typeof token === "string") {
    const problem = tokenProblem(token);
    if (problem !== undefined) throw new Error(problem);
    const value = `Bearer ${token}`;
    return (next) => (req) => {
      req.header.set("Authorization", value);
      return next(req);
    };
  }
  if (typeof token !== "function") {
    throw new TypeError(`the token must be a string or a function returning one, not ${typeof token}`);
  }
  const source = token;
  return (next) => async (req) => {
    let value: unknown;
    try {
      value = await source();
    } catch (err) {
      const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      throw new ConnectError(
        `the token source failed: ${reason}`,
        Code.Unauthenticated,
        undefined,
        undefined,
        err,
      );
    }
    const problem = tokenProblem(value);
    if (problem !== undefined) {
      throw new ConnectError(`the token source returned a bad token: ${problem}`, Code.Unauthenticated);
    }
    req.header.set("Authorization", `Bearer ${value as string}`);
    return next(req);
  };
}

/**
 * The holder of the lock that made a call fail: the LockHeldDetail the service attaches to
 * FAILED_PRECONDITION when another client holds the workspace lock, or when a fenced write quoted
 * the wrong lock ID. Undefined for any other error.
 */
export function lockHolder(err: unknown): LockHeldDetail | undefined {
  return err instanceof ConnectError ? err.findDetails(LockHeldDetailSchema)[0] : undefined;
}

/** The SizeLimitDetail of a RESOURCE_EXHAUSTED error (which limit a state exceeded), or undefined. */
export function sizeLimit(err: unknown): SizeLimitDetail | undefined {
  return err instanceof ConnectError ? err.findDetails(SizeLimitDetailSchema)[0] : undefined;
}
