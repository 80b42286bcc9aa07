/**
 * The one client of the service: Connect over fetch to the page's own origin (the CSP allows no
 * other), with the tab's token when there is one. Errors become sentences here.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { createWebClient, lockHolder, type TfstateClient } from "@oci-tfstate/client/web";
import { currentToken } from "./session.ts";

export const client: TfstateClient = createWebClient({
  baseUrl: location.origin,
  // Asked for every call and every stream's start: signing in or out reaches the next call.
  interceptors: [
    (next) => (req) => {
      const token = currentToken();
      if (token !== undefined && !req.header.has("Authorization")) {
        req.header.set("Authorization", `Bearer ${token}`);
      }
      return next(req);
    },
  ],
});

export type Problem =
  /** No usable credentials: sign in. */
  | { kind: "unauthenticated"; message: string }
  /** The caller may not do this; `message` names the permission. */
  | { kind: "denied"; message: string }
  | { kind: "other"; message: string };

/** What went wrong, in words a person can act on. */
export function describe(err: unknown): Problem {
  const e = ConnectError.from(err);
  switch (e.code) {
    case Code.Unauthenticated:
      return {
        kind: "unauthenticated",
        message: "The server needs an API token: sign in with one (401 Unauthenticated).",
      };
    case Code.PermissionDenied:
      return { kind: "denied", message: `Not allowed (403): ${e.rawMessage}.` };
    case Code.NotFound:
      return { kind: "other", message: `Not found: ${e.rawMessage}.` };
    case Code.Unavailable:
      return {
        kind: "other",
        message: `The service or its registry cannot be reached right now: ${e.rawMessage || "no answer"}.`,
      };
    case Code.FailedPrecondition: {
      const holder = lockHolder(e);
      const who = holder?.holder?.who;
      return {
        kind: "other",
        message: who ? `Refused: the workspace is locked by ${who}.` : `Refused: ${e.rawMessage}.`,
      };
    }
    case Code.DeadlineExceeded:
      return { kind: "other", message: "The service took too long to answer; try again." };
    default:
      return { kind: "other", message: `${Code[e.code]}: ${e.rawMessage || "the request failed"}.` };
  }
}
