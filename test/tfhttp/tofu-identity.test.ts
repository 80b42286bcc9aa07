/**
 * OpenTofu with identity on, end to end: the service started as its CLI with `--tokens-file`
 * (entries printed by `oci-tfstate token create`), `--policy-file`, and `--oidc-issuer` /
 * `--oidc-audience` naming the harness's OIDC issuer (the server fetches its discovery document
 * and JWKS over HTTP), states in a real registry, and the real `tofu` given its credential the way
 * a CI job gives it: TF_HTTP_USERNAME (any name) and TF_HTTP_PASSWORD (an API token or a JWT).
 * Every job is a fresh working directory with the backend block written out, as in CI.
 *
 * tofu shows a 401 or 403 as "requires auth", "invalid auth" or "HTTP error: 403" and logs the
 * response body (which names the permission and the workspace) only with TF_LOG=DEBUG, so the
 * refused runs are made with that log on and both are checked.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { createBackend } from "../../src/oras/index.ts";
import { type CliRun, type LogLine, runCli, tempDir } from "../cli/cli-process.ts";
import { startOidcIssuer } from "../harness/oidc-issuer.ts";
import { startRegistry } from "../harness/registry.ts";

const execFileAsync = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const LAUNCH = path.join(ROOT, "src/launch.ts");
const TOFU = execFileSync("bash", [path.join(ROOT, "scripts/install-tofu.sh"), "--path"], {
  encoding: "utf8",
}).trim();
assert.ok(existsSync(TOFU), `OpenTofu is not installed at ${TOFU}: run scripts/install-tofu.sh`);

const WORKSPACE = "infra-prod";
const AUDIENCE = "oci-tfstate";

const issuer = await startOidcIssuer({ audience: AUDIENCE });
after(() => issuer.stop());
const registry = await startRegistry();
after(() => registry.stop());
const repository = `${registry.host}/tofu/identity`;
const dir = await tempDir();

/** `oci-tfstate token create NAME` as an operator runs it: the secret on stdout, the entry on stderr. */
async function tokenCreate(name: string): Promise<{ secret: string; entry: string }> {
  const { stdout, stderr } = await execFileAsync(process.execPath, [LAUNCH, "token", "create", name], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir },
  });
  return { secret: stdout.trim(), entry: stderr };
}

const deploy = await tokenCreate("ci-deploy");
const planner = await tokenCreate("ci-plan");
const auditor = await tokenCreate("auditor");
const tokensFile = path.join(dir, "tokens.yaml");
// What `token create NAME 2>> tokens.yaml` leaves: each entry after its comment line.
await writeFile(tokensFile, `tokens:\n${deploy.entry}${planner.entry}${auditor.entry}`);

const policyFile = path.join(dir, "policy.yaml");
await writeFile(
  policyFile,
  `rules:
  - principals:
      - token: ci-deploy
    workspaces: ["infra-*"]
    permissions: [read, write, lock]
  - principals:
      - token: ci-plan
    workspaces: ["infra-*"]
    permissions: [read, lock]
  - principals:
      - token: auditor
    workspaces: ["infra-*"]
    permissions: [read]
  - principals:
      - oidc:
          issuer: ${issuer.url}
          claims:
            repository: "acme/*"
            ref: refs/heads/main
    workspaces: ["infra-*"]
    permissions: [read, write, lock]
`,
);

const server: CliRun = await runCli(
  [
    "--listen",
    "127.0.0.1:0",
    "--repository",
    repository,
    "--plain-http",
    "--tokens-file",
    tokensFile,
    "--policy-file",
    policyFile,
    "--oidc-issuer",
    issuer.url,
    "--oidc-audience",
    AUDIENCE,
    "--log-level",
    "debug",
  ],
  {},
  dir,
);
const url = String((await server.waitForLog("listening", 30_000)).url);

// The registry read directly, not through the service: what is stored is what counts.
const store = createBackend({ repository, plainHTTP: true });
after(() => store.close());

interface StoredState {
  serial: number;
  lineage: string;
  outputs: Record<string, { value: unknown }>;
}

async function stored(): Promise<StoredState | null> {
  const got = await store.stateMgr(WORKSPACE).get();
  return got === null ? null : (JSON.parse(Buffer.from(got.data).toString()) as StoredState);
}

async function lockState(): Promise<string> {
  return (await store.stateMgr(WORKSPACE).lockStatus()).state;
}

const address = `${url}/terraform/state/${WORKSPACE}`;
const CONFIG = `
terraform {
  backend "http" {
    address        = "${address}"
    lock_address   = "${address}/lock"
    unlock_address = "${address}/lock"
  }
}

variable "release" {
  type    = string
  default = "v1"
}

resource "terraform_data" "release" {
  input = var.release
}

output "release" {
  value = terraform_data.release.output
}
`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** tofu's TF_LOG=DEBUG log, for runs made with `debug`. */
  log: string;
}

interface Credentials {
  username?: string;
  password?: string;
}

interface Job {
  tofu(args: string[], opts?: { debug?: boolean; credentials?: Credentials }): Promise<Run>;
}

/** A fresh working directory with the configuration, and tofu run in it with these credentials. */
async function job(credentials: Credentials): Promise<Job> {
  const cwd = await mkdtemp(path.join(dir, "job-"));
  const cliConfig = path.join(cwd, "empty.tfrc");
  await writeFile(cliConfig, "");
  await writeFile(path.join(cwd, "main.tf"), CONFIG);
  let runs = 0;
  return {
    tofu(args, opts = {}) {
      const creds = opts.credentials ?? credentials;
      const logFile = path.join(cwd, `tofu-${++runs}.log`);
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: cwd,
        TF_CLI_CONFIG_FILE: cliConfig,
        CHECKPOINT_DISABLE: "1",
        TF_IN_AUTOMATION: "1",
        TF_INPUT: "0",
        // A refused request is not worth the CLI's default retries in a test.
        TF_HTTP_RETRY_MAX: "0",
        ...(creds.username !== undefined ? { TF_HTTP_USERNAME: creds.username } : {}),
        ...(creds.password !== undefined ? { TF_HTTP_PASSWORD: creds.password } : {}),
        ...(opts.debug ? { TF_LOG: "DEBUG", TF_LOG_PATH: logFile } : {}),
      };
      return new Promise((resolve) => {
        execFile(TOFU, [...args, "-no-color"], { cwd, env, timeout: 60_000 }, (err, stdout, stderr) => {
          const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
          const log = opts.debug ? readFile(logFile, "utf8").catch(() => "") : Promise.resolve("");
          void log.then((text) => resolve({ code, stdout, stderr, log: text }));
        });
      });
    },
  };
}

function ok(run: Run, what: string): Run {
  assert.equal(run.code, 0, `${what} failed:\n${run.stdout}\n${run.stderr}`);
  return run;
}

function failed(run: Run, what: string): Run {
  assert.notEqual(run.code, 0, `${what} should have failed:\n${run.stdout}\n${run.stderr}`);
  return run;
}

/**
 * The server's log lines received so far, whole lines only: a request's line is written after its
 * response, so one may still be on its way when tofu exits.
 */
function serverLogs(): LogLine[] {
  return server
    .stderr()
    .split("\n")
    .slice(0, -1)
    .map((l) => JSON.parse(l) as LogLine);
}

/** The principals the server logged for http backend requests on the workspace since `from`. */
function principalsSince(from: number): Set<unknown> {
  return new Set(
    serverLogs()
      .slice(from)
      .filter((l) => l.msg === "terraform http backend request" && l.workspace === WORKSPACE)
      .map((l) => l.principal),
  );
}

/** The reasons the server logged (debug only) for refused credentials since `from`. */
function refusalsSince(from: number): string[] {
  return serverLogs()
    .slice(from)
    .filter((l) => l.msg === "authentication refused")
    .map((l) => String(l.reason));
}

const initArgs = ["init", "-input=false"];
const applyArgs = (release: string) => ["apply", "-auto-approve", "-input=false", `-var=release=${release}`];
const secrets: string[] = [deploy.secret, planner.secret, auditor.secret];

describe("tofu against the service with tokens, a policy and an OIDC issuer", () => {
  let serial = 0;

  test("an API token from `token create` in TF_HTTP_PASSWORD: tofu init and apply store the state", async () => {
    assert.match(deploy.secret, /^otfs_[A-Za-z0-9_-]{43}$/);
    const from = serverLogs().length;
    const ci = await job({ username: "ci", password: deploy.secret });
    assert.match(
      ok(await ci.tofu(initArgs), "tofu init").stdout,
      /Successfully configured the backend "http"/,
    );
    const apply = ok(await ci.tofu(applyArgs("v1")), "tofu apply");
    assert.match(apply.stdout, /Apply complete! Resources: 1 added, 0 changed, 0 destroyed/);
    const state = await stored();
    assert.ok(state, "the state is in the registry");
    assert.equal(state.outputs.release?.value, "v1");
    serial = state.serial;
    assert.equal(await lockState(), "unlocked");
    assert.deepEqual(principalsSince(from), new Set(["ci-deploy"]), "every request was ci-deploy's");
  });

  test("a token the policy gives read and lock: plan and output work, apply is refused with 403 naming the write permission, the state unchanged", async () => {
    const ci = await job({ username: "ci", password: planner.secret });
    ok(await ci.tofu(initArgs), "tofu init");
    // plan takes the lock and reads the state: both allowed.
    const plan = ok(await ci.tofu(["plan", "-input=false", "-var=release=v2"]), "tofu plan");
    assert.match(plan.stdout, /Plan: 0 to add, 1 to change, 0 to destroy/);
    const output = ok(await ci.tofu(["output", "-raw", "release"]), "tofu output");
    assert.equal(output.stdout, "v1");

    const apply = failed(await ci.tofu(applyArgs("v2"), { debug: true }), "tofu apply");
    assert.match(apply.stderr, /Failed to save state/);
    assert.match(apply.stderr, /HTTP error: 403/);
    assert.ok(
      apply.log.includes(
        `UPLOAD STATE, 403: {"error":"ci-plan lacks the write permission on workspace \\"${WORKSPACE}\\""}`,
      ),
      `tofu's debug log has the 403 body naming the permission and workspace:\n${apply.log
        .split("\n")
        .filter((l) => /STATE|LOCK/.test(l))
        .join("\n")}`,
    );
    const state = await stored();
    assert.equal(state?.serial, serial, "the state's serial is unchanged");
    assert.equal(state?.outputs.release?.value, "v1");
    assert.equal(await lockState(), "unlocked", "tofu released its lock after the refused write");
  });

  test("a token the policy gives only read: output works, apply cannot take the lock (403 naming the lock permission)", async () => {
    const ci = await job({ username: "ci", password: auditor.secret });
    ok(await ci.tofu(initArgs), "tofu init");
    assert.equal(ok(await ci.tofu(["output", "-raw", "release"]), "tofu output").stdout, "v1");
    const apply = failed(await ci.tofu(applyArgs("v2"), { debug: true }), "tofu apply");
    assert.match(apply.stderr, /Error acquiring the state lock/);
    assert.match(apply.stderr, /HTTP remote state endpoint invalid auth/);
    assert.ok(
      apply.log.includes(
        `LOCK, Forbidden: {"error":"auditor lacks the lock permission on workspace \\"${WORKSPACE}\\""}`,
      ),
      "tofu's debug log has the 403 body naming the permission and workspace",
    );
    assert.equal((await stored())?.serial, serial);
    assert.equal(await lockState(), "unlocked");
  });

  let oidcJob: Job;

  test("a GitHub-Actions-shaped JWT in TF_HTTP_PASSWORD whose claims match a rule: tofu init and apply", async () => {
    const from = serverLogs().length;
    const jwt = await issuer.github({ repository: "acme/infra", ref: "refs/heads/main" });
    secrets.push(jwt);
    oidcJob = await job({ username: "oidc", password: jwt });
    ok(await oidcJob.tofu(initArgs), "tofu init");
    const apply = ok(await oidcJob.tofu(applyArgs("v2")), "tofu apply");
    assert.match(apply.stdout, /Apply complete! Resources: 0 added, 1 changed, 0 destroyed/);
    const state = await stored();
    assert.ok(state);
    assert.ok(state.serial > serial, `the serial moved on from ${serial} to ${state.serial}`);
    assert.equal(state.outputs.release?.value, "v2");
    serial = state.serial;
    assert.equal(await lockState(), "unlocked");
    const host = new URL(issuer.url).host;
    assert.deepEqual(
      principalsSince(from),
      new Set([`oidc:${host}:repo:acme/infra:environment:production`]),
      "every request was the workflow's",
    );
    // The server found the keys itself: discovery document, then the JWKS it names.
    assert.ok(issuer.requests.discovery >= 1, "discovery fetched");
    assert.ok(issuer.requests.jwks >= 1, "JWKS fetched");
  });

  test("a JWT of a branch the policy does not name sees no such workspace: apply fails at the lock (404), the state unchanged", async () => {
    const jwt = await issuer.github({ repository: "acme/infra", ref: "refs/heads/feature" });
    secrets.push(jwt);
    const ci = await job({ username: "oidc", password: jwt });
    ok(await ci.tofu(initArgs), "tofu init (a workspace it cannot see reads as one without state)");
    const apply = failed(await ci.tofu(applyArgs("v3"), { debug: true }), "tofu apply");
    assert.match(apply.stderr, /Error acquiring the state lock/);
    assert.match(apply.stderr, /Unexpected HTTP response code 404/);
    assert.ok(apply.log.includes(`{"error":"workspace \\"${WORKSPACE}\\" does not exist"}`));
    assert.equal((await stored())?.serial, serial);
    assert.equal(await lockState(), "unlocked");
  });

  test("a JWT for another audience or one that has expired is refused (401): init and apply fail, the state unchanged", async () => {
    const from = serverLogs().length;
    const wrongAudience = await issuer.github({}, { audience: "https://github.com/acme" });
    const expired = await issuer.bad("expired");
    secrets.push(wrongAudience, expired);

    const fresh = await job({ username: "oidc", password: wrongAudience });
    const init = failed(
      await fresh.tofu(initArgs, { debug: true }),
      "tofu init with a JWT for another audience",
    );
    assert.match(init.stderr, /HTTP remote state endpoint requires auth/);
    assert.ok(init.log.includes('GET STATE, Unauthorized: {"error":"the credentials were not accepted"}'));

    // The job that applied above, now with a token that has expired.
    const apply = failed(
      await oidcJob.tofu(applyArgs("v3"), {
        debug: true,
        credentials: { username: "oidc", password: expired },
      }),
      "tofu apply with an expired JWT",
    );
    assert.match(apply.stderr, /Error acquiring the state lock/);
    assert.match(apply.stderr, /HTTP remote state endpoint requires auth/);
    assert.ok(apply.log.includes('LOCK, Unauthorized: {"error":"the credentials were not accepted"}'));

    const reasons = refusalsSince(from);
    assert.ok(
      reasons.some((r) => /aud/.test(r)),
      `a refusal for the audience: ${reasons.join("; ")}`,
    );
    assert.ok(
      reasons.some((r) => /ERR_JWT_EXPIRED/.test(r)),
      `a refusal for the expiry: ${reasons.join("; ")}`,
    );
    assert.equal((await stored())?.serial, serial);
    assert.equal((await stored())?.outputs.release?.value, "v2");
    assert.equal(await lockState(), "unlocked");
  });

  test("no credentials: tofu init fails with 401 (credentials required); a password without a username is none to tofu", async () => {
    const none = await job({});
    const init = failed(await none.tofu(initArgs, { debug: true }), "tofu init without credentials");
    assert.match(init.stderr, /HTTP remote state endpoint requires auth/);
    assert.ok(init.log.includes('GET STATE, Unauthorized: {"error":"credentials required"}'));

    // tofu sends Basic only when a username is set: TF_HTTP_PASSWORD alone sends nothing.
    const passwordOnly = await job({ password: deploy.secret });
    const again = failed(await passwordOnly.tofu(initArgs, { debug: true }), "tofu init without a username");
    assert.ok(again.log.includes('GET STATE, Unauthorized: {"error":"credentials required"}'));
    assert.equal((await stored())?.serial, serial);
  });

  test("the server logged no errors and no credential, and SIGTERM ends it with 0", async () => {
    const errors = serverLogs().filter((l) => l.level === "error");
    assert.deepEqual(errors, []);
    const text = server.stderr();
    for (const secret of secrets) assert.ok(!text.includes(secret), "no credential in the server's log");
    server.child.kill("SIGTERM");
    assert.deepEqual(await server.exited, { code: 0, signal: null });
  });
});
