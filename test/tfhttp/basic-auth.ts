import { UnauthenticatedError } from "../../src/errors.ts";
import type { Authenticator } from "../../src/http/server.ts";

/**
 * A stand-in for the service's authentication (a later issue), plugged into the server's one
 * authentication point: HTTP Basic credentials checked against a table of users.
 */
export function basicAuthenticator(users: Record<string, string>): Authenticator {
  return async (req) => {
    const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.get("authorization") ?? "");
    const decoded = m ? Buffer.from(m[1] ?? "", "base64").toString("utf8") : "";
    const colon = decoded.indexOf(":");
    const user = decoded.slice(0, colon);
    if (colon < 0 || !Object.hasOwn(users, user) || users[user] !== decoded.slice(colon + 1)) {
      throw new UnauthenticatedError("valid Basic credentials are required");
    }
    return { method: "token", name: user };
  };
}
