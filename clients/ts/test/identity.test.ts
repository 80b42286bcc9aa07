/**
 * The Node and browser clients against an identity-enabled service (`--tokens-file`, on an OCI
 * layout over cleartext so the fetch-based client reaches it too), over every protocol each client
 * speaks: the right token is served, a missing or wrong one is UNAUTHENTICATED, and a token source
 * is asked for every call and every stream's start.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createNodeClient,
  LockEventKind,
  type NodeClientOptions,
  type TfstateClient,
  type TokenSource,
  tokenFromFile,
} from "../src/node.ts";
import { createWebClient } from "../src/web.ts";
import { newSecret, startService, writeTokensFile } from "./service.ts";

const TIMEOUT_MS = 15_000;
const dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-ts-identity-"));
/** `token` and `rotated` are in the tokens file; `unknown` has the right shape but is not. */
const tokens = { token: newSecret(), rotated: newSecret(), unknown: newSecret() };
const tokensFile = await writeTokensFile(path.join(dir, "tokens.json"), {
  "ts-client-tests": tokens.token,
  "ts-client-tests-rotated": tokens.rotated,
});
const service = await startService([
  `--repository=oci-layout:${path.join(dir, "layout")}`,
  `--tokens-file=${tokensFile}`,
]);
const closers: (() => void)[] = [];
after(async () => {
  for (const close of closers) close();
  await service.stop();
  await rm(dir, { recursive: true, force: true });
});

type Token = NodeClientOptions["token"];
function node(options: Omit<NodeClientOptions, "baseUrl">): TfstateClient {
  const c = createNodeClient({ baseUrl: service.url, defaultTimeoutMs: TIMEOUT_MS, ...options });
  closers.push(() => c.close());
  return c;
}
const web = (token: Token, protocol: "connect" | "grpc-web") =>
  createWebClient({ baseUrl: service.url, token, protocol, defaultTimeoutMs: TIMEOUT_MS });

const CLIENTS: { name: string; client: (token: Token) => TfstateClient }[] = [
  { name: "node connect, HTTP/1.1", client: (token) => node({ token }) },
  { name: "node connect, h2c", client: (token) => node({ token, httpVersion: "2" }) },
  { name: "node grpc, h2c", client: (token) => node({ token, protocol: "grpc" }) },
  { name: "node grpc-web, HTTP/1.1", client: (token) => node({ token, protocol: "grpc-web" }) },
  { name: "web connect (fetch)", client: (token) => web(token, "connect") },
  { name: "web grpc-web (fetch)", client: (token) => web(token, "grpc-web") },
];

async function unauthenticated(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => assert.fail("the call succeeded"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConnectError, `not a ConnectError: ${String(err)}`);
  assert.equal(Code[err.code], Code[Code.Unauthenticated], err.message);
  for (const secret of Object.values(tokens)) {
    assert.ok(!err.message.includes(secret) && !String(err).includes(secret), "the error quotes a token");
  }
}

/** WatchLock's first message; the loop stops there, which ends the call. */
async function firstWatchKind(c: TfstateClient, workspace: string): Promise<LockEventKind> {
  for await (const m of c.state.watchLock({ workspace })) return m.kind;
  assert.fail("WatchLock ended without a message");
}

/** A source returning the tokens in turn (the last one ever after), and its call count. */
function rotating(list: string[], async = false): { source: TokenSource; asked: () => number } {
  let calls = 0;
  const next = () => list[Math.min(++calls, list.length) - 1] as string;
  return { source: async ? () => Promise.resolve(next()) : next, asked: () => calls };
}

const md5 = (b: Uint8Array) => new Uint8Array(createHash("md5").update(b).digest());
let counter = 0;
const workspaceName = (prefix: string) => `${prefix}-${process.pid}-${++counter}`;

for (const { name, client } of CLIENTS) {
  describe(name, () => {
    test("the right token is served, unary calls and WatchLock", async () => {
      const c = client(tokens.token);
      const workspace = workspaceName("identity");
      const state = new TextEncoder().encode(`{"version":4,"serial":1,"lineage":"${workspace}"}`);
      await c.state.putState({ workspace, state, md5: md5(state) });
      assert.deepEqual((await c.state.getState({ workspace })).state, state);
      assert.equal(await firstWatchKind(c, workspace), LockEventKind.SNAPSHOT);
    });

    for (const [label, token] of [
      ["no token", undefined],
      ["an unknown token", tokens.unknown],
      ["junk", "not-a-token"],
      ["a token's prefix", tokens.token.slice(0, -1)],
      ["a JWT-shaped string", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"],
    ] as const) {
      test(`${label} is UNAUTHENTICATED, on unary calls and WatchLock`, async () => {
        const c = client(token);
        await unauthenticated(c.workspaces.listWorkspaces({}));
        await unauthenticated(c.state.getState({ workspace: "default" }));
        await unauthenticated(firstWatchKind(c, "default"));
        // Watching every workspace is refused as well, not filtered to nothing.
        await unauthenticated(firstWatchKind(c, ""));
      });
    }

    for (const async of [false, true]) {
      test(`a ${async ? "promise-returning" : "plain"} token source is asked for every call`, async () => {
        const { source, asked } = rotating([tokens.token, tokens.rotated, tokens.unknown], async);
        const c = client(source);
        await c.workspaces.listWorkspaces({});
        assert.equal(asked(), 1);
        assert.equal(await firstWatchKind(c, "default"), LockEventKind.SNAPSHOT);
        assert.equal(asked(), 2);
        await unauthenticated(c.workspaces.listWorkspaces({}));
        await unauthenticated(firstWatchKind(c, "default"));
        assert.equal(asked(), 4);
      });
    }

    test("a rotated token file reaches the next call", async () => {
      const file = path.join(dir, `token-${++counter}`);
      // Replaced by a rename, as secret mounts and sidecars do.
      const write = async (token: string) => {
        await writeFile(`${file}.new`, `${token}\n`);
        await rename(`${file}.new`, file);
      };
      const c = client(tokenFromFile(file));
      await write(tokens.token);
      await c.workspaces.listWorkspaces({});
      await write(tokens.rotated);
      assert.equal(await firstWatchKind(c, "default"), LockEventKind.SNAPSHOT);
      await write(tokens.unknown);
      await unauthenticated(c.workspaces.listWorkspaces({}));
    });
  });
}
