/**
 * Reading the credential from the Authorization header: Bearer on both surfaces, Basic (the
 * password is the credential) on the http backend only, a JWT told from an API token by its shape,
 * and every other header refused with a message that says what is expected and never echoes it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isJwtShaped, readCredential } from "../../src/auth/credentials.ts";
import { UnauthenticatedError } from "../../src/errors.ts";
import { basic } from "./fixture.ts";

const JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
const TOKEN = "otfs_3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

const read = (authorization: string | undefined, surface: "rpc" | "http") =>
  readCredential(new Headers(authorization === undefined ? {} : { authorization }), surface);

function refused(authorization: string, surface: "rpc" | "http", message: RegExp): void {
  assert.throws(
    () => read(authorization, surface),
    (err) => {
      assert.ok(err instanceof UnauthenticatedError, String(err));
      assert.match(err.message, message);
      return true;
    },
  );
}

test("no Authorization header, or an empty one, is no credential", () => {
  assert.deepEqual(read(undefined, "rpc"), { kind: "none" });
  assert.deepEqual(read("  ", "http"), { kind: "none" });
});

test("Bearer carries a JWT or an API token on both surfaces; the scheme is case-insensitive", () => {
  for (const surface of ["rpc", "http"] as const) {
    assert.deepEqual(read(`Bearer ${JWT}`, surface), { kind: "jwt", value: JWT });
    assert.deepEqual(read(`bearer ${TOKEN}`, surface), { kind: "token", value: TOKEN });
  }
});

test("Basic on the http backend: the password is the credential, the username is ignored", () => {
  assert.deepEqual(read(basic("oidc", JWT), "http"), { kind: "jwt", value: JWT });
  assert.deepEqual(read(basic("ci-deploy", TOKEN), "http"), { kind: "token", value: TOKEN });
  assert.deepEqual(read(basic("", TOKEN), "http"), { kind: "token", value: TOKEN });
  // A colon in the password belongs to the password.
  assert.deepEqual(read(basic("u", "a:b"), "http"), { kind: "token", value: "a:b" });
});

test("Basic on RPC is refused, saying to use Bearer", () => {
  refused(
    basic("oidc", JWT),
    "rpc",
    /RPC calls take Authorization: Bearer <token>; Basic is for the Terraform http backend/,
  );
});

test("malformed headers are refused with what was expected", () => {
  refused(
    "Bearer",
    "rpc",
    /^malformed Authorization header: Bearer without a token; expected Authorization: Bearer <token>$/,
  );
  refused(`Bearer ${TOKEN}, Bearer ${TOKEN}`, "rpc", /characters a token cannot have/);
  refused("Basic !!!", "http", /not base64/);
  refused(`Basic ${Buffer.from("no-colon").toString("base64")}`, "http", /without a colon/);
  refused(basic("oidc", ""), "http", /the Basic password is empty/);
  refused(`Bearer ${"a".repeat(20_000)}`, "http", /too long/);
});

test("other schemes are refused; only a registered scheme name is echoed, never a bare secret", () => {
  refused(
    'Digest username="x"',
    "http",
    /^the Authorization scheme digest is not supported; expected Authorization: Bearer <token>, or Basic/,
  );
  const secret = "hunter2-secret";
  assert.throws(
    () => read(secret, "rpc"),
    (err) =>
      err instanceof UnauthenticatedError &&
      !err.message.includes(secret) &&
      /this Authorization scheme/.test(err.message),
  );
  assert.throws(
    () => read(`${secret} more`, "rpc"),
    (err) => err instanceof UnauthenticatedError && !err.message.includes(secret),
  );
});

test("a JWT is three base64url parts separated by dots (an empty signature still counts, to be refused as a JWT)", () => {
  assert.equal(isJwtShaped(JWT), true);
  assert.equal(isJwtShaped("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."), true);
  assert.equal(isJwtShaped(TOKEN), false);
  assert.equal(isJwtShaped("a.b"), false);
  assert.equal(isJwtShaped("a.b.c.d"), false);
  assert.equal(isJwtShaped("a+b.c.d"), false);
  assert.equal(isJwtShaped(".b.c"), false);
});
