/**
 * OIDC JWTs through the real server: tokens from a real issuer (test/harness/oidc-issuer.ts, keys
 * made on the spot) are accepted over Connect, gRPC, gRPC-Web and the http backend (Basic with the
 * JWT as the password, and Bearer), as the principal `oidc:<issuer host>:<sub>` with every claim;
 * every kind of bad token is refused on both surfaces with nothing but "the credentials were not
 * accepted", and the reason only in the debug log. Keys are discovered once and cached, fetched
 * again for an unknown kid; an issuer that cannot be reached works from a JWKS file.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { NOT_ACCEPTED } from "../../src/auth/authenticator.ts";
import { issuerFromFlags, loadOidcConfig } from "../../src/auth/oidc-config.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../../src/gen/grpc/health/v1/health_pb.ts";
import { ServerReflection } from "../../src/gen/grpc/reflection/v1/reflection_pb.ts";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { tempDir } from "../cli/cli-process.ts";
import { BAD_TOKENS, startOidcIssuer } from "../harness/oidc-issuer.ts";
import { drain, PROTOCOLS } from "../rpc/fixture.ts";
import {
  basic,
  bearer,
  httpBackendGet,
  type IdentityServer,
  listWorkspaces,
  passedAuthentication,
  serveWithIdentity,
} from "./fixture.ts";

const issuer = await startOidcIssuer();
after(() => issuer.stop());
const host = new URL(issuer.url).host;

// Cooldown 0: an unknown kid fetches the keys again at once, so rotation is seen without waiting.
const srv = await serveWithIdentity({
  oidc: { issuers: [issuerFromFlags(issuer.url, issuer.audience)], jwksCooldownMs: 0 },
});

/** Asserts the JWT gets through every RPC protocol and both http backend forms. */
async function assertAccepted(s: IdentityServer, jwt: string, what: string): Promise<void> {
  for (const protocol of PROTOCOLS) {
    assert.deepEqual(
      await listWorkspaces(protocol, s.url, bearer(jwt)),
      { code: "OK", message: "" },
      `${what}, ${protocol}`,
    );
  }
  for (const authorization of [basic("oidc", jwt), basic("anything-at-all", jwt), bearer(jwt)]) {
    const res = await httpBackendGet(s.url, "oidc-ws", authorization);
    assert.ok(
      passedAuthentication(res.status),
      `${what}, http backend ${authorization.split(" ")[0]}: ${res.status} ${res.body}`,
    );
  }
}

/** Asserts the JWT is refused on every RPC protocol and both http backend forms, saying nothing more. */
async function assertRefused(s: IdentityServer, jwt: string, what: string): Promise<void> {
  for (const protocol of PROTOCOLS) {
    assert.deepEqual(
      await listWorkspaces(protocol, s.url, bearer(jwt)),
      { code: "Unauthenticated", message: NOT_ACCEPTED },
      `${what}, ${protocol}`,
    );
  }
  for (const authorization of [basic("oidc", jwt), bearer(jwt)]) {
    const res = await httpBackendGet(s.url, "oidc-ws", authorization);
    assert.equal(res.status, 401, `${what}, http backend ${authorization.split(" ")[0]}`);
    assert.deepEqual(JSON.parse(res.body), { error: NOT_ACCEPTED }, what);
    assert.match(res.headers.get("www-authenticate") ?? "", /^Basic realm="oci-tfstate"/);
  }
}

test("a GitHub Actions token is accepted on every surface as oidc:<issuer host>:<sub> with its claims", async () => {
  const jwt = await issuer.github({ repository: "acme/infra", environment: "production" });
  srv.principals.length = 0;
  await assertAccepted(srv, jwt, "github");
  assert.equal(srv.principals.length, PROTOCOLS.length + 3);
  const p = srv.principals[0];
  assert.ok(p);
  assert.equal(p.method, "oidc");
  assert.equal(p.name, `oidc:${host}:repo:acme/infra:environment:production`);
  assert.equal(p.issuer, issuer.url);
  assert.equal(p.subject, "repo:acme/infra:environment:production");
  assert.equal(p.token, undefined);
  assert.equal(p.claims?.repository, "acme/infra");
  assert.equal(p.claims?.repository_owner, "acme");
  assert.equal(p.claims?.ref, "refs/heads/main");
  assert.equal(p.claims?.environment, "production");
  assert.equal(p.claims?.job_workflow_ref, "acme/infra/.github/workflows/deploy.yml@refs/heads/main");
  assert.equal(p.claims?.aud, issuer.audience);
  assert.ok(Object.isFrozen(p) && Object.isFrozen(p.claims), "a principal cannot be changed by a handler");
  for (const other of srv.principals) assert.deepEqual(other, p);
});

test("a GitLab CI token, signed with ES256, is accepted with its project_path, ref and environment", async () => {
  const jwt = await issuer.gitlab({ project_path: "acme/infra", ref: "main" }, { alg: "ES256" });
  srv.principals.length = 0;
  await assertAccepted(srv, jwt, "gitlab");
  const p = srv.principals[0];
  assert.equal(p?.name, `oidc:${host}:project_path:acme/infra:ref_type:branch:ref:main`);
  assert.equal(p?.claims?.project_path, "acme/infra");
  assert.equal(p?.claims?.namespace_path, "acme");
  assert.equal(p?.claims?.ref, "main");
  assert.equal(p?.claims?.ref_type, "branch");
  assert.equal(p?.claims?.environment, "production");
});

for (const kind of BAD_TOKENS) {
  test(`a token that is ${kind}: refused on every surface, the reason only in the debug log`, async () => {
    const jwt = await issuer.bad(kind);
    const logsBefore = srv.authLogs.length;
    await assertRefused(srv, jwt, kind);
    const logged = srv.authLogs.slice(logsBefore);
    const refusals = logged.filter((l) => l.msg === "authentication refused");
    assert.equal(refusals.length, PROTOCOLS.length + 2);
    for (const r of refusals) {
      assert.equal(r.level, "debug");
      assert.equal(r.fields?.credential, "jwt");
      assert.ok(typeof r.fields?.reason === "string" && r.fields.reason !== "");
    }
    // Not the token, nor any of its parts.
    const text = JSON.stringify(logged);
    for (const part of jwt.split(".").filter((p) => p.length >= 8)) assert.ok(!text.includes(part), kind);
  });
}

test("the debug reasons say what was wrong: expiry, audience, issuer, algorithm, signature", async () => {
  const reasonFor = async (jwt: string) => {
    const before = srv.authLogs.length;
    await listWorkspaces("connect+json over HTTP/1.1", srv.url, bearer(jwt));
    return String(srv.authLogs.slice(before).find((l) => l.msg === "authentication refused")?.fields?.reason);
  };
  assert.match(await reasonFor(await issuer.bad("expired")), /ERR_JWT_EXPIRED/);
  assert.match(await reasonFor(await issuer.bad("not yet valid")), /nbf/);
  assert.match(await reasonFor(await issuer.bad("wrong audience")), /aud/);
  assert.match(await reasonFor(await issuer.bad("wrong issuer")), /not a trusted issuer/);
  assert.match(await reasonFor(await issuer.bad("alg none")), /ERR_JOSE_ALG_NOT_ALLOWED|ERR_JWS_INVALID/);
  assert.match(
    await reasonFor(await issuer.bad("HS256 signed with the public key")),
    /ERR_JOSE_ALG_NOT_ALLOWED/,
  );
  assert.match(
    await reasonFor(await issuer.bad("tampered payload")),
    /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/,
  );
  assert.match(await reasonFor(await issuer.bad("unknown kid")), /ERR_JWKS_NO_MATCHING_KEY/);
  assert.match(await reasonFor(await issuer.bad("no sub")), /sub/);
  assert.match(await reasonFor(await issuer.bad("no exp")), /exp/);
});

test("within the 30 s leeway an expired token still passes; past it, it does not", async () => {
  assert.equal(
    (await listWorkspaces("grpc over h2c", srv.url, bearer(await issuer.github({}, { expiresIn: -10 }))))
      .code,
    "OK",
  );
  assert.equal(
    (await listWorkspaces("grpc over h2c", srv.url, bearer(await issuer.github({}, { expiresIn: -60 }))))
      .code,
    "Unauthenticated",
  );
  assert.equal(
    (await listWorkspaces("grpc over h2c", srv.url, bearer(await issuer.github({}, { notBefore: 10 })))).code,
    "OK",
  );
});

test("WatchLock, DownloadState, UploadState and reflection pass the same point; the probes stay open", async () => {
  const good = { authorization: bearer(await issuer.github()) };
  const bad = { authorization: bearer(await issuer.bad("expired")) };
  const transport = createGrpcTransport({ baseUrl: srv.url });
  const state = createClient(StateService, transport);
  const codeOf = async (run: () => Promise<unknown>) => {
    try {
      await run();
      return "OK";
    } catch (err) {
      return Code[ConnectError.from(err).code];
    }
  };
  const upload = (headers: Record<string, string>) =>
    state.uploadState(
      (async function* () {
        yield { payload: { case: "header" as const, value: { workspace: "oidc-upload" } } };
      })(),
      { headers },
    );
  const reflection = createClient(ServerReflection, transport);
  const reflect = (headers: Record<string, string>) =>
    drain(
      reflection.serverReflectionInfo(
        (async function* () {
          yield { messageRequest: { case: "listServices" as const, value: "" } };
        })(),
        { headers },
      ),
    ).then((r) => {
      if (r.error) throw r.error;
    });
  const watch = (headers: Record<string, string>) =>
    drain(state.watchLock({ workspace: "oidc-watch" }, { headers, signal: AbortSignal.timeout(1000) })).then(
      (r) => {
        if (r.messages.length === 0 && r.error) throw r.error;
      },
    );
  for (const [name, run] of [
    ["WatchLock", watch],
    [
      "DownloadState",
      (h: Record<string, string>) =>
        drain(state.downloadState({ workspace: "nothing-here" }, { headers: h })).then((r) => {
          if (r.error) throw r.error;
        }),
    ],
    ["UploadState", upload],
    ["reflection", reflect],
  ] as const) {
    assert.equal(await codeOf(() => run(bad)), "Unauthenticated", `${name} without a good token`);
    // With a good token each gets the answer it would get without authentication.
    const expected = name === "DownloadState" ? "NotFound" : "OK";
    assert.equal(await codeOf(() => run(good)), expected, `${name} with a good token`);
  }
  // Probes: no credentials needed.
  for (const probe of ["/healthz", "/readyz"])
    assert.equal((await fetch(`${srv.url}${probe}`)).status, 200, probe);
  const health = createClient(Health, transport);
  assert.equal((await health.check({ service: "" })).status, HealthCheckResponse_ServingStatus.SERVING);
});

test("no credentials: 'credentials required', with a Bearer challenge on RPC and a Basic one on the http backend", async () => {
  for (const protocol of PROTOCOLS) {
    assert.deepEqual(await listWorkspaces(protocol, srv.url), {
      code: "Unauthenticated",
      message: "credentials required",
    });
  }
  const rpc = await fetch(`${srv.url}/tfstate.v1.WorkspaceService/ListWorkspaces`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(rpc.status, 401);
  assert.equal(rpc.headers.get("www-authenticate"), 'Bearer realm="oci-tfstate"');
  const http = await httpBackendGet(srv.url, "oidc-ws");
  assert.equal(http.status, 401);
  assert.deepEqual(JSON.parse(http.body), { error: "credentials required" });
  assert.match(http.headers.get("www-authenticate") ?? "", /^Basic realm="oci-tfstate"/);
});

test("the discovery document is fetched once and the keys are cached; an unknown kid is refetched, a rotated key then known", async () => {
  const own = await startOidcIssuer();
  after(() => own.stop());
  // The default 30 s cooldown: an unknown kid right after a fetch does not fetch again.
  const s = await serveWithIdentity({ oidc: { issuers: [issuerFromFlags(own.url, own.audience)] } });
  for (let i = 0; i < 10; i++) {
    assert.equal(
      (await listWorkspaces("grpc over h2c", s.url, bearer(await own.github({ run_id: String(i) })))).code,
      "OK",
    );
  }
  assert.deepEqual(own.requests, { discovery: 1, jwks: 1 });
  assert.equal(
    (await listWorkspaces("grpc over h2c", s.url, bearer(await own.bad("unknown kid")))).code,
    "Unauthenticated",
  );
  assert.deepEqual(
    own.requests,
    { discovery: 1, jwks: 1 },
    "within the cooldown an unknown kid fetches nothing",
  );

  // The shared server has no cooldown: a rotated key is fetched and accepted; an unknown one stays refused.
  const jwksBefore = issuer.requests.jwks;
  const kid = await issuer.rotate("RS256", { dropOld: true });
  const rotated = await issuer.github();
  assert.equal(JSON.parse(Buffer.from(rotated.split(".")[0] ?? "", "base64url").toString()).kid, kid);
  assert.equal((await listWorkspaces("grpc over h2c", srv.url, bearer(rotated))).code, "OK");
  assert.equal(issuer.requests.jwks, jwksBefore + 1, "the keys were fetched again for the new kid");
  assert.equal(
    (await listWorkspaces("grpc over h2c", srv.url, bearer(await issuer.bad("unknown kid")))).code,
    "Unauthenticated",
  );
  assert.equal(issuer.requests.jwks, jwksBefore + 2, "an unknown kid is looked up once more, then refused");
  assert.equal(issuer.requests.discovery, 1);
});

test("an issuer that cannot be reached works from a JWKS file given in the issuers file", async () => {
  const dir = await tempDir();
  const offline = "https://issuer.invalid";
  await issuer.writeJwksFile(path.join(dir, "keys.json"));
  const file = path.join(dir, "issuers.yaml");
  await writeFile(
    file,
    [
      "issuers:",
      `  - issuer: ${offline}`,
      "    audience: [oci-tfstate, other]",
      "    jwks_file: keys.json",
      "",
    ].join("\n"),
  );
  const before = { ...issuer.requests };
  const s = await serveWithIdentity({ oidc: { issuers: await loadOidcConfig(file) } });
  const jwt = await issuer.github({}, { issuer: offline });
  await assertAccepted(s, jwt, "jwks file");
  assert.equal(s.principals[0]?.name, "oidc:issuer.invalid:repo:acme/infra:environment:production");
  await assertRefused(
    s,
    await issuer.github({}, { issuer: offline, audience: "nope" }),
    "jwks file, wrong audience",
  );
  // The harness issuer's own tokens are not trusted by this server.
  await assertRefused(s, await issuer.github(), "another issuer");
  assert.deepEqual(issuer.requests, before, "nothing was fetched");
});

test("only the configured algorithms are accepted", async () => {
  const s = await serveWithIdentity({
    oidc: { issuers: [{ ...issuerFromFlags(issuer.url, issuer.audience), algorithms: ["ES256"] }] },
  });
  assert.equal(
    (await listWorkspaces("grpc over h2c", s.url, bearer(await issuer.github({}, { alg: "ES256" })))).code,
    "OK",
  );
  assert.equal(
    (await listWorkspaces("grpc over h2c", s.url, bearer(await issuer.github({}, { alg: "RS256" })))).code,
    "Unauthenticated",
  );
});

test("while discovery fails, tokens get UNAVAILABLE (503), never a 401; it is retried with backoff until it works", async () => {
  const flaky = await startOidcIssuer();
  after(() => flaky.stop());
  flaky.failDiscovery(2);
  const s = await serveWithIdentity({
    oidc: {
      issuers: [issuerFromFlags(flaky.url, flaky.audience)],
      discoveryRetry: { initialMs: 300, maxMs: 600 },
    },
  });
  const jwt = await flaky.github();
  const first = await listWorkspaces("connect+json over HTTP/1.1", s.url, bearer(jwt));
  assert.equal(first.code, "Unavailable");
  assert.doesNotMatch(first.message, /credentials were not accepted/);
  assert.equal((await httpBackendGet(s.url, "oidc-ws", basic("oidc", jwt))).status, 503);
  const deadline = Date.now() + 30_000;
  let outcome = first;
  while (outcome.code !== "OK" && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    outcome = await listWorkspaces("connect+json over HTTP/1.1", s.url, bearer(jwt));
    assert.ok(outcome.code === "OK" || outcome.code === "Unavailable", outcome.code);
  }
  assert.equal(outcome.code, "OK");
  // Two failures, one success: requests in between waited for the backoff instead of fetching.
  assert.equal(flaky.requests.discovery, 3);
});

test("a discovery document naming another issuer is not trusted: its tokens are unavailable, not accepted", async () => {
  const liar = await startOidcIssuer();
  after(() => liar.stop());
  liar.advertise("https://token.actions.githubusercontent.com");
  const s = await serveWithIdentity({
    oidc: {
      issuers: [issuerFromFlags(liar.url, liar.audience)],
      discoveryRetry: { initialMs: 60_000, maxMs: 60_000 },
    },
  });
  const outcome = await listWorkspaces("grpc over h2c", s.url, bearer(await liar.github()));
  assert.equal(outcome.code, "Unavailable");
  assert.equal(liar.requests.jwks, 0, "no keys were fetched from a jwks_uri it named");
  const warning = s.authLogs.find((l) => l.msg.startsWith("oidc discovery failed"));
  assert.match(
    String(warning?.fields?.error),
    /names issuer "https:\/\/token\.actions\.githubusercontent\.com", not/,
  );
});

test("when the keys cannot be fetched again, the keys fetched before still verify; a kid they lack is unavailable", async () => {
  const own = await startOidcIssuer();
  after(() => own.stop());
  // Keys go stale at once, so every verification fetches them again.
  const s = await serveWithIdentity({
    oidc: { issuers: [issuerFromFlags(own.url, own.audience)], jwksCooldownMs: 0, jwksMaxAgeMs: 0 },
  });
  assert.equal((await listWorkspaces("grpc over h2c", s.url, bearer(await own.github()))).code, "OK");
  own.failJwks(1000);
  assert.equal((await listWorkspaces("grpc over h2c", s.url, bearer(await own.github()))).code, "OK");
  assert.ok(
    s.authLogs.some((l) => l.msg === "cannot fetch the issuer's keys; using the keys fetched before"),
  );
  await own.rotate("RS256");
  const rotated = await listWorkspaces("grpc over h2c", s.url, bearer(await own.github()));
  assert.equal(rotated.code, "Unavailable", "a new key that cannot be fetched is not the token's fault");
  assert.equal((await httpBackendGet(s.url, "oidc-ws", basic("oidc", await own.github()))).status, 503);
  own.failJwks(0);
  assert.equal((await listWorkspaces("grpc over h2c", s.url, bearer(await own.github()))).code, "OK");
});
