/**
 * Domain errors shared by every layer. Each carries a `code` that the wire adapters (rpc, tfhttp)
 * map to a Connect code or an HTTP status in exactly one place each. Messages never contain secrets.
 */
export type ErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "aborted"
  | "resource_exhausted"
  | "data_loss"
  | "unavailable"
  | "unauthenticated"
  | "permission_denied"
  | "unimplemented"
  | "deadline_exceeded"
  | "canceled"
  | "internal";

export class TfstateError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A caller-supplied value is malformed (bad workspace name, bad reference, bad config). */
export class InvalidArgumentError extends TfstateError {
  constructor(message: string, options?: ErrorOptions) {
    super("invalid_argument", message, options);
  }
}

export class NotFoundError extends TfstateError {
  constructor(message: string, options?: ErrorOptions) {
    super("not_found", message, options);
  }
}

/** Content read back does not match what addressing promises (digest/size mismatch, corrupt manifest). */
export class DataLossError extends TfstateError {
  constructor(message: string, options?: ErrorOptions) {
    super("data_loss", message, options);
  }
}

/** The registry or disk could not be reached, or kept failing after bounded retries. */
export class UnavailableError extends TfstateError {
  constructor(message: string, options?: ErrorOptions) {
    super("unavailable", message, options);
  }
}

/** A size limit was passed; `limit` is the limit in bytes. */
export class ResourceExhaustedError extends TfstateError {
  readonly limit: number;
  constructor(message: string, limit: number, options?: ErrorOptions) {
    super("resource_exhausted", message, options);
    this.limit = limit;
  }
}

/** The realm every surface names in the `WWW-Authenticate` challenge of an UnauthenticatedError. */
export const AUTH_REALM = "oci-tfstate";

export class UnauthenticatedError extends TfstateError {
  constructor(message: string, options?: ErrorOptions) {
    super("unauthenticated", message, options);
  }
}

export class PermissionDeniedError extends TfstateError {
  constructor(message: string, options?: ErrorOptions) {
    super("permission_denied", message, options);
  }
}

/** The backend cannot do this at all (e.g. a registry that answers DELETE with 405 and has no fallback). */
export class UnimplementedError extends TfstateError {
  constructor(message: string, options?: ErrorOptions) {
    super("unimplemented", message, options);
  }
}

export class AlreadyExistsError extends TfstateError {
  constructor(message: string, options?: ErrorOptions) {
    super("already_exists", message, options);
  }
}

export class FailedPreconditionError extends TfstateError {
  constructor(message: string, options?: ErrorOptions) {
    super("failed_precondition", message, options);
  }
}

export class DeadlineExceededError extends TfstateError {
  constructor(message: string, options?: ErrorOptions) {
    super("deadline_exceeded", message, options);
  }
}

export class CanceledError extends TfstateError {
  constructor(message: string, options?: ErrorOptions) {
    super("canceled", message, options);
  }
}

export function isTfstateError(err: unknown): err is TfstateError {
  return err instanceof TfstateError;
}

/**
 * The same error (same class, code and fields) with `context: ` in front of its message and the
 * original as its cause, so callers can say what they were doing without losing the error's kind.
 */
export function withContext<E extends Error>(err: E, context: string): E {
  const copy = Object.create(Object.getPrototypeOf(err) as object) as E;
  Object.assign(copy, err);
  Object.defineProperties(copy, {
    message: { value: `${context}: ${err.message}`, writable: true, configurable: true },
    cause: { value: err, writable: true, configurable: true },
    stack: {
      value: `${err.name}: ${context}: ${err.message}\n${err.stack?.split("\n").slice(1).join("\n") ?? ""}`,
    },
  });
  return copy;
}
