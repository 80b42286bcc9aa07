/**
 * A real OpenID Connect issuer for tests: an HTTP server on a random loopback port serving
 * `/.well-known/openid-configuration` and its JWKS, with RSA and EC keys made on the spot by jose.
 * It signs tokens shaped like GitHub Actions' and GitLab CI's (their claims; its own issuer URL,
 * since the real ones cannot be reached here), rotates keys (a new `kid` the server only knows after
 * fetching the JWKS again), and makes every kind of bad token a verifier must refuse.
 */
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  base64url,
  type CryptoKey,
  decodeJwt,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  SignJWT,
} from "jose";

export type SigningAlg = "RS256" | "ES256";

interface IssuerKey {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

export interface SignOptions {
  alg?: SigningAlg;
  /** Default the issuer's own URL. */
  issuer?: string;
  /** Default the issuer's default audience. */
  audience?: string | string[];
  /** Seconds from now; negative for a token that has expired. Default 300. */
  expiresIn?: number;
  /** Seconds from now the token becomes valid. Default 0. */
  notBefore?: number;
  /** Sign with this key (default: the current key of `alg`). */
  key?: IssuerKey;
  /** Leave out `exp`. */
  noExpiry?: boolean;
}

/** Every kind of token a verifier must refuse. */
export const BAD_TOKENS = [
  "expired",
  "not yet valid",
  "wrong audience",
  "wrong issuer",
  "unknown kid",
  "alg none",
  "HS256 signed with the public key",
  "tampered payload",
  "signed by an unknown key",
  "no sub",
  "no exp",
] as const;
export type BadToken = (typeof BAD_TOKENS)[number];

export interface OidcIssuer {
  /** The issuer URL (`iss`), e.g. `http://127.0.0.1:40123`. */
  readonly url: string;
  readonly audience: string;
  /** Requests served, per path. */
  readonly requests: { discovery: number; jwks: number };
  /** The published keys. */
  jwks(): JSONWebKeySet;
  /** Writes the published keys to a file (for an issuer configured with jwks_file). */
  writeJwksFile(file: string): Promise<void>;
  sign(claims: JWTPayload, opts?: SignOptions): Promise<string>;
  /** A token as a GitHub Actions job gets it; `claims` override the defaults. */
  github(claims?: Partial<GithubClaims>, opts?: SignOptions): Promise<string>;
  /** A token as a GitLab CI job gets it. */
  gitlab(claims?: Partial<GitlabClaims>, opts?: SignOptions): Promise<string>;
  /** A token the verifier must refuse. */
  bad(kind: BadToken): Promise<string>;
  /** Publishes a new key for `alg` and signs with it from now on; returns its kid. */
  rotate(alg?: SigningAlg, opts?: { dropOld?: boolean }): Promise<string>;
  /** The next `times` discovery requests answer 503. */
  failDiscovery(times: number): void;
  /** The next `times` JWKS requests answer 503. */
  failJwks(times: number): void;
  /** The discovery document names this issuer instead of its own (undefined: its own again). */
  advertise(issuer: string | undefined): void;
  stop(): Promise<void>;
}

export interface GithubClaims {
  sub: string;
  repository: string;
  repository_owner: string;
  repository_id: string;
  ref: string;
  ref_type: string;
  sha: string;
  environment: string;
  job_workflow_ref: string;
  workflow_ref: string;
  workflow: string;
  event_name: string;
  actor: string;
  run_id: string;
  run_attempt: string;
  runner_environment: string;
  [claim: string]: unknown;
}

export interface GitlabClaims {
  sub: string;
  project_path: string;
  project_id: string;
  namespace_path: string;
  namespace_id: string;
  ref: string;
  ref_type: string;
  ref_path: string;
  ref_protected: string;
  environment: string;
  environment_protected: string;
  pipeline_source: string;
  pipeline_id: string;
  job_id: string;
  user_login: string;
  [claim: string]: unknown;
}

let kidCounter = 0;

async function makeKey(alg: SigningAlg): Promise<IssuerKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `test-${alg.toLowerCase()}-${++kidCounter}-${Date.now().toString(36)}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicKey, jwk };
}

export async function startOidcIssuer(opts: { audience?: string } = {}): Promise<OidcIssuer> {
  const audience = opts.audience ?? "oci-tfstate";
  const current = new Map<SigningAlg, IssuerKey>([
    ["RS256", await makeKey("RS256")],
    ["ES256", await makeKey("ES256")],
  ]);
  const published: IssuerKey[] = [...current.values()];
  const requests = { discovery: 0, jwks: 0 };
  let discoveryFailures = 0;
  let jwksFailures = 0;
  let advertised: string | undefined;
  let url = "";

  const server = http.createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (path === "/.well-known/openid-configuration") {
      requests.discovery++;
      if (discoveryFailures > 0) {
        discoveryFailures--;
        json(503, { error: "temporarily unavailable" });
        return;
      }
      json(200, {
        issuer: advertised ?? url,
        jwks_uri: `${url}/.well-known/jwks`,
        subject_types_supported: ["public", "pairwise"],
        response_types_supported: ["id_token"],
        id_token_signing_alg_values_supported: ["RS256", "ES256"],
        claims_supported: ["sub", "aud", "exp", "iat", "iss", "nbf", "jti"],
        scopes_supported: ["openid"],
      });
      return;
    }
    if (path === "/.well-known/jwks") {
      requests.jwks++;
      if (jwksFailures > 0) {
        jwksFailures--;
        json(503, { error: "temporarily unavailable" });
        return;
      }
      json(200, { keys: published.map((k) => k.jwk) });
      return;
    }
    json(404, { error: "not found" });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const keyFor = (alg: SigningAlg): IssuerKey => {
    const key = current.get(alg);
    if (!key) throw new Error(`no key for ${alg}`);
    return key;
  };

  const sign = async (claims: JWTPayload, o: SignOptions = {}): Promise<string> => {
    const key = o.key ?? keyFor(o.alg ?? "RS256");
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({ jti: crypto.randomUUID(), ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT" })
      .setIssuer(o.issuer ?? url)
      .setAudience(o.audience ?? audience)
      .setIssuedAt(now)
      .setNotBefore(now + (o.notBefore ?? 0));
    if (o.noExpiry !== true) jwt.setExpirationTime(now + (o.expiresIn ?? 300));
    return jwt.sign(key.privateKey);
  };

  const github = (claims: Partial<GithubClaims> = {}, o?: SignOptions) => {
    const repository = claims.repository ?? "acme/infra";
    const environment = claims.environment ?? "production";
    return sign(
      {
        sub: `repo:${repository}:environment:${environment}`,
        repository,
        repository_owner: repository.split("/")[0] ?? "",
        repository_id: "74",
        repository_owner_id: "65",
        repository_visibility: "private",
        ref: "refs/heads/main",
        ref_type: "branch",
        sha: "e83c5163316f89bfbde7d9ab23ca2e25604af290",
        environment,
        job_workflow_ref: `${repository}/.github/workflows/deploy.yml@refs/heads/main`,
        workflow_ref: `${repository}/.github/workflows/deploy.yml@refs/heads/main`,
        workflow: "deploy",
        event_name: "push",
        actor: "octocat",
        actor_id: "12",
        run_id: "6173000000",
        run_number: "42",
        run_attempt: "1",
        runner_environment: "github-hosted",
        ...claims,
      },
      o,
    );
  };

  const gitlab = (claims: Partial<GitlabClaims> = {}, o?: SignOptions) => {
    const project = claims.project_path ?? "acme/infra";
    const ref = claims.ref ?? "main";
    const refType = claims.ref_type ?? "branch";
    return sign(
      {
        sub: `project_path:${project}:ref_type:${refType}:ref:${ref}`,
        project_path: project,
        project_id: "20",
        namespace_path: project.split("/")[0] ?? "",
        namespace_id: "72",
        ref,
        ref_type: refType,
        ref_path: refType === "tag" ? `refs/tags/${ref}` : `refs/heads/${ref}`,
        ref_protected: "true",
        environment: "production",
        environment_protected: "true",
        deployment_tier: "production",
        pipeline_source: "push",
        pipeline_id: "574",
        job_id: "302",
        user_login: "alice",
        user_id: "1",
        runner_id: 1,
        runner_environment: "gitlab-hosted",
        project_visibility: "private",
        ...claims,
      },
      o,
    );
  };

  const rawToken = (header: object, payload: object, signature: string) =>
    `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(payload))}.${signature}`;

  const bad = async (kind: BadToken): Promise<string> => {
    switch (kind) {
      case "expired":
        // Past any leeway: expired ten minutes ago.
        return github({}, { expiresIn: -600 });
      case "not yet valid":
        return github({}, { notBefore: 600, expiresIn: 900 });
      case "wrong audience":
        return github({}, { audience: "https://github.com/acme" });
      case "wrong issuer":
        return github({}, { issuer: "https://token.actions.githubusercontent.com" });
      case "unknown kid": {
        // A key that is never published.
        return github({}, { key: await makeKey("RS256") });
      }
      case "alg none": {
        const payload = decodeJwt(await github());
        return rawToken({ alg: "none", typ: "JWT", kid: keyFor("RS256").kid }, payload, "");
      }
      case "HS256 signed with the public key": {
        // The classic key confusion: the RSA public key's PEM used as an HMAC secret.
        const key = keyFor("RS256");
        const secret = new TextEncoder().encode(await exportSPKI(key.publicKey));
        const now = Math.floor(Date.now() / 1000);
        return new SignJWT({ sub: "repo:acme/infra:environment:production", repository: "acme/infra" })
          .setProtectedHeader({ alg: "HS256", kid: key.kid, typ: "JWT" })
          .setIssuer(url)
          .setAudience(audience)
          .setIssuedAt(now)
          .setExpirationTime(now + 300)
          .sign(secret);
      }
      case "tampered payload": {
        const signed = await github({ repository: "acme/sandbox" });
        const [header = "", , signature = ""] = signed.split(".");
        const payload = decodeJwt(signed);
        const forged = {
          ...payload,
          repository: "acme/infra",
          sub: "repo:acme/infra:environment:production",
        };
        return `${header}.${base64url.encode(JSON.stringify(forged))}.${signature}`;
      }
      case "signed by an unknown key": {
        // A published kid, but another private key.
        const impostor = await makeKey("RS256");
        return github({}, { key: { ...impostor, kid: keyFor("RS256").kid } });
      }
      case "no sub":
        return sign({ repository: "acme/infra" });
      case "no exp":
        return sign({ sub: "repo:acme/infra:environment:production" }, { noExpiry: true });
    }
  };

  return {
    url,
    audience,
    requests,
    jwks: () => ({ keys: published.map((k) => k.jwk) }),
    async writeJwksFile(file) {
      await writeFile(file, JSON.stringify({ keys: published.map((k) => k.jwk) }, null, 2));
    },
    sign,
    github,
    gitlab,
    bad,
    async rotate(alg = "RS256", o = {}) {
      const key = await makeKey(alg);
      const old = current.get(alg);
      current.set(alg, key);
      if (o.dropOld && old) published.splice(published.indexOf(old), 1);
      published.push(key);
      return key.kid;
    },
    failDiscovery(times) {
      discoveryFailures = times;
    },
    failJwks(times) {
      jwksFailures = times;
    },
    advertise(issuer) {
      advertised = issuer;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
