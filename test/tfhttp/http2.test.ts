/**
 * The same protocol over HTTP/2 (h2c with prior knowledge, as Go's client speaks it to a TLS
 * endpoint after ALPN): custom methods pass, bodies are read, and an oversized body ends only its
 * stream, not the connection.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, test } from "node:test";
import { startTfhttpFixture } from "./fixture.ts";
import { md5Base64, newLockInfo, stateDoc } from "./tofu-client.ts";

const fx = await startTfhttpFixture({ maxStateSize: 16 * 1024 });
const session = http2.connect(fx.url);
after(() => session.close());

interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  text: string;
}

function request(method: string, path: string, body?: string): Promise<H2Response> {
  const headers: http2.OutgoingHttpHeaders = { ":method": method, ":path": path };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-md5"] = md5Base64(body);
  }
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let status = 0;
    let responseHeaders: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      responseHeaders = h;
      status = Number(h[":status"]);
    });
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () =>
      resolve({ status, headers: responseHeaders, text: Buffer.concat(chunks).toString() }),
    );
    stream.on("error", reject);
    if (body !== undefined) stream.end(body);
  });
}

test("LOCK, a fenced POST, GET with Content-MD5 and UNLOCK over HTTP/2", async () => {
  const ws = fx.workspaceName("h2");
  const path = `/terraform/state/${ws}`;
  const info = newLockInfo();
  const locked = await request("LOCK", `${path}/lock`, JSON.stringify(info));
  assert.equal(locked.status, 200, locked.text);
  assert.equal((JSON.parse(locked.text) as { ID: string }).ID, info.ID);
  assert.equal((await request("LOCK", `${path}/lock`, JSON.stringify(newLockInfo()))).status, 423);

  const doc = stateDoc(1, "h2");
  assert.equal((await request("POST", path, doc)).status, 409);
  assert.equal((await request("POST", `${path}?ID=${info.ID}`, doc)).status, 200);
  const got = await request("GET", path);
  assert.equal(got.status, 200);
  assert.equal(got.text, doc);
  assert.equal(got.headers["content-md5"], md5Base64(doc));
  assert.equal((await request("UNLOCK", `${path}/lock`, JSON.stringify(info))).status, 200);
});

test("an oversized body is 413 on its stream and the connection carries on", async () => {
  const path = `/terraform/state/${fx.workspaceName("h2-big")}`;
  const res = await request("POST", path, "x".repeat(16 * 1024 + 1));
  assert.equal(res.status, 413);
  assert.match(res.text, /state is larger than the limit of 16384 bytes/);
  assert.equal((await request("GET", path)).status, 404);
});
