/**
 * A Docker registry token server (the `auth.token` realm of Distribution): it checks basic credentials
 * and issues RS256 JWTs whose `x5c` header carries a self-signed certificate the registry trusts.
 */
import { createPrivateKey, type KeyObject, randomBytes, sign, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createSelfSignedCertificate } from "./tls.ts";

export type GrantFunction = (
  user: string | undefined,
  type: string,
  name: string,
  actions: string[],
) => string[];

export interface TokenServerOptions {
  /** Basic-auth credentials accepted at the token endpoint. */
  users: Record<string, string>;
  /** Grant pull (never more) to requests without credentials. */
  allowAnonymous?: boolean;
  /** Default: everything requested. Anonymous requests are further limited to pull. */
  grant?: GrantFunction;
  /** Token lifetime in seconds, default 300. */
  expiresIn?: number;
  service?: string;
  issuer?: string;
}

export interface TokenRequestRecord {
  user: string | undefined;
  /** Scope strings as requested, e.g. "repository:acme/state:pull,push". */
  scopes: string[];
}

export interface TokenServerHandle {
  url: string;
  /** The token endpoint, for `auth.token.realm`. */
  realm: string;
  service: string;
  issuer: string;
  /** Path of the PEM certificate, for `auth.token.rootcertbundle`. */
  rootCertBundle: string;
  /** Every successful token issue, in order. */
  readonly requests: TokenRequestRecord[];
  stop(): Promise<void>;
}

interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

interface Issued {
  token: string;
  expiresIn: number;
  issuedAt: string;
}

const ANONYMOUS_ACTIONS = new Set(["pull"]);

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServerHandle> {
  const service = opts.service ?? "oci-tfstate-test-registry";
  const issuer = opts.issuer ?? "oci-tfstate-test-token-issuer";
  const expiresIn = opts.expiresIn ?? 300;
  const grant: GrantFunction = opts.grant ?? ((_user, _type, _name, actions) => actions);

  const cert = await createSelfSignedCertificate({
    keyType: "rsa",
    commonName: issuer,
    name: "token-signer",
  });
  let key: KeyObject;
  let x5c: string;
  try {
    key = createPrivateKey(await readFile(cert.keyFile));
    x5c = new X509Certificate(await readFile(cert.certFile)).raw.toString("base64");
  } catch (err) {
    await cert.remove();
    throw err;
  }

  const requests: TokenRequestRecord[] = [];
  const refreshTokens = new Map<string, string>();

  const issue = (user: string | undefined, scopes: string[]): Issued => {
    requests.push({ user, scopes });
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: issuer,
      sub: user ?? "",
      aud: service,
      exp: now + expiresIn,
      nbf: now,
      iat: now,
      jti: randomBytes(16).toString("hex"),
      access: accessFor(user, scopes),
    };
    const header = { typ: "JWT", alg: "RS256", x5c: [x5c] };
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = sign("sha256", Buffer.from(signingInput), key).toString("base64url");
    return { token: `${signingInput}.${signature}`, expiresIn, issuedAt: new Date(now * 1000).toISOString() };
  };

  const accessFor = (user: string | undefined, scopes: string[]): AccessEntry[] => {
    const merged = new Map<string, AccessEntry>();
    for (const scope of scopes) {
      const parsed = parseScope(scope);
      if (parsed === undefined) continue;
      let granted = grant(user, parsed.type, parsed.name, parsed.actions);
      if (user === undefined) granted = granted.filter((a) => ANONYMOUS_ACTIONS.has(a));
      const id = `${parsed.type}\u0000${parsed.name}`;
      const entry = merged.get(id) ?? { type: parsed.type, name: parsed.name, actions: [] };
      for (const action of granted) if (!entry.actions.includes(action)) entry.actions.push(action);
      merged.set(id, entry);
    }
    return [...merged.values()].filter((e) => e.actions.length > 0);
  };

  const checkPassword = (user: string, password: string): boolean =>
    Object.hasOwn(opts.users, user) && opts.users[user] === password;

  const newRefreshToken = (user: string): string => {
    const token = randomBytes(24).toString("base64url");
    refreshTokens.set(token, user);
    return token;
  };

  const handleGet = (req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams): void => {
    if (!serviceMatches(query, service, res)) return;
    let user: string | undefined;
    const credentials = basicCredentials(req.headers.authorization);
    if (credentials !== undefined) {
      if (!checkPassword(credentials.user, credentials.password)) {
        unauthorized(res);
        return;
      }
      user = credentials.user;
    } else if (!opts.allowAnonymous) {
      unauthorized(res);
      return;
    }
    const issued = issue(user, splitScopes(query.getAll("scope")));
    const body: Record<string, unknown> = {
      token: issued.token,
      access_token: issued.token,
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt,
    };
    if (user !== undefined && query.get("offline_token") === "true")
      body.refresh_token = newRefreshToken(user);
    sendJson(res, 200, body);
  };

  const handlePost = (res: http.ServerResponse, form: URLSearchParams): void => {
    if (!serviceMatches(form, service, res)) return;
    let user: string;
    let refreshToken: string | undefined;
    switch (form.get("grant_type")) {
      case "password": {
        const username = form.get("username") ?? "";
        if (!checkPassword(username, form.get("password") ?? "")) {
          unauthorized(res);
          return;
        }
        user = username;
        if (form.get("access_type") === "offline") refreshToken = newRefreshToken(user);
        break;
      }
      case "refresh_token": {
        const known = refreshTokens.get(form.get("refresh_token") ?? "");
        if (known === undefined) {
          unauthorized(res);
          return;
        }
        user = known;
        refreshToken = form.get("refresh_token") ?? undefined;
        break;
      }
      default:
        sendJson(res, 400, { error: "unsupported_grant_type" });
        return;
    }
    const scopes = splitScopes(form.getAll("scope"));
    const issued = issue(user, scopes);
    const body: Record<string, unknown> = {
      access_token: issued.token,
      token: issued.token,
      scope: scopes.join(" "),
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt,
    };
    if (refreshToken !== undefined) body.refresh_token = refreshToken;
    sendJson(res, 200, body);
  };

  const server = http.createServer({ keepAlive: true }, (req, res) => {
    const url = new URL(req.url ?? "/", "http://token.invalid");
    if (url.pathname !== "/token") {
      req.resume();
      return sendJson(res, 404, { errors: [{ code: "NOT_FOUND", message: "no such endpoint" }] });
    }
    if (req.method === "GET") {
      req.resume();
      return handleGet(req, res, url.searchParams);
    }
    if (req.method === "POST") {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => handlePost(res, new URLSearchParams(Buffer.concat(chunks).toString("utf8"))));
      return;
    }
    req.resume();
    res.setHeader("Allow", "GET, POST");
    sendJson(res, 405, { errors: [{ code: "UNSUPPORTED", message: "method not allowed" }] });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  let stopping: Promise<void> | undefined;
  return {
    url,
    realm: `${url}/token`,
    service,
    issuer,
    rootCertBundle: cert.certFile,
    get requests() {
      return requests;
    },
    stop() {
      stopping ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await cert.remove();
      })();
      return stopping;
    },
  };
}

/** "type:name:actions"; the name may itself hold colons (a registry host with a port). */
function parseScope(scope: string): AccessEntry | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first <= 0 || last <= first + 1) return undefined;
  const actions = scope
    .slice(last + 1)
    .split(",")
    .map((a) => a.trim())
    .filter((a) => a !== "");
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions };
}

function splitScopes(params: string[]): string[] {
  return params.flatMap((p) => p.split(" ")).filter((s) => s !== "");
}

function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? "");
  if (match?.[1] === undefined) return undefined;
  const decoded = Buffer.from(match[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function serviceMatches(params: URLSearchParams, service: string, res: http.ServerResponse): boolean {
  const requested = params.get("service");
  if (requested === null || requested === service) return true;
  sendJson(res, 400, { errors: [{ code: "DENIED", message: "unknown service" }] });
  return false;
}

function unauthorized(res: http.ServerResponse): void {
  res.setHeader("WWW-Authenticate", 'Basic realm="oci-tfstate test token server"');
  sendJson(res, 401, { errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const out = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": `${out.length}` });
  res.end(out);
}

function base64url(text: string): string {
  return Buffer.from(text).toString("base64url");
}

/** The registry's `auth.token` settings that trust this token server. */
export function registryTokenAuth(tokens: TokenServerHandle): {
  kind: "token";
  realm: string;
  service: string;
  issuer: string;
  rootCertBundle: string;
} {
  return {
    kind: "token",
    realm: tokens.realm,
    service: tokens.service,
    issuer: tokens.issuer,
    rootCertBundle: tokens.rootCertBundle,
  };
}
