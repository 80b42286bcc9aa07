import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidArgumentError } from "../../src/errors.ts";
import { parseRepositoryReference } from "../../src/oci/reference.ts";

describe("parseRepositoryReference", () => {
  const valid: Array<[string, string, string]> = [
    ["ghcr.io/acme/tfstate", "ghcr.io", "acme/tfstate"],
    ["127.0.0.1:5000/state", "127.0.0.1:5000", "state"],
    ["localhost/a", "localhost", "a"],
    ["localhost:65535/a/b/c/d", "localhost:65535", "a/b/c/d"],
    ["[::1]:5000/org/repo", "[::1]:5000", "org/repo"],
    ["registry.example.com/org/team/env/prod/state", "registry.example.com", "org/team/env/prod/state"],
    ["r.io/a.b_c__d--e/x-y", "r.io", "a.b_c__d--e/x-y"],
    ["My-Registry.Example.com/lower", "My-Registry.Example.com", "lower"],
  ];
  for (const [ref, host, repository] of valid) {
    test(`accepts ${ref}`, () => {
      assert.deepEqual(parseRepositoryReference(ref), { host, repository });
    });
  }

  const invalid: Array<[string, RegExp]> = [
    ["", /empty/],
    ["ghcr.io", /path is missing/],
    ["ghcr.io/", /path is missing/],
    ["/acme/state", /host is missing/],
    ["ghcr.io/Acme/state", /uppercase/],
    ["ghcr.io/acme/st ate", /may only hold/],
    ["ghcr.io/acme/st+ate", /may only hold/],
    ["ghcr.io/acme/.state", /may only hold/],
    ["ghcr.io/acme/state-", /may only hold/],
    ["ghcr.io/acme/state:v1", /a tag \(":v1"\) is not allowed/],
    [`ghcr.io/acme/state@sha256:${"a".repeat(64)}`, /digest .* not allowed/],
    ["ghcr.io:abc/acme", /port "abc"/],
    ["ghcr.io:0/acme", /port "0"/],
    ["ghcr.io:70000/acme", /port "70000"/],
    ["ghcr.io:/acme", /port ""/],
    ["ghcr.io/acme//state", /empty component/],
    ["ghcr.io/acme/state/", /empty component/],
    ["https://ghcr.io/acme/state", /scheme/],
    ["gh_cr.io/acme", /not a valid registry host/],
    ["-ghcr.io/acme", /not a valid registry host/],
    [" ghcr.io/acme", /whitespace/],
    [`r.io/${"a".repeat(256)}`, /limit is 255/],
  ];
  for (const [ref, message] of invalid) {
    test(`rejects ${JSON.stringify(ref)} with a clear message`, () => {
      assert.throws(
        () => parseRepositoryReference(ref),
        (err: unknown) => {
          assert.ok(err instanceof InvalidArgumentError, `not an InvalidArgumentError: ${String(err)}`);
          assert.match(err.message, message);
          assert.ok(err.message.includes(JSON.stringify(ref)), "the message names the reference");
          return true;
        },
      );
    });
  }
});
