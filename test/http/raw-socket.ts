/**
 * Raw TCP exchanges with the server, for input no HTTP client sends: bytes written as given, with
 * pauses and half-closes, and whatever comes back until the server closes the connection.
 */
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";

export type Step = string | Buffer | { pauseMs: number } | "half-close";

export interface Exchange {
  /** Everything the server sent, as latin1 text. */
  text: string;
  bytes: Buffer;
  /** Whether the server closed the connection (else the exchange gave up at its timeout). */
  closed: boolean;
  /** Milliseconds from the first byte written to the close (or the timeout). */
  ms: number;
}

/** Connects to `port`, runs `steps`, and reads until the server closes or `timeoutMs` passes. */
export function exchange(port: number, steps: readonly Step[], timeoutMs = 5000): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let started = 0;
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const bytes = Buffer.concat(chunks);
      socket.destroy();
      resolve({ text: bytes.toString("latin1"), bytes, closed, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on("data", (d: Buffer) => chunks.push(d));
    // A reset after the answer still counts as the server closing.
    socket.on("error", () => finish(true));
    socket.on("end", () => finish(true));
    socket.on("close", () => finish(true));
    socket.once("connect", () => {
      started = performance.now();
      void (async () => {
        for (const step of steps) {
          if (settled || socket.destroyed) return;
          if (step === "half-close") socket.end();
          else if (typeof step === "object" && "pauseMs" in step) await sleep(step.pauseMs);
          else socket.write(step);
        }
      })().catch(reject);
    });
  });
}

/** The status code of the first HTTP/1.1 response in `text`, or undefined when there is none. */
export function statusOf(text: string): number | undefined {
  const m = /^HTTP\/1\.[01] (\d{3}) /.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** The body of the first HTTP/1.1 response in `text`. */
export function bodyOf(text: string): string {
  const at = text.indexOf("\r\n\r\n");
  return at === -1 ? "" : text.slice(at + 4);
}

/** The server still answers: /healthz on a new connection gets 200. */
export async function assertAlive(url: string): Promise<void> {
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.get(`${url}/healthz`, { agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("/healthz did not answer within 5 s")));
    req.on("error", reject);
  });
  assert.equal(status, 200, "the server still answers /healthz");
  assert.equal(body, "ok\n");
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
