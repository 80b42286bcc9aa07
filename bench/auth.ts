/**
 * What identity costs a read: GetState of a 1 KiB state from three servers, each its own process
 * on the same registry, measured in one run with the sides taking turns (in rotating order):
 *
 * - off: no identity configured, loopback, every caller anonymous, no policy (the default);
 * - API token: `--tokens-file` (several entries, as a site has), the client sends its secret;
 * - OIDC JWT: `--oidc-issuer` / `--oidc-audience` naming a real issuer on loopback
 *   (test/harness/oidc-issuer.ts), the client sends one GitHub Actions-shaped JWT (RS256) for the
 *   whole run, as a CI job does; the server fetched the issuer's JWKS at start and has it cached.
 *
 * Both identity servers also have a policy file granting the bench's principals read and write on
 * `bench*` among rules for other principals, so authorization is in the measured path too. Before
 * measuring, the bench checks that identity is really enforced: no credential is refused, and a
 * credential the policy grants nothing sees no state.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { newSecret, sha256 } from "../src/auth/token-set.ts";
import { startOidcIssuer } from "../test/harness/oidc-issuer.ts";
import { startRegistry } from "../test/harness/registry.ts";
import { CLIENT_PROTOCOL_HTTP1, type StateClient, stateClient } from "./lib/connect-client.ts";
import { type BenchResult, progress, type TargetCheck } from "./lib/report.ts";
import { startServerProcess } from "./lib/server-process.ts";
import { setSerial, stateBytes } from "./lib/state-data.ts";
import { ms, round3, type Summary } from "./lib/stats.ts";
import { renderTable } from "./lib/table.ts";
import { takeTurns } from "./lib/take-turns.ts";

const KiB = 1024;
const WORKSPACE = "bench";
const STATE_BYTES = KiB;
/** More rounds than get-put's 1 KiB case (300): the target is a 5 % difference of p50. */
const ROUNDS = { iterations: 1000, warmup: 50 };
const TARGET_RATIO = 1.05;
const TOKEN_NAME = "bench-ci";
/** Other entries of the tokens file: every entry's hash is compared on every call. */
const OTHER_TOKENS = 9;
const REPOSITORY = "acme/infra";
/** Long enough for the whole run: the bench presents one JWT throughout, as a CI job does. */
const JWT_LIFETIME_S = 3600;

type Side = "off" | "token" | "jwt";
const SIDES: readonly { side: Side; label: string }[] = [
  { side: "off", label: "off (anonymous, loopback)" },
  { side: "token", label: "API token (--tokens-file) + policy" },
  { side: "jwt", label: "OIDC JWT, cached JWKS + policy" },
];

export async function runAuth(): Promise<BenchResult> {
  const cleanups: Array<() => unknown> = [];
  try {
    const registry = await startRegistry();
    cleanups.push(() => registry.stop());
    const issuer = await startOidcIssuer({ audience: "oci-tfstate" });
    cleanups.push(() => issuer.stop());
    const dir = await mkdtemp(path.join(tmpdir(), "bench-auth-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    const secret = newSecret();
    const deniedSecret = newSecret();
    const tokensFile = path.join(dir, "tokens.json");
    await writeFile(tokensFile, JSON.stringify({ tokens: tokenEntries(secret, deniedSecret) }, null, 2));
    const policyFile = path.join(dir, "policy.json");
    await writeFile(policyFile, JSON.stringify(policyDocument(issuer.url), null, 2));

    const repository = (side: Side) => `${registry.host}/bench/auth-${side}`;
    const start = async (side: Side, args: string[]) => {
      const server = await startServerProcess({ repository: repository(side), args });
      cleanups.push(() => server.stop());
      return server;
    };
    progress("auth: starting the servers (off, API token, OIDC JWT)");
    const servers = {
      off: await start("off", []),
      token: await start("token", ["--tokens-file", tokensFile, "--policy-file", policyFile]),
      jwt: await start("jwt", [
        "--oidc-issuer",
        issuer.url,
        "--oidc-audience",
        issuer.audience,
        "--policy-file",
        policyFile,
      ]),
    };

    const jwt = await issuer.github({ repository: REPOSITORY }, { expiresIn: JWT_LIFETIME_S });
    const client = (side: Side, authorization?: string): StateClient => {
      const c = stateClient(servers[side].url, {
        httpVersion: "1.1",
        responseCompression: "none",
        ...(authorization === undefined ? {} : { authorization }),
      });
      cleanups.push(() => c.close());
      return c;
    };
    const clients: Record<Side, StateClient> = {
      off: client("off"),
      token: client("token", `Bearer ${secret}`),
      jwt: client("jwt", `Bearer ${jwt}`),
    };

    await checkEnforced(servers.token.url, "API token", `Bearer ${deniedSecret}`);
    const deniedJwt = await issuer.github({ repository: "acme/sandbox" }, { expiresIn: JWT_LIFETIME_S });
    await checkEnforced(servers.jwt.url, "OIDC JWT", `Bearer ${deniedJwt}`);

    const state = stateBytes(STATE_BYTES, STATE_BYTES);
    for (const [i, { side }] of SIDES.entries()) {
      setSerial(state, i + 1);
      await clients[side].client.putState({ workspace: WORKSPACE, state });
    }

    progress(`auth: GetState ${STATE_BYTES / KiB} KiB, ${ROUNDS.iterations} rounds`);
    const getState = (side: Side) => async () => {
      const res = await clients[side].client.getState({ workspace: WORKSPACE });
      if (res.state.byteLength !== STATE_BYTES) {
        throw new Error(`GetState (${side}) returned ${res.state.byteLength} bytes, not ${STATE_BYTES}`);
      }
    };
    const jwksBefore = issuer.requests.jwks;
    const summaries = await takeTurns(ROUNDS, {
      off: getState("off"),
      token: getState("token"),
      jwt: getState("jwt"),
    });
    const jwksFetches = issuer.requests.jwks - jwksBefore;
    return report(summaries as Record<Side, Summary>, { jwksFetches, jwtBytes: jwt.length });
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

function tokenEntries(secret: string, deniedSecret: string): object[] {
  const entry = (name: string, s: string) => ({ name, sha256: sha256(s).toString("hex") });
  const others = Array.from({ length: OTHER_TOKENS - 1 }, (_, i) => entry(`other-${i + 1}`, newSecret()));
  return [
    ...others.slice(0, 4),
    entry(TOKEN_NAME, secret),
    entry("denied", deniedSecret),
    ...others.slice(4),
  ];
}

/** The bench's principals may read and write `bench*`; other rules for other principals around them. */
function policyDocument(issuerUrl: string): object {
  return {
    rules: [
      { principals: [{ token: "other-*" }], workspaces: ["team-*"], permissions: ["read", "lock"] },
      {
        principals: [
          { token: TOKEN_NAME },
          { oidc: { issuer: issuerUrl, claims: { repository: REPOSITORY } } },
        ],
        workspaces: ["bench*"],
        permissions: ["read", "write"],
      },
      {
        principals: [{ oidc: { issuer: issuerUrl, claims: { repository: "acme/platform-*" } } }],
        workspaces: ["platform-*"],
        permissions: ["admin"],
      },
    ],
  };
}

/**
 * Identity is enforced on this server: GetState without a credential is refused, and with a
 * credential the policy grants nothing the workspace does not exist.
 */
async function checkEnforced(url: string, what: string, deniedAuthorization: string): Promise<void> {
  const codeOf = async (authorization?: string): Promise<Code | "OK"> => {
    const c = stateClient(url, {
      httpVersion: "1.1",
      responseCompression: "none",
      ...(authorization === undefined ? {} : { authorization }),
    });
    try {
      await c.client.getState({ workspace: WORKSPACE });
      return "OK";
    } catch (err) {
      return ConnectError.from(err).code;
    } finally {
      c.close();
    }
  };
  const anonymous = await codeOf();
  if (anonymous !== Code.Unauthenticated) {
    throw new Error(`the ${what} server answered ${codeName(anonymous)} to a call without credentials`);
  }
  const denied = await codeOf(deniedAuthorization);
  if (denied !== Code.NotFound) {
    throw new Error(
      `the ${what} server answered ${codeName(denied)} to a principal the policy grants nothing`,
    );
  }
}

function codeName(c: Code | "OK"): string {
  return c === "OK" ? "OK" : Code[c];
}

function report(s: Record<Side, Summary>, info: { jwksFetches: number; jwtBytes: number }): BenchResult {
  const ratio = (side: Side, p: "p50" | "p99") => s[side][p] / s.off[p];
  const table = renderTable(
    ["identity", "p50", "p99", "p50 vs off", "p99 vs off", "p50 added", "n"],
    SIDES.map(({ side, label }) => [
      label,
      `${ms(s[side].p50)} ms`,
      `${ms(s[side].p99)} ms`,
      `${ratio(side, "p50").toFixed(3)}×`,
      `${ratio(side, "p99").toFixed(2)}×`,
      side === "off" ? "" : `${(s[side].p50 - s.off.p50 >= 0 ? "+" : "") + ms(s[side].p50 - s.off.p50)} ms`,
      String(s[side].n),
    ]),
    ["left", "right", "right", "right", "right", "right", "right"],
  );
  const targets: TargetCheck[] = (["token", "jwt"] as const).map((side) => {
    const value = ratio(side, "p50");
    return {
      what: `GetState 1 KiB p50, ${side === "token" ? "API token" : "OIDC JWT"} / off`,
      target: `≤ ${TARGET_RATIO.toFixed(2)}×`,
      actual: `${value.toFixed(3)}×`,
      met: value <= TARGET_RATIO,
    };
  });
  const text = [
    `GetState of a ${STATE_BYTES / KiB} KiB state, ${CLIENT_PROTOCOL_HTTP1} (connect-node, uncompressed`,
    "responses), one server process per side on the same registry, the sides taking turns. Identity",
    `servers have a policy file; the tokens file has ${OTHER_TOKENS + 1} entries; the JWT is RS256,`,
    `${info.jwtBytes} bytes, the same one for every call. JWKS fetches during the timed rounds:`,
    `${info.jwksFetches}. Times are per call, client side.`,
    "",
    table,
  ].join("\n");
  const figures = {
    client: CLIENT_PROTOCOL_HTTP1,
    stateBytes: STATE_BYTES,
    jwksFetchesDuringRounds: info.jwksFetches,
    sides: SIDES.map(({ side }) => ({
      side,
      n: s[side].n,
      p50Ms: round3(s[side].p50),
      p99Ms: round3(s[side].p99),
      meanMs: round3(s[side].mean),
      ratioP50: round3(ratio(side, "p50")),
      ratioP99: round3(ratio(side, "p99")),
    })),
  };
  return { name: "auth", text, targets, figures };
}
