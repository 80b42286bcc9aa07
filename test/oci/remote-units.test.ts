/** The remote client's pure parts: challenge parsing, scopes, Retry-After, backoff, error mapping. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  UnimplementedError,
} from "../../src/errors.ts";
import { parseChallenges } from "../../src/oci/auth-challenge.ts";
import { normalizeServerKey } from "../../src/oci/docker-config.ts";
import { mergeScopes } from "../../src/oci/registry-auth.ts";
import { errorFromResponse, registryErrorInfo } from "../../src/oci/registry-error.ts";
import { nextLink } from "../../src/oci/remote.ts";
import { backoffMs, parseRetryAfter, resolveRetryOptions } from "../../src/oci/retry.ts";

describe("WWW-Authenticate parsing", () => {
  test("a Distribution bearer challenge with a comma inside the quoted scope", () => {
    const header =
      'Bearer realm="https://auth.example.com/token",service="registry.example.com",' +
      'scope="repository:org/state:pull,push"';
    assert.deepEqual(parseChallenges([header]), [
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.example.com/token",
          service: "registry.example.com",
          scope: "repository:org/state:pull,push",
        },
      },
    ]);
  });

  test("several challenges in one header, spaces around '=', escapes and token values", () => {
    const header =
      'Basic realm="a \\"quoted\\" realm", Bearer realm = "https://t/x", error=insufficient_scope';
    assert.deepEqual(parseChallenges([header]), [
      { scheme: "basic", params: { realm: 'a "quoted" realm' } },
      { scheme: "bearer", params: { realm: "https://t/x", error: "insufficient_scope" } },
    ]);
  });

  test("challenges spread over several headers keep their order; case is normalised", () => {
    assert.deepEqual(parseChallenges(['BASIC Realm="r"', 'bearer REALM="https://t"']), [
      { scheme: "basic", params: { realm: "r" } },
      { scheme: "bearer", params: { realm: "https://t" } },
    ]);
  });

  test("junk, token68 and unterminated quotes do not throw", () => {
    assert.deepEqual(parseChallenges(['Negotiate abc123==, Bearer realm="https://t']), [
      { scheme: "negotiate", params: {} },
      { scheme: "bearer", params: { realm: "https://t" } },
    ]);
    assert.deepEqual(parseChallenges(["", " , ,", '=x, realm="r"']), []);
  });
});

test("scopes of the same repository merge their actions", () => {
  assert.deepEqual(
    mergeScopes([
      "repository:a/b:pull",
      "repository:a/b:push,pull",
      "repository:c:delete",
      "registry:catalog:*",
    ]),
    ["repository:a/b:pull,push", "repository:c:delete", "registry:catalog:*"],
  );
});

test("Retry-After as seconds or an HTTP date", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("7", now), 7000);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:03 GMT", now), 3000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter(undefined, now), undefined);
});

test("backoff grows exponentially, is capped, and has equal jitter", () => {
  const opts = resolveRetryOptions({ initialBackoffMs: 100, maxBackoffMs: 1000, multiplier: 3 });
  assert.equal(
    backoffMs(1, opts, () => 0),
    50,
  );
  assert.equal(
    backoffMs(1, opts, () => 1),
    100,
  );
  assert.equal(
    backoffMs(2, opts, () => 1),
    300,
  );
  assert.equal(
    backoffMs(5, opts, () => 1),
    1000,
  );
  assert.equal(
    backoffMs(5, opts, () => 0),
    500,
  );
  assert.deepEqual(resolveRetryOptions(undefined), {
    maxAttempts: 3,
    initialBackoffMs: 1000,
    maxBackoffMs: 30_000,
    multiplier: 2,
  });
});

test("Link headers: relative, absolute, among other relations", () => {
  const base = new URL("https://r.example/v2/a/tags/list?n=2");
  assert.equal(
    nextLink(['</v2/a/tags/list?n=2&last=b>; rel="next"'], base)?.href,
    "https://r.example/v2/a/tags/list?n=2&last=b",
  );
  assert.equal(
    nextLink(['<https://cdn.example/p2>; rel="prev", <https://cdn.example/p3>; rel=next'], base)?.href,
    "https://cdn.example/p3",
  );
  assert.equal(nextLink(['</x>; rel="last"'], base), undefined);
  assert.equal(nextLink([], base), undefined);
});

test("docker config keys normalise to the registry host", () => {
  assert.equal(normalizeServerKey("https://ghcr.io/v2/"), "ghcr.io");
  assert.equal(normalizeServerKey("http://127.0.0.1:5000"), "127.0.0.1:5000");
  assert.equal(normalizeServerKey("https://index.docker.io/v1/"), "docker.io");
  assert.equal(normalizeServerKey("registry-1.docker.io"), "docker.io");
});

describe("registry answers map to domain errors that keep the status and OCI codes", () => {
  const ctx = { method: "PUT", host: "r.example", what: "push manifest latest in r.example/a" };
  const body = (code: string) =>
    JSON.stringify({ errors: [{ code, message: `${code.toLowerCase()} happened` }] });
  const table: Array<[number, string, new (...args: never[]) => Error]> = [
    [404, body("MANIFEST_UNKNOWN"), NotFoundError],
    [401, body("UNAUTHORIZED"), UnauthenticatedError],
    [403, body("DENIED"), PermissionDeniedError],
    [405, body("UNSUPPORTED"), UnimplementedError],
    [400, body("UNSUPPORTED"), UnimplementedError],
    [413, "", ResourceExhaustedError],
    [400, body("DIGEST_INVALID"), DataLossError],
    [400, body("MANIFEST_INVALID"), InvalidArgumentError],
    [400, body("MANIFEST_BLOB_UNKNOWN"), InvalidArgumentError],
    [409, "", FailedPreconditionError],
    [429, body("TOOMANYREQUESTS"), UnavailableError],
    [500, "<html>oops</html>", UnavailableError],
  ];
  for (const [status, text, kind] of table) {
    test(`${status} ${text.slice(0, 40)} → ${kind.name}`, () => {
      const err = errorFromResponse(status, text, ctx);
      assert.ok(err instanceof kind, `${err.name}: ${err.message}`);
      assert.equal(registryErrorInfo(err)?.status, status);
      assert.ok(err.message.startsWith(ctx.what));
      assert.ok(err.message.includes(String(status)));
      assert.ok(!err.message.includes("<html>"), "HTML bodies are left out of messages");
    });
  }

  test("all OCI codes of the body are kept", () => {
    const err = errorFromResponse(
      400,
      JSON.stringify({
        errors: [{ code: "MANIFEST_BLOB_UNKNOWN" }, { code: "manifest_invalid", message: "x" }],
      }),
      ctx,
    );
    assert.deepEqual(registryErrorInfo(err)?.registryCodes, ["MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID"]);
  });
});
