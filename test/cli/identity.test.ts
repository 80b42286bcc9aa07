/**
 * Identity in the real process: `oci-tfstate token create NAME` (through src/launch.ts) prints the
 * secret on stdout and the tokens-file entry on stderr; that entry, pasted into the file given to
 * --tokens-file, lets the secret in; SIGHUP reloads the file without ending the process or its
 * connections; a bad file at start exits 2 naming the entry and field; --oidc-issuer and
 * --oidc-audience accept the issuer's JWTs; SIGTERM still exits 0.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { sha256 } from "../../src/auth/token-set.ts";
import { WorkspaceService } from "../../src/gen/tfstate/v1/workspace_service_pb.ts";
import { startOidcIssuer } from "../harness/oidc-issuer.ts";
import { type CliRun, runCli, tempDir } from "./cli-process.ts";

const LAUNCH = path.resolve("src/launch.ts");

async function launch(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dir = await tempDir();
  const child = spawn(process.execPath, [LAUNCH, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stdout, stderr };
}

/** ListWorkspaces over gRPC: "OK" or the code's name. */
async function list(url: string, authorization?: string): Promise<string> {
  const client = createClient(WorkspaceService, createGrpcTransport({ baseUrl: url }));
  try {
    await client.listWorkspaces({}, authorization ? { headers: { authorization } } : {});
    return "OK";
  } catch (err) {
    return Code[ConnectError.from(err).code];
  }
}

async function serve(args: string[]): Promise<{ run: CliRun; url: string; dir: string }> {
  const dir = await tempDir();
  const run = await runCli(
    [
      "--listen",
      "127.0.0.1:0",
      "--repository",
      `oci-layout:${path.join(dir, "data")}`,
      "--log-level",
      "debug",
      ...args,
    ],
    {},
    dir,
  );
  const listening = await run.waitForLog("listening", 30_000);
  return { run, url: String(listening.url), dir };
}

async function waitForLine(
  run: CliRun,
  what: string,
  match: (l: Record<string, unknown>) => boolean,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!run.logs().some(match)) {
    assert.ok(Date.now() < deadline, `no log line: ${what}\n${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("token create prints the secret once on stdout and the entry on stderr; a bad name exits 2", async () => {
  const made = await launch(["token", "create", "ci-deploy", "--description", "deploy: prod"]);
  assert.equal(made.code, 0);
  assert.match(made.stdout, /^otfs_[A-Za-z0-9_-]{43}\n$/);
  const secret = made.stdout.trim();
  const [intro, ...entry] = made.stderr.split("\n");
  assert.match(
    intro ?? "",
    /^# Add under `tokens:` in the --tokens-file \(OCI_TFSTATE_TOKENS_FILE\); the secret on stdout is shown only once\.$/,
  );
  assert.deepEqual(entry, [
    "  - name: ci-deploy",
    `    sha256: ${sha256(secret).toString("hex")}`,
    '    description: "deploy: prod"',
    "",
  ]);
  assert.ok(!made.stderr.includes(secret), "the secret is printed once, on stdout only");
  const again = await launch(["token", "create", "ci-deploy"]);
  assert.notEqual(again.stdout, made.stdout, "every token is new");

  for (const [args, message] of [
    [
      ["token", "create", "bad name"],
      'invalid token name "bad name": a name is 1 to 64 of A-Z a-z 0-9 . _ -',
    ],
    [["token", "create"], "token create needs a NAME"],
    [["token"], "token needs a command: create"],
    [["token", "delete", "x"], 'unknown token command "delete"'],
    [["token", "create", "a", "b"], 'unexpected argument "b"'],
  ] as const) {
    const r = await launch([...args]);
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, `oci-tfstate: ${message} (see oci-tfstate token --help)\n`);
  }
  const help = await launch(["token", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: oci-tfstate token create NAME \[--description TEXT\]/);
});

test("the printed entry, appended to the file, lets the token in; SIGHUP reloads the file and the process keeps serving", async () => {
  const first = await launch(["token", "create", "first"]);
  const second = await launch(["token", "create", "second"]);
  // What `token create NAME 2>> tokens.yaml` appends: the comment line and the entry.
  const entry = (r: { stderr: string }) => r.stderr;
  const dir = await tempDir();
  const file = path.join(dir, "tokens.yaml");
  await writeFile(file, `tokens:\n${entry(first)}`);
  const { run, url } = await serve(["--tokens-file", file]);
  assert.deepEqual(run.logs().find((l) => l.msg === "listening")?.identity, { tokensFile: file, tokens: 1 });

  const tokenOf = (r: { stdout: string }) => `Bearer ${r.stdout.trim()}`;
  assert.equal(await list(url), "Unauthenticated");
  assert.equal(await list(url, tokenOf(first)), "OK");
  assert.equal(await list(url, tokenOf(second)), "Unauthenticated");

  // A long-lived connection open across the reload.
  const transport = createGrpcTransport({ baseUrl: url });
  const client = createClient(WorkspaceService, transport);
  await client.listWorkspaces({}, { headers: { authorization: tokenOf(first) } });

  await writeFile(file, `tokens:\n${entry(first)}${entry(second)}`);
  run.child.kill("SIGHUP");
  await waitForLine(
    run,
    "a SIGHUP reload",
    (l) => l.msg === "tokens file reloaded" && l.trigger === "SIGHUP",
  );
  assert.equal(run.child.exitCode, null, "SIGHUP does not end the process");
  assert.equal(await list(url, tokenOf(second)), "OK");
  await client.listWorkspaces({}, { headers: { authorization: tokenOf(second) } });

  // A bad version is refused and logged; the tokens stay.
  await writeFile(file, "tokens:\n  - name: first\n");
  run.child.kill("SIGHUP");
  await waitForLine(
    run,
    "the refused reload",
    (l) => l.msg === "tokens file not reloaded: keeping the tokens loaded before" && l.trigger === "SIGHUP",
  );
  assert.equal(await list(url, tokenOf(first)), "OK");
  assert.ok(
    !run.stderr().includes(first.stdout.trim()) && !run.stderr().includes(second.stdout.trim()),
    "no secret in the log",
  );

  run.child.kill("SIGTERM");
  assert.deepEqual(await run.exited, { code: 0, signal: null });
});

test("a tokens file or an issuers file that cannot be used exits 2 with one line naming the entry and field", async () => {
  const dir = await tempDir();
  const file = path.join(dir, "tokens.yaml");
  await writeFile(file, "tokens:\n  - name: ci\n    sha256: abc\n");
  const bad = await runCli(["--listen", "127.0.0.1:0", "--tokens-file", file], {}, dir);
  assert.deepEqual(await bad.exited, { code: 2, signal: null });
  assert.equal(
    bad.stderr(),
    `oci-tfstate: ${file}: tokens[0].sha256 (line 3): expected 64 hex digits (the SHA-256 of the secret)\n`,
  );

  const missing = await runCli(
    ["--listen", "127.0.0.1:0", "--tokens-file", path.join(dir, "nope.yaml")],
    {},
    dir,
  );
  assert.deepEqual(await missing.exited, { code: 2, signal: null });
  assert.equal(
    missing.stderr(),
    `oci-tfstate: cannot read the tokens file ${path.join(dir, "nope.yaml")}: ENOENT\n`,
  );

  const issuers = path.join(dir, "issuers.yaml");
  await writeFile(
    issuers,
    "issuers:\n  - issuer: https://gitlab.com\n    audience: tf\n    algorithms: [HS256]\n",
  );
  const hs = await runCli(["--listen", "127.0.0.1:0", "--oidc-config", issuers], {}, dir);
  assert.deepEqual(await hs.exited, { code: 2, signal: null });
  assert.match(
    hs.stderr(),
    /^oci-tfstate: .*issuers\.yaml: issuers\[0\]\.algorithms \(line 4\): HS256 is never accepted/,
  );

  const half = await runCli(
    ["--listen", "127.0.0.1:0"],
    { OCI_TFSTATE_OIDC_ISSUER: "https://gitlab.com" },
    dir,
  );
  assert.deepEqual(await half.exited, { code: 2, signal: null });
  assert.equal(
    half.stderr(),
    "oci-tfstate: --oidc-issuer needs --oidc-audience (the aud its tokens must carry, e.g. oci-tfstate)\n",
  );
});

test("--oidc-issuer and --oidc-audience: the issuer's JWTs are accepted, others refused", async () => {
  const issuer = await startOidcIssuer({ audience: "tfstate-cli" });
  after(() => issuer.stop());
  const { run, url } = await serve(["--oidc-issuer", issuer.url, "--oidc-audience", "tfstate-cli"]);
  assert.deepEqual(run.logs().find((l) => l.msg === "listening")?.identity, { oidcIssuers: [issuer.url] });
  assert.equal(await list(url, `Bearer ${await issuer.github()}`), "OK");
  assert.equal(await list(url, `Bearer ${await issuer.gitlab({}, { alg: "ES256" })}`), "OK");
  assert.equal(
    await list(url, `Bearer ${await issuer.github({}, { audience: "other" })}`),
    "Unauthenticated",
  );
  const res = await fetch(`${url}/terraform/state/cli-ws`, {
    headers: { authorization: `Basic ${Buffer.from(`oidc:${await issuer.github()}`).toString("base64")}` },
  });
  // Through authentication to the backend, which has no state for this workspace yet.
  assert.equal(res.status, 404);
  await res.arrayBuffer();
  assert.equal((await fetch(`${url}/terraform/state/cli-ws`)).status, 401);
  // The reason is in the debug log, and says what was wrong without the token.
  await waitForLine(
    run,
    "the refusal",
    (l) => l.msg === "authentication refused" && /aud/.test(String(l.reason)),
  );
  run.child.kill("SIGTERM");
  assert.deepEqual(await run.exited, { code: 0, signal: null });
});
