/**
 * A recording, fault-injecting HTTP proxy placed in front of a registry. Bodies stream through in both
 * directions; only tags/list responses are buffered, and only while tag pagination is emulated.
 */
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream";

export interface RecordedRequest {
  method: string;
  /** Path plus query, exactly as the client sent it. */
  path: string;
  /** The status the client got; 0 while unanswered or when the proxy reset the connection. */
  status: number;
  /** Request headers as the client sent them. */
  headers: Record<string, string | string[] | undefined>;
}

export type FaultAction =
  | { kind: "status"; status: number; headers?: Record<string, string>; body?: string }
  | { kind: "reset" }
  | { kind: "delay"; ms: number }
  /** Forwards the request, then runs `run` before the client sees the answer (to stage races). */
  | { kind: "afterUpstream"; run: () => Promise<void> };

export interface FaultRule {
  /** Case-insensitive exact match. */
  method?: string;
  /** Tested against path plus query. */
  path?: RegExp;
  /** How many matching requests it affects; unlimited when absent. */
  times?: number;
  action: FaultAction;
}

export interface ProxyHandle {
  url: string;
  host: string;
  /** Every request in arrival order, with the status the client got. */
  readonly requests: RecordedRequest[];
  clear(): void;
  fault(rule: FaultRule): void;
  clearFaults(): void;
  /**
   * Emulates tag-list pagination (Distribution 2.8 ignores n and last): GET .../tags/list answers at most
   * n tags per page, sorted, honouring `last`, with a `Link: <...>; rel="next"` header. undefined turns it off.
   */
  paginateTags(n: number | undefined): void;
  stop(): Promise<void>;
}

// Hop-by-hop headers (RFC 9110 section 7.6.1) belong to one connection and are never forwarded.
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"]);
const TAGS_LIST_RE = /^\/v2\/(.+)\/tags\/list(?:\?(.*))?$/;

interface ActiveRule {
  rule: FaultRule;
  remaining: number;
}

export async function startProxy(upstreamUrl: string): Promise<ProxyHandle> {
  const upstream = new URL(upstreamUrl);
  const isHttps = upstream.protocol === "https:";
  // The proxy is test plumbing in front of a throwaway registry; trust is checked by clients, not here.
  const agent = isHttps
    ? new https.Agent({ keepAlive: true, rejectUnauthorized: false })
    : new http.Agent({ keepAlive: true });
  const requestUpstream = isHttps ? https.request : http.request;

  const requests: RecordedRequest[] = [];
  let rules: ActiveRule[] = [];
  let tagPageSize: number | undefined;

  const takeFault = (method: string, path: string): FaultAction | undefined => {
    for (const active of rules) {
      const { rule } = active;
      if (active.remaining <= 0) continue;
      if (rule.method !== undefined && rule.method.toUpperCase() !== method.toUpperCase()) continue;
      if (rule.path !== undefined) {
        rule.path.lastIndex = 0; // A /g or /y regex keeps state between test() calls.
        if (!rule.path.test(path)) continue;
      }
      active.remaining -= 1;
      return rule.action;
    }
    return undefined;
  };

  const forward = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    record: RecordedRequest,
    beforeAnswer?: () => Promise<void>,
  ): void => {
    const path = req.url ?? "/";
    const tagsMatch = TAGS_LIST_RE.exec(path);
    if (tagPageSize !== undefined && req.method === "GET" && tagsMatch?.[1] !== undefined) {
      paginate(req, res, record, tagsMatch[1], tagsMatch[2] ?? "", tagPageSize);
      return;
    }
    const upReq = requestUpstream(
      {
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path,
        headers: forwardableRaw(req.rawHeaders),
        agent,
      },
      (upRes) => {
        const answer = () => {
          record.status = upRes.statusCode ?? 0;
          res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, forwardableRaw(upRes.rawHeaders));
          pipeline(upRes, res, () => {});
        };
        if (beforeAnswer === undefined) answer();
        else {
          upRes.pause();
          beforeAnswer().then(answer, (err: Error) => failUpstream(res, record, err));
        }
      },
    );
    // Not pipeline(): an upstream failure must leave the client socket open for a 502 answer.
    req.pipe(upReq);
    req.on("error", () => upReq.destroy());
    res.on("close", () => {
      if (!res.writableFinished) upReq.destroy();
    });
    upReq.on("error", (err) => {
      req.unpipe(upReq);
      req.resume();
      failUpstream(res, record, err);
    });
  };

  const paginate = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    record: RecordedRequest,
    name: string,
    query: string,
    pageSize: number,
  ): void => {
    req.resume();
    const upReq = requestUpstream(
      {
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: "GET",
        path: `/v2/${name}/tags/list`,
        headers: forwardableRaw(req.rawHeaders),
        agent,
      },
      (upRes) => {
        const chunks: Buffer[] = [];
        upRes.on("data", (chunk: Buffer) => chunks.push(chunk));
        upRes.on("error", (err) => failUpstream(res, record, err));
        upRes.on("end", () => {
          const status = upRes.statusCode ?? 502;
          const body = Buffer.concat(chunks);
          const headers = forwardableRaw(upRes.rawHeaders);
          const page = status === 200 ? tagPage(body, name, new URLSearchParams(query), pageSize) : undefined;
          if (page === undefined) {
            record.status = status;
            res.writeHead(status, upRes.statusMessage, [
              ...stripPairs(headers),
              "Content-Length",
              `${body.length}`,
            ]);
            res.end(body);
            return;
          }
          const out = Buffer.from(JSON.stringify(page.body));
          const extra = page.next === undefined ? [] : ["Link", `<${page.next}>; rel="next"`];
          record.status = 200;
          res.writeHead(200, [
            ...stripPairs(headers, "content-type"),
            "Content-Type",
            "application/json",
            "Content-Length",
            `${out.length}`,
            ...extra,
          ]);
          res.end(out);
        });
      },
    );
    upReq.on("error", (err) => failUpstream(res, record, err));
    upReq.end();
  };

  const server = http.createServer({ keepAlive: true }, (req, res) => {
    const record: RecordedRequest = {
      method: req.method ?? "",
      path: req.url ?? "",
      status: 0,
      headers: { ...req.headers },
    };
    requests.push(record);
    const action = takeFault(record.method, record.path);
    if (action === undefined) {
      forward(req, res, record);
      return;
    }
    switch (action.kind) {
      case "status": {
        // Answer only once the request body is drained so the keep-alive connection stays usable.
        req.resume();
        req.on("end", () => {
          const body = action.body ?? "";
          record.status = action.status;
          res.writeHead(action.status, { ...action.headers, "Content-Length": `${Buffer.byteLength(body)}` });
          res.end(body);
        });
        return;
      }
      case "reset":
        req.socket.resetAndDestroy();
        return;
      case "afterUpstream":
        forward(req, res, record, action.run);
        return;
      case "delay": {
        const socket = req.socket;
        const cancel = (): void => clearTimeout(timer);
        const timer = setTimeout(() => {
          socket.off("close", cancel);
          if (!socket.destroyed) forward(req, res, record);
        }, action.ms);
        socket.once("close", cancel);
        return;
      }
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;

  let stopping: Promise<void> | undefined;
  return {
    url: `http://${host}`,
    host,
    get requests() {
      return requests;
    },
    clear() {
      requests.length = 0;
    },
    fault(rule) {
      rules.push({ rule, remaining: rule.times ?? Number.POSITIVE_INFINITY });
    },
    clearFaults() {
      rules = [];
    },
    paginateTags(n) {
      if (n !== undefined && (!Number.isInteger(n) || n < 1)) {
        throw new RangeError(`tag page size must be a positive integer, got ${n}`);
      }
      tagPageSize = n;
    },
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      });
      return stopping;
    },
  };
}

/** Filters hop-by-hop headers (and those named in Connection) out of a flat raw header list. */
function forwardableRaw(raw: string[]): string[] {
  const named = new Set(HOP_BY_HOP);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() === "connection") {
      for (const token of (raw[i + 1] ?? "").split(",")) named.add(token.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i] as string;
    if (!named.has(key.toLowerCase())) out.push(key, raw[i + 1] as string);
  }
  return out;
}

/** Drops the named headers (plus length/encoding, which the proxy recomputes) from a flat raw list. */
function stripPairs(raw: string[], ...names: string[]): string[] {
  const drop = new Set(["content-length", "transfer-encoding", ...names]);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i] as string;
    if (!drop.has(key.toLowerCase())) out.push(key, raw[i + 1] as string);
  }
  return out;
}

interface TagPage {
  body: { name: unknown; tags: string[] };
  next: string | undefined;
}

function tagPage(body: Buffer, name: string, query: URLSearchParams, pageSize: number): TagPage | undefined {
  let parsed: { name?: unknown; tags?: unknown };
  try {
    parsed = JSON.parse(body.toString("utf8")) as { name?: unknown; tags?: unknown };
  } catch {
    return undefined;
  }
  const all = Array.isArray(parsed.tags) ? parsed.tags.filter((t): t is string => typeof t === "string") : [];
  all.sort();
  const last = query.get("last");
  const start = last === null ? 0 : all.findIndex((tag) => tag > last);
  const rest = start < 0 ? [] : all.slice(start);
  const requested = query.has("n") ? Number.parseInt(query.get("n") ?? "", 10) : Number.NaN;
  const size = Number.isInteger(requested) && requested >= 0 ? Math.min(requested, pageSize) : pageSize;
  const tags = rest.slice(0, size);
  const lastTag = tags.at(-1);
  const next =
    size > 0 && rest.length > tags.length && lastTag !== undefined
      ? `/v2/${name}/tags/list?n=${size}&last=${encodeURIComponent(lastTag)}`
      : undefined;
  return { body: { name: parsed.name ?? name, tags }, next };
}

function failUpstream(res: http.ServerResponse, record: RecordedRequest, err: Error): void {
  if (res.headersSent || res.destroyed) {
    res.destroy(err);
    return;
  }
  const body = JSON.stringify({
    errors: [{ code: "UNAVAILABLE", message: `proxy: upstream failed: ${err.message}` }],
  });
  record.status = 502;
  res.writeHead(502, { "Content-Type": "application/json", "Content-Length": `${Buffer.byteLength(body)}` });
  res.end(body);
}
