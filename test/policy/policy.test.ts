/**
 * The policy file's rules: every principal form (token, github, gitlab, oidc, anonymous), globs on
 * names and claims, the permissions' implications, and errors that name the rule and field.
 */
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { parse } from "yaml";
import { InvalidArgumentError } from "../../src/errors.ts";
import { globMatch } from "../../src/policy/glob.ts";
import { Policy } from "../../src/policy/policy.ts";
import { loadPolicyFile, openPolicyFile } from "../../src/policy/policy-file.ts";
import type { Principal } from "../../src/rpc/principal.ts";
import { ANONYMOUS } from "../../src/rpc/principal.ts";

const policy = (yaml: string) => Policy.fromDocument(parse(yaml));
const token = (name: string): Principal => ({ method: "token", name, token: name });
const oidc = (issuer: string, claims: Record<string, unknown>): Principal => ({
  method: "oidc",
  name: `oidc:${new URL(issuer).host}:${String(claims.sub)}`,
  issuer,
  subject: String(claims.sub),
  claims,
});
const perms = (p: Policy, who: Principal, ws: string) => [...p.accessFor(who).permissionsOn(ws)].sort();

test("globs: * is any run (slashes too), ? one character, the rest literal", () => {
  assert.equal(globMatch("team-*", "team-a"), true);
  assert.equal(globMatch("team-*", "team-"), true);
  assert.equal(globMatch("team-*", "team/prod"), false);
  assert.equal(globMatch("team/*", "team/prod/eu"), true);
  assert.equal(globMatch("env-?", "env-1"), true);
  assert.equal(globMatch("env-?", "env-12"), false);
  assert.equal(globMatch("a.b", "axb"), false, "a dot is a dot");
  assert.equal(globMatch("(x)|y", "(x)|y"), true, "regex characters are literal");
  assert.equal(globMatch("prod", "production"), false, "anchored");
});

test("token names, anonymous and permissions' implications", () => {
  const p = policy(`
rules:
  - principals: [{ token: "ci-*" }]
    workspaces: ["team-*"]
    permissions: [read, write, lock]
  - principals: [{ token: boss }]
    workspaces: ["*"]
    permissions: [admin]
  - principals: [{ anonymous: true }]
    workspaces: [public]
    permissions: [read-outputs]
`);
  assert.deepEqual(perms(p, token("ci-deploy"), "team-a"), ["lock", "read", "read-outputs", "write"]);
  assert.deepEqual(perms(p, token("ci-deploy"), "ops"), [], "outside its globs");
  assert.deepEqual(perms(p, token("deploy"), "team-a"), [], "a name the glob does not match");
  assert.deepEqual(perms(p, token("boss"), "anything").length, 6, "admin is every permission");
  assert.deepEqual(perms(p, ANONYMOUS, "public"), ["read-outputs"]);
  assert.equal(p.accessFor(ANONYMOUS).visible("public"), true);
  assert.equal(p.accessFor(ANONYMOUS).visible("team-a"), false);
  assert.equal(
    p.accessFor(token("ci-deploy")).can("force-unlock", "team-a"),
    false,
    "nothing implies force-unlock but admin",
  );
  // Rules add up.
  const q = policy(`
rules:
  - { principals: [{ token: a }], workspaces: [w], permissions: [read] }
  - { principals: [{ token: a }], workspaces: ["*"], permissions: [lock] }
`);
  assert.deepEqual(perms(q, token("a"), "w"), ["lock", "read", "read-outputs"]);
});

test("github and gitlab shapes match their issuer's claims; oidc takes any issuer", () => {
  const p = policy(`
rules:
  - principals: [{ github: { repository: "acme/*", ref: refs/heads/main } }]
    workspaces: ["infra-*"]
    permissions: [read, write, lock]
  - principals: [{ gitlab: { project_path: "group/*", environment: production } }]
    workspaces: [gl]
    permissions: [write]
  - principals: [{ gitlab: { issuer: "https://gitlab.example.com", project_path: "ops/*" } }]
    workspaces: [self-hosted]
    permissions: [read]
  - principals: [{ oidc: { issuer: "http://127.0.0.1:9999/", claims: { groups: admins } } }]
    workspaces: ["*"]
    permissions: [admin]
`);
  const gh = (claims: Record<string, unknown>) =>
    oidc("https://token.actions.githubusercontent.com", { sub: "repo:x", ...claims });
  assert.deepEqual(perms(p, gh({ repository: "acme/infra", ref: "refs/heads/main" }), "infra-prod"), [
    "lock",
    "read",
    "read-outputs",
    "write",
  ]);
  assert.deepEqual(
    perms(p, gh({ repository: "acme/infra", ref: "refs/heads/dev" }), "infra-prod"),
    [],
    "every claim must match",
  );
  assert.deepEqual(perms(p, gh({ repository: "evil/infra", ref: "refs/heads/main" }), "infra-prod"), []);
  assert.deepEqual(
    perms(p, gh({ repository: "acme/infra" }), "infra-prod"),
    [],
    "a missing claim matches nothing",
  );
  // The same claims from another issuer are not GitHub's.
  const fake = oidc("https://evil.example.com", {
    sub: "x",
    repository: "acme/infra",
    ref: "refs/heads/main",
  });
  assert.deepEqual(perms(p, fake, "infra-prod"), []);

  const gl = oidc("https://gitlab.com", {
    sub: "project_path:group/app",
    project_path: "group/app",
    environment: "production",
  });
  assert.deepEqual(perms(p, gl, "gl"), ["write"]);
  const self = oidc("https://gitlab.example.com", { sub: "p", project_path: "ops/net" });
  assert.deepEqual(perms(p, self, "self-hosted"), ["read", "read-outputs"]);
  assert.deepEqual(perms(p, self, "gl"), [], "gitlab.com's rule is not the self-hosted issuer's");

  // Arrays match when one element does; a trailing slash on the issuer is the same issuer.
  const admin = oidc("http://127.0.0.1:9999", { sub: "u", groups: ["dev", "admins"] });
  assert.equal(perms(p, admin, "anything").length, 6);
  const notAdmin = oidc("http://127.0.0.1:9999", { sub: "u", groups: ["dev"] });
  assert.deepEqual(perms(p, notAdmin, "anything"), []);
  // A token principal never matches a claim rule, and the reverse.
  assert.deepEqual(perms(p, token("acme/infra"), "infra-prod"), []);
});

test("each mistake names the rule and the field", () => {
  const bad: Array<[string, RegExp]> = [
    ["[]", /policy file: must be a mapping/],
    ["rules: {}", /policy rules: must be a list of rules/],
    ["rulez: []", /policy rulez: is not a policy field/],
    [
      "rules: [{ principals: [], workspaces: [a], permissions: [read] }]",
      /rules\[0\]\.principals: must be a non-empty list/,
    ],
    [
      "rules: [{ principals: [{ token: a }], workspaces: [], permissions: [read] }]",
      /rules\[0\]\.workspaces: must be a non-empty list/,
    ],
    [
      "rules: [{ principals: [{ token: a }], workspaces: [a], permissions: [read, everything] }]",
      /rules\[0\]\.permissions\[1\]: "everything" is not one of read, read-outputs, write, lock, force-unlock, admin/,
    ],
    [
      "rules: [{ principals: [{ token: a, anonymous: true }], workspaces: [a], permissions: [read] }]",
      /exactly one of/,
    ],
    [
      "rules: [{ principals: [{ user: a }], workspaces: [a], permissions: [read] }]",
      /principals\[0\]\.user: is not a kind of principal/,
    ],
    [
      "rules: [{ principals: [{ github: {} }], workspaces: [a], permissions: [read] }]",
      /github: must name at least one claim/,
    ],
    [
      "rules: [{ principals: [{ anonymous: yes }], workspaces: [a], permissions: [read] }]",
      /anonymous: must be true/,
    ],
    [
      "rules: [{ principals: [{ gitlab: { issuer: 'http://gitlab.example.com', project_path: a } }], workspaces: [a], permissions: [read] }]",
      /gitlab\.issuer: must be an https URL/,
    ],
    [
      "rules: [{ principals: [{ oidc: { issuer: 'https://x', sub: a } }], workspaces: [a], permissions: [read] }]",
      /unknown field sub \(claims go under "claims"\)/,
    ],
    [
      "rules: [{ principals: [{ token: a }], workspaces: [a], permissions: [read], extra: 1 }]",
      /rules\[0\]\.extra: is not a rule field/,
    ],
  ];
  for (const [yaml, message] of bad) {
    assert.throws(
      () => policy(yaml),
      (err) => err instanceof InvalidArgumentError && message.test(err.message),
      yaml,
    );
  }
});

test("the file: YAML or JSON, errors name it; a bad reload keeps the policy in force", async () => {
  const file = path.join(tmpdir(), `policy-${process.pid}-${Date.now()}.yaml`);
  after(() => rm(file, { force: true }));
  await writeFile(
    file,
    JSON.stringify({ rules: [{ principals: [{ token: "a" }], workspaces: ["w"], permissions: ["read"] }] }),
  );
  assert.equal(loadPolicyFile(file).accessFor(token("a")).can("read", "w"), true);
  assert.throws(() => loadPolicyFile(`${file}.missing`), /cannot read the policy file .*ENOENT/);
  await writeFile(file, "rules: [");
  assert.throws(() => loadPolicyFile(file), /is not valid YAML or JSON/);

  const logged: Array<[string, string]> = [];
  const logger = {
    debug() {},
    info: (m: string) => logged.push(["info", m]),
    warn() {},
    error: (m: string) => logged.push(["error", m]),
  };
  await writeFile(file, "rules: [{ principals: [{ token: a }], workspaces: [w], permissions: [read] }]");
  const source = openPolicyFile(file, logger);
  await writeFile(file, "rules: [{ principals: [{ token: a }], workspaces: [w], permissions: [write] }]");
  assert.equal(source.reload(), true);
  assert.equal(source.current.accessFor(token("a")).can("write", "w"), true);
  await writeFile(file, "rules: 3");
  assert.equal(source.reload(), false);
  assert.equal(source.current.accessFor(token("a")).can("write", "w"), true, "the last good policy stays");
  assert.deepEqual(
    logged.map(([level]) => level),
    ["info", "error"],
  );
});
