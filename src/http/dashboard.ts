/**
 * The browser dashboard's static files (web/dist, built by Vite from web/), served on the same port
 * as the API. Every file is read into memory once at start and answered from an exact-path table,
 * so no request path ever reaches the file system: `/../`, `%2e%2e`, encoded slashes and any other
 * name not in the build are 404 without further thought. Files under `assets/` carry a content
 * hash in their names and are cached for a year; `index.html` is revalidated on every load.
 *
 * The files need no credentials (they hold no data); the API calls they make do.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import type { NodeRequest, NodeResponse } from "./listener.ts";

/** The dashboard's policy: its own script, styles and API only; no inline script, never framed. */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const IMMUTABLE = "public, max-age=31536000, immutable";
const REVALIDATE = "no-cache";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json",
};

/** Smaller than this, gzip is not worth a header. */
const GZIP_MIN_BYTES = 1024;

interface StaticFile {
  body: Buffer;
  gzip: Buffer | undefined;
  headers: Record<string, string>;
}

export interface Dashboard {
  /** Whether this path is one of the dashboard's files (`/` is index.html). */
  has(path: string): boolean;
  serve(req: NodeRequest, res: NodeResponse, path: string): void;
  /** The number of files served, for the start log. */
  readonly size: number;
}

/** The directory the build writes to, beside src/ in the package. */
export const DEFAULT_DASHBOARD_DIR = path.resolve(import.meta.dirname, "../../web/dist");

/**
 * Reads the built dashboard. A directory that does not exist gives a dashboard whose `/` answers
 * 503 saying how to build it (never a blank page); any other read error is thrown.
 */
export async function loadDashboard(dir: string = DEFAULT_DASHBOARD_DIR): Promise<Dashboard> {
  const files = new Map<string, StaticFile>();
  let names: string[];
  try {
    names = await listFiles(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    return notBuilt(dir);
  }
  for (const name of names) {
    const type = CONTENT_TYPES[path.extname(name).toLowerCase()];
    if (type === undefined) continue;
    const body = await readFile(path.join(dir, name));
    const urlPath = `/${name.split(path.sep).join("/")}`;
    const hashed = urlPath.startsWith("/assets/");
    files.set(urlPath, {
      body,
      gzip: body.length >= GZIP_MIN_BYTES && !type.startsWith("image/png") ? gzipSync(body) : undefined,
      headers: {
        "content-type": type,
        "cache-control": hashed ? IMMUTABLE : REVALIDATE,
        "content-security-policy": DASHBOARD_CSP,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-resource-policy": "same-origin",
        vary: "Accept-Encoding",
      },
    });
  }
  const index = files.get("/index.html");
  if (index === undefined) return notBuilt(dir);
  files.set("/", index);
  return {
    size: files.size - 1,
    // Unknown names under assets/ get this file's 404 (with nosniff), like every other miss.
    has: (p) => files.has(p) || p.startsWith("/assets/"),
    serve(req, res, p) {
      const file = files.get(p);
      if (file === undefined) {
        send(res, req, 404, { "content-type": "text/plain; charset=utf-8" }, Buffer.from("not found\n"));
        return;
      }
      if (req.method !== "GET" && req.method !== "HEAD") {
        send(
          res,
          req,
          405,
          { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD" },
          Buffer.from("method not allowed\n"),
        );
        return;
      }
      const gzip = file.gzip !== undefined && acceptsGzip(req.headers["accept-encoding"]);
      send(
        res,
        req,
        200,
        gzip ? { ...file.headers, "content-encoding": "gzip" } : file.headers,
        gzip ? (file.gzip as Buffer) : file.body,
      );
    },
  };
}

/** `/` (and `/index.html`) explain that the build is missing; everything else is left alone. */
function notBuilt(dir: string): Dashboard {
  const body = Buffer.from(
    `The dashboard is not built: ${dir} has no index.html. Run \`npm run build:web\`.\n`,
  );
  return {
    size: 0,
    has: (p) => p === "/" || p === "/index.html",
    serve(req, res) {
      send(res, req, 503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }, body);
    },
  };
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

/** Whether `accept-encoding` allows gzip (a `q=0` refuses it). */
function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  for (const part of header.split(",")) {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    if (name !== "gzip" && name !== "*") continue;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}

function send(
  res: NodeResponse,
  req: NodeRequest,
  status: number,
  headers: Record<string, string>,
  body: Buffer,
): void {
  const all = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    ...headers,
    "content-length": String(body.length),
  };
  (res as { writeHead(s: number, h: Record<string, string>): unknown }).writeHead(status, all);
  if (req.method === "HEAD") res.end();
  else res.end(body);
}
