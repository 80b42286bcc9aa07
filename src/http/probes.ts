/**
 * Plain HTTP probes for orchestrators: /healthz says the process serves requests (liveness: it
 * stays 200 while draining, so a draining pod is not killed early); /readyz says it can do its job
 * (the registry answers and it is not shutting down).
 */
import type { Readiness } from "../rpc/readiness.ts";
import type { NodeRequest, NodeResponse } from "./listener.ts";

export const PROBE_PATHS: ReadonlySet<string> = new Set(["/healthz", "/readyz"]);

export async function serveProbe(path: string, req: NodeRequest, res: NodeResponse, readiness: Readiness) {
  if (req.method !== "GET" && req.method !== "HEAD") {
    send(res, req, 405, "method not allowed\n", { allow: "GET, HEAD" });
    return;
  }
  if (path === "/healthz") {
    send(res, req, 200, "ok\n");
    return;
  }
  const status = await readiness.status();
  if (status.ready) send(res, req, 200, "ready\n");
  else send(res, req, 503, `not ready: ${status.reason ?? "unknown"}\n`);
}

function send(
  res: NodeResponse,
  req: NodeRequest,
  status: number,
  body: string,
  extra: Record<string, string> = {},
) {
  const headers = {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
    "content-length": String(Buffer.byteLength(body)),
    ...extra,
  };
  // Both response kinds have writeHead(status, headers) and end(body).
  (res as { writeHead(s: number, h: Record<string, string>): unknown }).writeHead(status, headers);
  if (req.method === "HEAD") res.end();
  else res.end(body);
}
