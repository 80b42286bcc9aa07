/**
 * A JWT that passed is accepted again without being verified again: with keys that go stale at
 * once (every verification fetches the JWKS), a repeat of the same token fetches nothing. The
 * repeat still honours the token's `exp`, stops after the cache's maximum age (so a key the issuer
 * withdrew stops letting its tokens in), and the cache keeps at most its number of tokens.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { issuerFromFlags } from "../../src/auth/oidc-config.ts";
import { type OidcIssuer, startOidcIssuer } from "../harness/oidc-issuer.ts";
import { bearer, type IdentityServer, listWorkspaces, serveWithIdentity } from "./fixture.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server whose keys go stale at once, so each verification that happens fetches the JWKS. */
async function setup(
  verifiedJwts: { maxEntries: number; maxAgeMs: number },
  clockToleranceMs = 30_000,
): Promise<{ own: OidcIssuer; s: IdentityServer; call: (jwt: string) => Promise<string> }> {
  const own = await startOidcIssuer();
  after(() => own.stop());
  const s = await serveWithIdentity({
    oidc: {
      issuers: [{ ...issuerFromFlags(own.url, own.audience), clockToleranceMs }],
      jwksCooldownMs: 0,
      jwksMaxAgeMs: 0,
      verifiedJwts,
    },
  });
  const call = async (jwt: string) => (await listWorkspaces("grpc over h2c", s.url, bearer(jwt))).code;
  return { own, s, call };
}

test("the same JWT again is accepted without verifying it again; another JWT is verified", async () => {
  const { own, s, call } = await setup({ maxEntries: 100, maxAgeMs: 60_000 });
  const jwt = await own.github();
  assert.equal(await call(jwt), "OK");
  const fetched = own.requests.jwks;
  for (let i = 0; i < 5; i++) assert.equal(await call(jwt), "OK");
  assert.equal(own.requests.jwks, fetched, "a repeat of a verified token fetched the keys");
  assert.equal(
    s.principals.at(-1)?.name,
    `oidc:${new URL(own.url).host}:repo:acme/infra:environment:production`,
  );
  assert.equal(await call(await own.github({ run_id: "2" })), "OK");
  assert.ok(own.requests.jwks > fetched, "a new token was not verified");
});

test("a remembered JWT is refused once its exp has passed", async () => {
  // No leeway, so exp itself is the end for the full check too.
  const { own, call } = await setup({ maxEntries: 100, maxAgeMs: 60_000 }, 0);
  const jwt = await own.github({}, { expiresIn: 5 });
  const exp = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString()).exp as number;
  assert.equal(await call(jwt), "OK");
  const fetched = own.requests.jwks;
  assert.equal(await call(jwt), "OK");
  assert.equal(own.requests.jwks, fetched, "the repeat was verified again, not remembered");
  await sleep(exp * 1000 - Date.now() + 200);
  assert.equal(await call(jwt), "Unauthenticated");
});

test("past the cache's maximum age a JWT is verified again, so a withdrawn key stops letting it in", async () => {
  // Long enough for the rotation (an RSA key made on a loaded machine) and a call to fit in.
  const { own, call } = await setup({ maxEntries: 100, maxAgeMs: 3000 });
  const jwt = await own.github();
  assert.equal(await call(jwt), "OK");
  await own.rotate("RS256", { dropOld: true });
  const fetched = own.requests.jwks;
  // Within the maximum age the token is still the one verified (the bounded window).
  assert.equal(await call(jwt), "OK");
  assert.equal(own.requests.jwks, fetched);
  await sleep(3200);
  assert.equal(await call(jwt), "Unauthenticated", "a token of a withdrawn key was still accepted");
  assert.ok(own.requests.jwks > fetched, "the keys were not fetched again to verify it");
});

test("the cache keeps at most its number of tokens, the oldest going first", async () => {
  const { own, call } = await setup({ maxEntries: 2, maxAgeMs: 60_000 });
  const [a, b, c] = [
    await own.github({ run_id: "a" }),
    await own.github({ run_id: "b" }),
    await own.github({ run_id: "c" }),
  ];
  for (const jwt of [a, b, c]) assert.equal(await call(jwt), "OK");
  const fetched = own.requests.jwks;
  assert.equal(await call(c), "OK");
  assert.equal(await call(b), "OK");
  assert.equal(own.requests.jwks, fetched, "the two newest tokens were verified again");
  assert.equal(await call(a), "OK");
  assert.equal(own.requests.jwks, fetched + 1, "the oldest token was still remembered");
});

test("a refused JWT is not remembered: it is checked, and refused, each time", async () => {
  const { own, call } = await setup({ maxEntries: 100, maxAgeMs: 60_000 });
  const bad = await own.bad("signed by an unknown key");
  assert.equal(await call(await own.github()), "OK");
  for (let i = 0; i < 3; i++) {
    const fetched = own.requests.jwks;
    assert.equal(await call(bad), "Unauthenticated");
    assert.ok(own.requests.jwks > fetched, "a refused token was not checked again");
  }
});
