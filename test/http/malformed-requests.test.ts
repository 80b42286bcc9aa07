/**
 * No request, however malformed, ends or wedges the server: on a raw socket, each malformed
 * HTTP/1.1 request gets an answer that names the problem (400, 431 for oversized headers, 408 for
 * headers that never finish, 505 for an HTTP/2.0 request line) and its connection is closed; a
 * broken HTTP/2 preface is refused the HTTP/2 way (GOAWAY) or, when nothing can be answered, the
 * connection just closes. After each, a fresh connection still gets /healthz.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { runCli } from "../cli/cli-process.ts";
import { serveOnDisk } from "./disk-server.ts";
import { assertAlive, bodyOf, exchange, type Step, statusOf } from "./raw-socket.ts";

const HEADERS_TIMEOUT_MS = 1500;
const srv = await serveOnDisk({ headersTimeoutMs: HEADERS_TIMEOUT_MS });

// Nothing a client sends may leave a rejection unhandled (the CLI exits on one).
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
process.on("unhandledRejection", onUnhandled);
after(() => process.off("unhandledRejection", onUnhandled));

const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const PUT_STATE = "/tfstate.v1.StateService/PutState";

interface Case {
  name: string;
  steps: Step[];
  status: number;
  /** What the answer's body must say. */
  says: RegExp;
}

const cases: Case[] = [
  {
    name: "a request line without an HTTP version (HTTP/0.9)",
    steps: ["GET /healthz\r\n\r\n"],
    status: 400,
    says: /the request line has no HTTP version/,
  },
  {
    name: "an HTTP/2.0 request line on an HTTP/1.1 connection",
    steps: ["GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"],
    status: 505,
    says: /HTTP\/2\.0 is not served on an HTTP\/1\.1 connection/,
  },
  {
    name: "an HTTP/2.0 request line on an RPC path",
    steps: [`POST ${PUT_STATE} HTTP/2.0\r\nHost: x\r\nContent-Type: application/json\r\n\r\n`],
    status: 505,
    says: /HTTP\/2\.0 is not served/,
  },
  {
    name: "an HTTP/3 request line",
    steps: ["GET /healthz HTTP/3\r\nHost: x\r\n\r\n"],
    status: 400,
    says: /malformed HTTP\/1\.1 request: .*HPE_INVALID_VERSION/,
  },
  {
    name: "an HTTP/3.0 request line",
    steps: ["GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n"],
    status: 400,
    says: /Invalid HTTP version/,
  },
  {
    name: "a garbage request line",
    steps: ["\x01\x02 not http at all\r\n\r\n"],
    status: 400,
    says: /malformed HTTP\/1\.1 request: .*HPE_INVALID_METHOD/,
  },
  {
    name: "bare LF line endings",
    steps: ["GET /healthz HTTP/1.1\nHost: x\n\n"],
    status: 400,
    says: /malformed HTTP\/1\.1 request: Expected CRLF/,
  },
  {
    name: "an invalid header name",
    steps: ["GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n"],
    status: 400,
    says: /Invalid header token/,
  },
  {
    name: "an invalid header value",
    steps: ["GET /healthz HTTP/1.1\r\nHost: x\r\nX-Value: a\x01b\r\n\r\n"],
    status: 400,
    says: /Invalid header value char/,
  },
  {
    name: "a header flood (thousands of headers)",
    steps: [
      `GET /healthz HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 5000 }, (_, i) => `X-H${i}: v\r\n`).join("")}\r\n`,
    ],
    status: 431,
    says: /request headers are larger than the server takes/,
  },
  {
    name: "one huge header",
    steps: [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`],
    status: 431,
    says: /request headers are larger/,
  },
  {
    name: "a half-close after partial headers",
    steps: ["GET /healthz HTTP/1.1\r\nHost: x\r\nX-Partial: y", "half-close"],
    status: 400,
    says: /ended the connection in the middle of a request/,
  },
  {
    name: "a bad chunk size on the Terraform http backend",
    steps: [
      "POST /terraform/state/malformed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ],
    status: 400,
    says: /Invalid character in chunk size/,
  },
  {
    name: "a bad chunk size on an RPC",
    steps: [
      `POST ${PUT_STATE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\nq\r\n`,
    ],
    status: 400,
    says: /Invalid character in chunk size/,
  },
  {
    name: "chunk data without its CRLF",
    steps: [
      `POST ${PUT_STATE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n`,
    ],
    status: 400,
    says: /malformed HTTP\/1\.1 request: Expected LF after chunk data/,
  },
  {
    name: "Content-Length and Transfer-Encoding together",
    steps: [
      "POST /terraform/state/malformed HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    status: 400,
    says: /Transfer-Encoding can't be present with Content-Length/,
  },
  {
    name: "two different Content-Lengths",
    steps: [
      "POST /terraform/state/malformed HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    ],
    status: 400,
    says: /Duplicate Content-Length/,
  },
  {
    name: "an HTTP/1.0 RPC without a Host",
    steps: [`POST ${PUT_STATE} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`],
    status: 400,
    says: /the request names no host/,
  },
];

for (const c of cases) {
  test(`${c.name}: ${c.status}, the connection closed, the server alive`, async () => {
    const r = await exchange(srv.port, c.steps);
    assert.equal(statusOf(r.text), c.status, `answer: ${JSON.stringify(r.text.slice(0, 300))}`);
    assert.match(r.text, /\r\nconnection: close\r\n/i);
    assert.match(bodyOf(r.text), c.says);
    assert.ok(r.closed, "the server closed the connection");
    await assertAlive(srv.url);
    assert.deepEqual(unhandled, []);
  });
}

test("headers trickled in slower than the headers timeout: 408 at the timeout, then closed", async () => {
  const steps: Step[] = ["GET /healthz HTTP/1.1\r\n"];
  for (let i = 0; i < 40; i++) steps.push({ pauseMs: 250 }, `X-Drip-${i}: 1\r\n`);
  const r = await exchange(srv.port, steps, 10_000);
  assert.equal(statusOf(r.text), 408, `answer: ${JSON.stringify(r.text.slice(0, 300))}`);
  assert.match(bodyOf(r.text), /the request headers did not arrive within 1\.5 s/);
  assert.ok(r.closed, "closed at the headers timeout");
  // Node checks header deadlines on a timer (a quarter of the timeout here): generous bounds.
  assert.ok(r.ms >= HEADERS_TIMEOUT_MS - 100 && r.ms < 8000, `closed after ${Math.round(r.ms)} ms`);
  await assertAlive(srv.url);
});

test("a valid request after a refused one on another connection is served as usual", async () => {
  await exchange(srv.port, ["GET /healthz\r\n\r\n"]);
  const r = await exchange(srv.port, ["GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
  assert.equal(statusOf(r.text), 200);
  assert.equal(bodyOf(r.text), "ok\n");
});

test("the HTTP/2 preface followed by garbage: GOAWAY with PROTOCOL_ERROR, closed, the server alive", async () => {
  const r = await exchange(srv.port, [PREFACE, "this is not an HTTP/2 frame at all, not at all\r\n"]);
  assert.ok(r.closed);
  const goAway = http2Frames(r.bytes).find((f) => f.type === 0x7);
  assert.ok(goAway, `a GOAWAY frame among ${JSON.stringify(http2Frames(r.bytes).map((f) => f.type))}`);
  assert.equal(goAway.payload.readUInt32BE(4), 0x1, "error code PROTOCOL_ERROR");
  await assertAlive(srv.url);
});

test("a partial HTTP/2 preface, then a half-close: closed without an answer (no protocol to answer in)", async () => {
  const r = await exchange(srv.port, [PREFACE.slice(0, 10), "half-close"]);
  assert.ok(r.closed);
  assert.equal(r.bytes.byteLength, 0);
  await assertAlive(srv.url);
});

test("a partial HTTP/2 preface, then the client goes: the server alive", async () => {
  const r = await exchange(srv.port, [PREFACE.slice(0, 10)], 300);
  assert.equal(r.closed, false, "the server waits for the rest of the preface");
  await assertAlive(srv.url);
});

test("the CLI process survives the inputs that used to end it", async () => {
  const run = await runCli(["--listen", "127.0.0.1:0", "--repository", "oci-layout:./data"]);
  const listening = await run.waitForLog("listening");
  const url = String(listening.url);
  const port = Number(new URL(url).port);
  const noVersion = await exchange(port, ["GET /healthz\r\n\r\n"]);
  assert.equal(statusOf(noVersion.text), 400);
  const http20 = await exchange(port, ["GET / HTTP/2.0\r\nHost: x\r\n\r\n"]);
  assert.equal(statusOf(http20.text), 505);
  await assertAlive(url);
  assert.equal(run.child.exitCode, null, `the CLI is still running:\n${run.stderr()}`);
  assert.deepEqual(
    run.logs().filter((l) => l.level === "error"),
    [],
  );
  run.child.kill("SIGTERM");
  assert.deepEqual(await run.exited, { code: 0, signal: null });
});

/** The frames of an HTTP/2 byte stream (the server's side: no preface). */
function http2Frames(bytes: Buffer): { type: number; payload: Buffer }[] {
  const out: { type: number; payload: Buffer }[] = [];
  for (let at = 0; at + 9 <= bytes.byteLength; ) {
    const length = bytes.readUIntBE(at, 3);
    out.push({ type: bytes[at + 3] as number, payload: bytes.subarray(at + 9, at + 9 + length) });
    at += 9 + length;
  }
  return out;
}
