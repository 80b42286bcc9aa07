/**
 * The tokens file is reloaded when it changes: an atomic rename and an in-place write are seen by
 * the directory watch, a change the watch cannot see (the file is a symlink into another
 * directory) by the periodic stat, and reload() (SIGHUP) reads it whatever it looks like. A version
 * that does not parse, or a missing file, keeps the tokens loaded before and logs one error.
 */
import assert from "node:assert/strict";
import { mkdir, open as openFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { IdentityFileError } from "../../src/auth/config-file.ts";
import { newSecret, sha256 } from "../../src/auth/token-set.ts";
import { openTokenSource, type TokenSource } from "../../src/auth/token-source.ts";
import { tempDir } from "../cli/cli-process.ts";
import { type LogRecord, recordingLogger } from "./fixture.ts";

const secrets = { a: newSecret(), b: newSecret(), c: newSecret() };
type Name = keyof typeof secrets;

function tokensYaml(...names: Name[]): string {
  return `tokens:\n${names.map((n) => `  - name: ${n}\n    sha256: ${sha256(secrets[n]).toString("hex")}\n`).join("")}`;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const names = (source: TokenSource) =>
  (Object.keys(secrets) as Name[]).filter((n) => source.current.match(secrets[n]));

async function open(file: string, pollIntervalMs: number) {
  const { logger, logs } = recordingLogger();
  const source = await openTokenSource({ file, logger, pollIntervalMs });
  return { source, logs, [Symbol.dispose]: () => source.close() };
}

const reloads = (logs: LogRecord[]) => logs.filter((l) => l.msg === "tokens file reloaded");

test("an atomic rename and an in-place write are both seen by the directory watch", async () => {
  const dir = await tempDir();
  const file = path.join(dir, "tokens.yaml");
  await writeFile(file, tokensYaml("a"));
  using t = await open(file, 3_600_000);
  assert.deepEqual(names(t.source), ["a"]);

  await writeFile(path.join(dir, ".tokens.yaml.tmp"), tokensYaml("b"));
  await rename(path.join(dir, ".tokens.yaml.tmp"), file);
  await waitFor("the renamed file is loaded", () => names(t.source).join() === "b");
  assert.deepEqual(reloads(t.logs).at(-1)?.fields, {
    file,
    trigger: "watch",
    tokens: 1,
    added: ["b"],
    removed: ["a"],
  });

  await writeFile(file, tokensYaml("b", "c"));
  await waitFor("the rewritten file is loaded", () => names(t.source).join() === "b,c");
  assert.equal(reloads(t.logs).at(-1)?.fields?.trigger, "watch");
});

test("a file written in pieces is read only once it has been left alone for the settle time", async () => {
  const dir = await tempDir();
  const file = path.join(dir, "tokens.yaml");
  await writeFile(file, tokensYaml("a", "b"));
  const { logger, logs } = recordingLogger();
  // The poll looks often; the settle time is far longer than the writer's pause.
  const source = await openTokenSource({ file, logger, pollIntervalMs: 20, settleMs: 1500 });
  try {
    const final = tokensYaml("c", "a", "b");
    const cut = final.indexOf("  - name: a");
    const handle = await openFile(file, "w");
    await handle.write(final.slice(0, cut));
    // The first piece alone is a valid file holding only c: it must never be loaded.
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(names(source), ["a", "b"]);
    await handle.write(final.slice(cut));
    await handle.close();
    await waitFor("the whole file is loaded", () => names(source).join() === "a,b,c");
    assert.deepEqual(
      reloads(logs).map((l) => l.fields?.added),
      [["c"]],
    );
  } finally {
    source.close();
  }
});

test("a change the watch cannot see (a symlink into another directory) is found by the periodic stat", async () => {
  const dir = await tempDir();
  await mkdir(path.join(dir, "secrets"));
  await mkdir(path.join(dir, "conf"));
  const target = path.join(dir, "secrets", "tokens.yaml");
  const file = path.join(dir, "conf", "tokens.yaml");
  await writeFile(target, tokensYaml("a"));
  await symlink(target, file);
  using t = await open(file, 100);
  await writeFile(target, tokensYaml("c"));
  await waitFor("the target's change is loaded", () => names(t.source).join() === "c");
  assert.equal(reloads(t.logs).at(-1)?.fields?.trigger, "poll");
});

test("a version that does not parse keeps the old tokens and logs the error once; the fixed file loads", async () => {
  const dir = await tempDir();
  const file = path.join(dir, "tokens.yaml");
  await writeFile(file, tokensYaml("a", "b"));
  using t = await open(file, 50);
  await writeFile(file, `${tokensYaml("a")}  - name: b\n    sha256: not-hex\n`);
  await waitFor("the error is logged", () => t.logs.some((l) => l.level === "error"));
  // Several poll intervals later: still the old tokens, and the same bad version logged only once.
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(names(t.source), ["a", "b"]);
  const errors = t.logs.filter((l) => l.level === "error");
  assert.equal(errors.length, 1);
  assert.equal(errors[0]?.msg, "tokens file not reloaded: keeping the tokens loaded before");
  assert.equal(
    errors[0]?.fields?.error,
    `${file}: tokens[1].sha256 (line 5): expected 64 hex digits (the SHA-256 of the secret)`,
  );
  assert.equal(errors[0]?.fields?.tokens, 2);

  await writeFile(file, tokensYaml("c"));
  await waitFor("the fixed file is loaded", () => names(t.source).join() === "c");
});

test("reload() (SIGHUP) reads the file even when it looks unchanged, and says whether it took", async () => {
  const dir = await tempDir();
  const file = path.join(dir, "tokens.json");
  await writeFile(
    file,
    JSON.stringify({ tokens: [{ name: "a", sha256: sha256(secrets.a).toString("hex") }] }),
  );
  using t = await open(file, 3_600_000);
  assert.equal(await t.source.reload("SIGHUP"), true);
  assert.deepEqual(reloads(t.logs).at(-1)?.fields, {
    file,
    trigger: "SIGHUP",
    tokens: 1,
    added: [],
    removed: [],
  });
  await writeFile(file, "{");
  assert.equal(await t.source.reload("SIGHUP"), false);
  assert.deepEqual(names(t.source), ["a"]);
  assert.match(String(t.logs.at(-1)?.fields?.error), /not valid YAML or JSON/);
});

test("a removed file keeps the tokens and logs once; the file put back is loaded", async () => {
  const dir = await tempDir();
  const file = path.join(dir, "tokens.yaml");
  await writeFile(file, tokensYaml("a"));
  using t = await open(file, 50);
  await rm(file);
  await waitFor("the missing file is logged", () => t.logs.some((l) => l.level === "error"));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(t.logs.filter((l) => l.level === "error").length, 1);
  assert.equal(t.logs.find((l) => l.level === "error")?.fields?.error, "ENOENT");
  assert.deepEqual(names(t.source), ["a"]);
  await writeFile(file, tokensYaml("b"));
  await waitFor("the new file is loaded", () => names(t.source).join() === "b");
});

test("a file that cannot be used at start is an error naming it; after close nothing is reloaded", async () => {
  const dir = await tempDir();
  const file = path.join(dir, "tokens.yaml");
  await assert.rejects(
    openTokenSource({ file, logger: recordingLogger().logger }),
    (err) =>
      err instanceof IdentityFileError && err.message === `cannot read the tokens file ${file}: ENOENT`,
  );
  await writeFile(file, "tokens:\n  - name: a\n");
  await assert.rejects(
    openTokenSource({ file, logger: recordingLogger().logger }),
    (err) =>
      err instanceof IdentityFileError && err.message === `${file}: tokens[0].sha256 (line 2): is required`,
  );

  await writeFile(file, tokensYaml("a"));
  const t = await open(file, 50);
  t.source.close();
  await writeFile(file, tokensYaml("b"));
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(names(t.source), ["a"]);
  assert.equal(reloads(t.logs).length, 0);
});
