/**
 * One audit record: a JSON object on one line, for every state read and every state-changing call
 * over either surface (the RPC API and the Terraform http backend). It says who did what to which
 * workspace and how it ended; it never holds state content or a credential. Fields, in this order:
 *
 * | field            | always | what                                                                  |
 * |------------------|--------|-----------------------------------------------------------------------|
 * | `time`           | yes    | RFC 3339 UTC time, in ms, at which the result was known                |
 * | `request_id`     | yes    | the request's `X-Request-Id` when fit (1-128 printable ASCII, no space), else generated; returned as the `X-Request-Id` response header |
 * | `principal`      | yes    | the caller: `{method, name, token?, issuer?, subject?}`: `method` is `anonymous`, `token` or `oidc`; `name` the token's name or `oidc:<issuer host>:<sub>`; `token` the token's name; `issuer`/`subject` of a verified OIDC token. A call refused before its caller was known is `anonymous` |
 * | `remote_address` | no     | the peer's IP address (a proxy's, behind one)                          |
 * | `surface`        | yes    | `rpc` (Connect, gRPC, gRPC-Web) or `http` (the Terraform http backend)  |
 * | `method`         | yes    | the RPC (`tfstate.v1.StateService/PutState`) or the HTTP method and route (`POST /terraform/state/{workspace}`, `LOCK /terraform/state/{workspace}/lock`) |
 * | `workspace`      | no     | the workspace named by the request (absent when it was refused before it was read) |
 * | `version`        | no     | the state version read or written (absent with versioning off)         |
 * | `digest`         | no     | the digest of the state manifest read or written                       |
 * | `lock_id`        | no     | the lock ID the request carried, or the one a Lock was given            |
 * | `result`         | yes    | `ok`, or the error code: `invalid_argument`, `not_found`, `failed_precondition` (a held lock or a fencing refusal), `unauthenticated`, `permission_denied`, `unavailable`, ... (Connect's code names, on both surfaces) |
 */

/** The caller as the server's authentication point established it (src/rpc/principal.ts). */
export interface PrincipalLike {
  readonly method: string;
  readonly name: string;
  readonly token?: string | undefined;
  readonly issuer?: string | undefined;
  readonly subject?: string | undefined;
}

/** What a record says about the caller: these fields and no others (never claims, never a secret). */
export interface AuditPrincipal {
  method: string;
  name: string;
  token?: string;
  issuer?: string;
  subject?: string;
}

/** A record before its time is stamped. */
export interface AuditEvent {
  requestId: string;
  principal: PrincipalLike;
  remoteAddress: string | undefined;
  surface: "rpc" | "http";
  method: string;
  workspace?: string | undefined;
  version?: number | undefined;
  digest?: string | undefined;
  lockId?: string | undefined;
  /** "ok" or the error code. */
  result: string;
}

/** The record's JSON line (with its newline), its fields in the documented order. */
export function auditLine(event: AuditEvent, time: Date): string {
  const record: Record<string, unknown> = {
    time: time.toISOString(),
    request_id: event.requestId,
    principal: principalFields(event.principal),
  };
  if (event.remoteAddress !== undefined) record.remote_address = event.remoteAddress;
  record.surface = event.surface;
  record.method = event.method;
  if (event.workspace !== undefined && event.workspace !== "") record.workspace = event.workspace;
  if (event.version !== undefined && event.version > 0) record.version = event.version;
  if (event.digest !== undefined && event.digest !== "") record.digest = event.digest;
  if (event.lockId !== undefined && event.lockId !== "") record.lock_id = event.lockId;
  record.result = event.result;
  return `${JSON.stringify(record)}\n`;
}

/** Picks the documented fields only, whatever else the principal holds. */
export function principalFields(p: PrincipalLike): AuditPrincipal {
  const out: AuditPrincipal = { method: p.method, name: p.name };
  if (typeof p.token === "string") out.token = p.token;
  if (typeof p.issuer === "string") out.issuer = p.issuer;
  if (typeof p.subject === "string") out.subject = p.subject;
  return out;
}
