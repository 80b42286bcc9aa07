/**
 * API tokens through the real server: a token from the tokens file is accepted over Connect, gRPC,
 * gRPC-Web (Bearer) and the http backend (Basic with any username, or Bearer) as the principal
 * named after its entry; anything else is refused with the generic message, and neither the token
 * nor a piece of it ever reaches a log. Tokens and OIDC work side by side.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, test } from "node:test";
import { CREDENTIALS_REQUIRED, NOT_ACCEPTED } from "../../src/auth/authenticator.ts";
import { issuerFromFlags } from "../../src/auth/oidc-config.ts";
import { newSecret, sha256 } from "../../src/auth/token-set.ts";
import { tempDir } from "../cli/cli-process.ts";
import { startOidcIssuer } from "../harness/oidc-issuer.ts";
import { PROTOCOLS } from "../rpc/fixture.ts";
import {
  basic,
  bearer,
  httpBackendGet,
  listWorkspaces,
  passedAuthentication,
  serveWithIdentity,
} from "./fixture.ts";

const deploy = newSecret();
const reader = newSecret();
const dir = await tempDir();
const file = path.join(dir, "tokens.yaml");
await writeFile(
  file,
  [
    "tokens:",
    "  - name: ci-deploy",
    `    sha256: ${sha256(deploy).toString("hex")}`,
    "    description: deploy pipeline",
    "  - name: reader",
    `    sha256: ${sha256(reader).toString("hex")}`,
    "",
  ].join("\n"),
);
const issuer = await startOidcIssuer();
after(() => issuer.stop());
const srv = await serveWithIdentity({
  tokens: { file },
  oidc: { issuers: [issuerFromFlags(issuer.url, issuer.audience)] },
});

/** Every log line of the server and the authenticator, as one string. */
const allLogs = () => JSON.stringify([srv.logs, srv.authLogs]);

test("an API token is accepted on every surface as the principal of its entry", async () => {
  srv.principals.length = 0;
  for (const protocol of PROTOCOLS) {
    assert.deepEqual(
      await listWorkspaces(protocol, srv.url, bearer(deploy)),
      { code: "OK", message: "" },
      protocol,
    );
  }
  for (const authorization of [basic("ci-deploy", deploy), basic("whoever", deploy), bearer(deploy)]) {
    const res = await httpBackendGet(srv.url, "tokens-ws", authorization);
    assert.ok(passedAuthentication(res.status), `${authorization.split(" ")[0]}: ${res.status}`);
  }
  assert.equal(srv.principals.length, PROTOCOLS.length + 3);
  for (const p of srv.principals)
    assert.deepEqual(p, { method: "token", name: "ci-deploy", token: "ci-deploy" });
  // The username is not what names the caller: the token is.
  srv.principals.length = 0;
  await httpBackendGet(srv.url, "tokens-ws", basic("ci-deploy", reader));
  assert.deepEqual(srv.principals, [{ method: "token", name: "reader", token: "reader" }]);
});

test("an unknown token is refused on every surface with the generic message; no piece of it is logged", async () => {
  const wrong = newSecret();
  const near = `${deploy.slice(0, -1)}${deploy.endsWith("A") ? "B" : "A"}`;
  for (const token of [wrong, near]) {
    for (const protocol of PROTOCOLS) {
      assert.deepEqual(await listWorkspaces(protocol, srv.url, bearer(token)), {
        code: "Unauthenticated",
        message: NOT_ACCEPTED,
      });
    }
    for (const authorization of [basic("ci-deploy", token), bearer(token)]) {
      const res = await httpBackendGet(srv.url, "tokens-ws", authorization);
      assert.equal(res.status, 401);
      assert.deepEqual(JSON.parse(res.body), { error: NOT_ACCEPTED });
    }
  }
  const refusal = srv.authLogs.findLast((l) => l.msg === "authentication refused");
  assert.equal(refusal?.level, "debug");
  assert.equal(refusal?.fields?.credential, "api token");
  assert.equal(refusal?.fields?.reason, "no entry of the tokens file has this token's hash");
  const logged = allLogs();
  for (const secret of [wrong, near, deploy, reader]) {
    // `otfs_` is every token's; anything longer of a token is its own.
    assert.ok(!logged.includes(secret.slice(0, 9)), "a token prefix reached a log");
    assert.ok(!logged.includes(secret.slice(-8)), "a token suffix reached a log");
  }
});

test("no credentials is 'credentials required'; Basic on RPC is refused saying to use Bearer", async () => {
  assert.deepEqual(await listWorkspaces("grpc over h2c", srv.url), {
    code: "Unauthenticated",
    message: CREDENTIALS_REQUIRED,
  });
  assert.deepEqual(await listWorkspaces("connect+json over HTTP/1.1", srv.url, basic("ci-deploy", deploy)), {
    code: "Unauthenticated",
    message: "RPC calls take Authorization: Bearer <token>; Basic is for the Terraform http backend",
  });
  const res = await httpBackendGet(srv.url, "tokens-ws", "Digest realm=x");
  assert.equal(res.status, 401);
  assert.match(JSON.parse(res.body).error, /^the Authorization scheme digest is not supported/);
});

test("API tokens and OIDC JWTs side by side: each is checked by its own kind", async () => {
  srv.principals.length = 0;
  const jwt = await issuer.github();
  assert.equal((await listWorkspaces("grpc over h2c", srv.url, bearer(jwt))).code, "OK");
  assert.equal((await listWorkspaces("grpc over h2c", srv.url, bearer(deploy))).code, "OK");
  assert.deepEqual(
    srv.principals.map((p) => [p.method, p.name]),
    [
      ["oidc", `oidc:${new URL(issuer.url).host}:repo:acme/infra:environment:production`],
      ["token", "ci-deploy"],
    ],
  );
});

test("a JWT where only tokens are configured, or a token where only OIDC is, is refused (reason in the debug log)", async () => {
  const tokensOnly = await serveWithIdentity({ tokens: { file } });
  const jwt = await issuer.github();
  assert.deepEqual(await listWorkspaces("grpc over h2c", tokensOnly.url, bearer(jwt)), {
    code: "Unauthenticated",
    message: NOT_ACCEPTED,
  });
  assert.equal(
    tokensOnly.authLogs.at(-1)?.fields?.reason,
    "a JWT was presented but no OIDC issuer is configured",
  );
  const oidcOnly = await serveWithIdentity({
    oidc: { issuers: [issuerFromFlags(issuer.url, issuer.audience)] },
  });
  assert.deepEqual(await listWorkspaces("grpc over h2c", oidcOnly.url, bearer(deploy)), {
    code: "Unauthenticated",
    message: NOT_ACCEPTED,
  });
  assert.equal(
    oidcOnly.authLogs.at(-1)?.fields?.reason,
    "an API token was presented but no tokens file is configured",
  );
});
