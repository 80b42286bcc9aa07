/**
 * The dashboard's static files at the edge (src/http/dashboard.ts), on a real server, with raw
 * requests: the right content types and cache headers (hashed assets immutable, index.html
 * revalidated), the CSP and nosniff, gzip when asked, GET/HEAD only, 404 for any name not in the
 * build, and no way out of the build directory (`/../`, `%2e%2e`, encoded slashes and backslashes,
 * NUL, absolute-form targets). The browser guards still come first; probes, RPCs and the http
 * backend answer as before. The committed build itself stays within its first-load budget.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";
import { allowedHostsFor } from "../../src/http/browser-guards.ts";
import { DASHBOARD_CSP, DEFAULT_DASHBOARD_DIR, loadDashboard } from "../../src/http/dashboard.ts";
import { serveOnDisk } from "./disk-server.ts";
import { exchange } from "./raw-socket.ts";

const root = await mkdtemp(path.join(tmpdir(), "oci-tfstate-dashboard-"));
after(() => rm(root, { recursive: true, force: true }));
const dist = path.join(root, "dist");
const SECRET = "top-secret-outside-the-build";
const SCRIPT = `console.log(${JSON.stringify("x".repeat(4000))});\n`;
await mkdir(path.join(dist, "assets"), { recursive: true });
await writeFile(path.join(root, "secret.txt"), SECRET);
await writeFile(
  path.join(dist, "index.html"),
  '<!doctype html><script type="module" src="/assets/app-3f9a.js"></script>',
);
await writeFile(path.join(dist, "assets", "app-3f9a.js"), SCRIPT);
await writeFile(path.join(dist, "assets", "app-3f9a.css"), "body{margin:0}");
await writeFile(path.join(dist, "assets", "notes.unknown"), SECRET);
await writeFile(path.join(dist, "favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");

const srv = await serveOnDisk({
  dashboard: await loadDashboard(dist),
  allowedHosts: allowedHostsFor("127.0.0.1", undefined),
});

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One HTTP/1.1 request with the target written byte for byte. */
async function raw(target: string, method = "GET", extra: Record<string, string> = {}): Promise<Reply> {
  const lines = [`${method} ${target} HTTP/1.1`, `Host: 127.0.0.1:${srv.port}`, "Connection: close"];
  for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
  const { bytes } = await exchange(srv.port, [`${lines.join("\r\n")}\r\n\r\n`]);
  const split = bytes.indexOf("\r\n\r\n");
  assert.ok(split > 0, `an HTTP response to ${method} ${target}: ${bytes.toString("latin1")}`);
  const head = bytes.subarray(0, split).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0] ?? "")?.[1]);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(":");
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = bytes.subarray(split + 4);
  if (headers["transfer-encoding"] === "chunked") body = dechunk(body);
  return { status, headers, body };
}

function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = b.indexOf("\r\n", i);
    const n = Number.parseInt(b.subarray(i, eol).toString(), 16);
    if (!n) return Buffer.concat(out);
    out.push(b.subarray(eol + 2, eol + 2 + n));
    i = eol + 2 + n + 2;
  }
}

test("/ and /index.html: HTML, revalidated, under the strict CSP, nosniff, never framed", async () => {
  for (const p of ["/", "/index.html"]) {
    const r = await raw(p);
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], "text/html; charset=utf-8");
    assert.equal(r.headers["cache-control"], "no-cache");
    assert.equal(r.headers["content-security-policy"], DASHBOARD_CSP);
    assert.equal(r.headers["x-content-type-options"], "nosniff");
    assert.equal(r.headers["x-frame-options"], "DENY");
    assert.match(r.body.toString(), /app-3f9a\.js/);
  }
  for (const d of [
    "default-src 'self'",
    "script-src 'self'",
    "connect-src 'self'",
    "frame-ancestors 'none'",
  ]) {
    assert.ok(DASHBOARD_CSP.split("; ").includes(d), d);
  }
  assert.ok(!DASHBOARD_CSP.includes("unsafe"), "no unsafe-inline or unsafe-eval");
});

test("hashed assets are immutable for a year, with their content types; gzip only when asked", async () => {
  const js = await raw("/assets/app-3f9a.js");
  assert.equal(js.status, 200);
  assert.equal(js.headers["content-type"], "text/javascript; charset=utf-8");
  assert.equal(js.headers["cache-control"], "public, max-age=31536000, immutable");
  assert.equal(js.headers["x-content-type-options"], "nosniff");
  assert.equal(js.headers["content-encoding"], undefined);
  assert.equal(js.body.toString(), SCRIPT);
  const css = await raw("/assets/app-3f9a.css");
  assert.equal(css.headers["content-type"], "text/css; charset=utf-8");
  const svg = await raw("/favicon.svg");
  assert.equal(svg.headers["content-type"], "image/svg+xml");
  assert.equal(svg.headers["cache-control"], "no-cache", "an unhashed name is revalidated");

  const gz = await raw("/assets/app-3f9a.js", "GET", { "accept-encoding": "br, gzip, deflate" });
  assert.equal(gz.headers["content-encoding"], "gzip");
  assert.equal(gz.headers.vary, "Accept-Encoding");
  assert.equal(gunzipSync(gz.body).toString(), SCRIPT);
  assert.equal(Number(gz.headers["content-length"]), gz.body.length);
  const refused = await raw("/assets/app-3f9a.js", "GET", { "accept-encoding": "gzip;q=0" });
  assert.equal(refused.headers["content-encoding"], undefined);
});

test("HEAD gets the headers without a body; other methods 405 with Allow", async () => {
  const head = await raw("/", "HEAD");
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assert.ok(Number(head.headers["content-length"]) > 0);
  for (const m of ["POST", "PUT", "DELETE", "LOCK"]) {
    const r = await raw("/index.html", m, { "content-length": "0" });
    assert.equal(r.status, 405, m);
    assert.equal(r.headers.allow, "GET, HEAD");
  }
});

test("a name not in the build is 404: unknown assets, unknown pages, files of unknown types", async () => {
  for (const p of ["/assets/app-0000.js", "/nope.html", "/assets/notes.unknown", "/assets/", "/assets"]) {
    const r = await raw(p);
    assert.equal(r.status, 404, p);
    assert.ok(!r.body.toString().includes(SECRET), p);
  }
  const miss = await raw("/assets/app-0000.js");
  assert.equal(miss.headers["x-content-type-options"], "nosniff");
});

test("no path leaves the build directory: dot segments, percent-encoding, encoded slashes, NUL", async () => {
  const targets = [
    "/../secret.txt",
    "/assets/../../secret.txt",
    "/assets/../index.html",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/assets/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/assets%2f..%2f..%2fsecret.txt",
    "/assets/..%5c..%5csecret.txt",
    "/assets\\..\\..\\secret.txt",
    "/%252e%252e/secret.txt",
    "//secret.txt",
    "/./index.html",
    "/index.html%00",
    "/assets/app-3f9a.js%00.html",
    "http://127.0.0.1/../secret.txt",
    `/${"../".repeat(20)}etc/passwd`,
  ];
  // The same server does serve its files: the 404s below are the route's answers, not its absence.
  assert.equal((await raw("/index.html")).status, 200);
  for (const target of targets) {
    const r = await raw(target);
    assert.ok(r.status === 404 || r.status === 400, `${target}: ${r.status}`);
    assert.ok(!r.body.toString().includes(SECRET), target);
    assert.ok(!r.body.toString().includes("root:"), target);
  }
});

test("the browser guards come first: a foreign Origin 403, a foreign Host 421, the own origin served", async () => {
  const evil = await raw("/", "GET", { origin: "https://evil.example" });
  assert.equal(evil.status, 403);
  const own = await raw("/assets/app-3f9a.js", "GET", { origin: `http://127.0.0.1:${srv.port}` });
  assert.equal(own.status, 200, "a module script (crossorigin) from the page's own origin");
  const lines = ["GET / HTTP/1.1", "Host: rebind.attacker.example", "Connection: close"];
  const { text } = await exchange(srv.port, [`${lines.join("\r\n")}\r\n\r\n`]);
  assert.match(text, /^HTTP\/1\.1 421 /);
});

test("probes, RPCs and the http backend answer as before; the dashboard is served over HTTP/2 too", async () => {
  const health = await raw("/healthz");
  assert.equal(health.status, 200);
  assert.equal(health.body.toString(), "ok\n");
  const body = JSON.stringify({ workspace: "default" });
  const res = await fetch(`${srv.url}/tfstate.v1.StateService/GetLock`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { state: string }).state, "LOCK_STATE_UNLOCKED");
  const tf = await fetch(`${srv.url}/terraform/state/nothing-here`);
  assert.equal(tf.status, 404);
  assert.match(await tf.text(), /nothing-here|not found|no state/i);

  const session = http2.connect(srv.url);
  after(() => session.close());
  const h2 = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    const s = session.request({ ":path": "/" });
    let status = 0;
    let type = "";
    let text = "";
    s.on("response", (h) => {
      status = Number(h[":status"]);
      type = String(h["content-type"]);
    });
    s.on("data", (d: Buffer) => {
      text += d.toString();
    });
    s.on("end", () => resolve({ status, type, body: text }));
    s.on("error", reject);
    s.end();
  });
  assert.equal(h2.status, 200);
  assert.equal(h2.type, "text/html; charset=utf-8");
  assert.match(h2.body, /app-3f9a\.js/);
});

test("without a build, / says how to make one (503, never a blank page); other paths are untouched", async () => {
  const missing = await serveOnDisk({ dashboard: await loadDashboard(path.join(root, "no-such-dir")) });
  const res = await fetch(`${missing.url}/`);
  assert.equal(res.status, 503);
  assert.match(await res.text(), /npm run build:web/);
  assert.equal((await fetch(`${missing.url}/assets/x.js`)).status, 404);
  assert.equal((await fetch(`${missing.url}/healthz`)).status, 200);
});

test("the committed build: no inline script, every referenced asset served, first load ≤ 150 KB gzip", async (t) => {
  const built = await serveOnDisk({ dashboard: await loadDashboard(DEFAULT_DASHBOARD_DIR) });
  const html = await readFile(path.join(DEFAULT_DASHBOARD_DIR, "index.html"), "utf8");
  for (const tag of html.match(/<script\b[^>]*>/g) ?? []) assert.match(tag, /\bsrc="\/assets\//, tag);
  assert.doesNotMatch(html, /<script\b[^>]*>[^<\s]/, "no inline script");
  assert.doesNotMatch(html, /\bstyle=|<style/, "no inline style");
  assert.doesNotMatch(html, /https?:\/\//, "nothing from another origin");
  const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1] as string);
  assert.ok(assets.some((a) => a.endsWith(".js")) && assets.some((a) => a.endsWith(".css")));
  let total = gzipSync(html, { level: 9 }).length;
  for (const a of assets) {
    const res = await fetch(`${built.url}${a}`);
    assert.equal(res.status, 200, a);
    assert.equal(res.headers.get("cache-control"), "public, max-age=31536000, immutable");
    const file = await readFile(path.join(DEFAULT_DASHBOARD_DIR, a));
    assert.ok(!file.toString().includes("fonts.googleapis"), a);
    total += gzipSync(file, { level: 9 }).length;
  }
  t.diagnostic(`dashboard first load: ${(total / 1024).toFixed(1)} KiB gzip`);
  assert.ok(total <= 150 * 1024, `first load ${total} bytes gzip`);
});
