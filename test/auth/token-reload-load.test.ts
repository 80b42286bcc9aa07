/**
 * Reloading the tokens file under load loses no request: many concurrent authenticated calls (RPC
 * over HTTP/2 and HTTP/1.1, and the http backend) run through the real server while the file is
 * rewritten again and again, by atomic rename and in place (in pieces), with other entries coming and going
 * and the order changing. A token valid in every version is never refused; a token removed stops
 * working once the change is loaded. Nothing here is timed.
 */
import assert from "node:assert/strict";
import { open, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { newSecret, sha256 } from "../../src/auth/token-set.ts";
import { tempDir } from "../cli/cli-process.ts";
import type { Protocol } from "../rpc/fixture.ts";
import {
  basic,
  bearer,
  httpBackendGet,
  listWorkspaces,
  passedAuthentication,
  serveWithIdentity,
} from "./fixture.ts";

const WORKERS = 8;
const REWRITES = 60;

const keep = { "keep-1": newSecret(), "keep-2": newSecret() };
const churn = Array.from({ length: 6 }, (_, i) => [`churn-${i}`, newSecret()] as const);

function fileText(entries: (readonly [string, string])[]): string {
  return `tokens:\n${entries.map(([name, s]) => `  - name: ${name}\n    sha256: ${sha256(s).toString("hex")}\n`).join("")}`;
}

/** Version i: both kept tokens, a varying subset of the others, in a varying order. */
function version(i: number): string {
  const entries: (readonly [string, string])[] = [
    ...Object.entries(keep),
    ...churn.filter((_, j) => (i + j) % 3 !== 0),
  ];
  const shift = i % entries.length;
  return fileText([...entries.slice(shift), ...entries.slice(0, shift)]);
}

/**
 * An in-place write as a tool that writes in pieces does it: truncate, then the entries in two
 * writes with a pause between. The first piece alone is a valid file with fewer tokens.
 */
async function writeInPieces(file: string, text: string): Promise<void> {
  const cut = text.indexOf("  - name:", text.length / 2);
  const handle = await open(file, "w");
  try {
    await handle.write(text.slice(0, cut));
    await new Promise((r) => setTimeout(r, 2));
    await handle.write(text.slice(cut));
  } finally {
    await handle.close();
  }
}

test("rewriting the tokens file under load refuses no request with a token valid in every version", async () => {
  const dir = await tempDir();
  const file = path.join(dir, "tokens.yaml");
  await writeFile(file, version(0));
  const srv = await serveWithIdentity({ tokens: { file, pollIntervalMs: 100, settleMs: 20 } });

  let writing = true;
  const failures: string[] = [];
  let requests = 0;
  const protocols: Protocol[] = ["connect+proto over HTTP/2", "grpc over h2c", "connect+json over HTTP/1.1"];
  const worker = async (w: number) => {
    const [name, secret] = Object.entries(keep)[w % 2] ?? ["", ""];
    for (let n = 0; writing || n < 20; n++) {
      if (n % 4 === 3) {
        const res = await httpBackendGet(srv.url, "load-ws", basic(name, secret));
        if (!passedAuthentication(res.status)) failures.push(`http ${res.status} ${res.body}`);
      } else {
        const protocol = protocols[(w + n) % protocols.length] ?? "grpc over h2c";
        const out = await listWorkspaces(protocol, srv.url, bearer(secret));
        if (out.code !== "OK") failures.push(`${protocol} ${out.code} ${out.message}`);
      }
      requests++;
    }
  };
  const writer = async () => {
    for (let i = 1; i <= REWRITES; i++) {
      if (i % 2 === 0) {
        const tmp = path.join(dir, `.tokens.yaml.${i}.tmp`);
        await writeFile(tmp, version(i));
        await rename(tmp, file);
      } else {
        await writeInPieces(file, version(i));
      }
      await new Promise((r) => setTimeout(r, 40));
    }
    writing = false;
  };
  await Promise.all([writer(), ...Array.from({ length: WORKERS }, (_, w) => worker(w))]);

  assert.deepEqual(failures, []);
  assert.ok(requests >= WORKERS * 20, `${requests} requests`);
  const reloaded = srv.authLogs.filter((l) => l.msg === "tokens file reloaded").length;
  assert.ok(reloaded >= 5, `the file was reloaded while requests ran (${reloaded} times)`);

  // A token removed from the file stops working once the change is loaded, on both surfaces.
  await writeFile(file, fileText([["keep-1", keep["keep-1"]]]));
  const deadline = Date.now() + 15_000;
  while ((await listWorkspaces("grpc over h2c", srv.url, bearer(keep["keep-2"]))).code === "OK") {
    assert.ok(Date.now() < deadline, "the removal was loaded");
    await new Promise((r) => setTimeout(r, 20));
  }
  for (let i = 0; i < 10; i++) {
    assert.equal(
      (await listWorkspaces("grpc over h2c", srv.url, bearer(keep["keep-2"]))).code,
      "Unauthenticated",
    );
    assert.equal((await httpBackendGet(srv.url, "load-ws", basic("x", keep["keep-2"]))).status, 401);
    assert.equal((await listWorkspaces("grpc over h2c", srv.url, bearer(keep["keep-1"]))).code, "OK");
  }
});
