/**
 * A scripted client that sends exactly what OpenTofu's http backend client sends
 * (internal/backend/remote-state/http/client.go): the configured methods, `Content-Type:
 * application/json` and a base64 `Content-MD5` on every body, HTTP Basic when a username is set,
 * `?ID=<lock id>` on writes only while it holds a lock, and on unlock the LockInfo it locked with, or
 * (in a fresh process, `tofu force-unlock`) a LockInfo whose only non-empty field is the ID.
 */
import { createHash, randomUUID } from "node:crypto";
import http from "node:http";

export interface GoLockInfo {
  ID: string;
  Operation: string;
  Info: string;
  Who: string;
  Version: string;
  Created: string;
  Path: string;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

export interface TofuClientConfig {
  address: string;
  lockAddress?: string;
  unlockAddress?: string;
  updateMethod?: string;
  lockMethod?: string;
  unlockMethod?: string;
  username?: string;
  password?: string;
}

/** statemgr.NewLockInfo plus what the CLI fills in, marshalled in Go's field order. */
export function newLockInfo(operation = "OperationTypeApply", who = "alice@laptop"): GoLockInfo {
  return {
    ID: randomUUID(),
    Operation: operation,
    Info: "",
    Who: who,
    Version: "1.12.6",
    // Go's RFC 3339 with nanoseconds, trailing zeros trimmed, as time.Time marshals.
    Created: new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1456789Z"),
    Path: "",
  };
}

/** What `tofu force-unlock ID` sends since v1.10: zero values except the ID. */
export function forceUnlockBody(id: string): string {
  return JSON.stringify({
    ID: id,
    Operation: "",
    Info: "",
    Who: "",
    Version: "",
    Created: "0001-01-01T00:00:00Z",
    Path: "",
  });
}

export function md5Base64(body: Uint8Array | string): string {
  return createHash("md5").update(body).digest("base64");
}

const agent = new http.Agent({ keepAlive: true });

export function closeClients(): void {
  agent.destroy();
}

/**
 * One HTTP request with the headers the CLI sends on a body; `path` is sent byte for byte (no URL
 * normalisation), so tests can send bad escapes. `headers` replace those defaults; null drops one.
 */
export function rawRequest(
  url: string,
  method: string,
  body?: Uint8Array | string,
  headers: Record<string, string | null> = {},
): Promise<RawResponse> {
  const { host, port, pathname, search } = splitUrl(url);
  const all: Record<string, string> = {};
  if (body !== undefined && body.length > 0) {
    // Go sends a []byte body with its Content-Length, whatever the method (Node would not, for DELETE).
    all["content-length"] = String(Buffer.byteLength(body));
    all["content-type"] = "application/json";
    all["content-md5"] = md5Base64(body);
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value === null) delete all[name];
    else all[name] = value;
  }
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path: pathname + search, headers: all, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, text: buf.toString("utf8") });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Splits without normalising: `new URL()` would re-encode or resolve parts of the path. */
function splitUrl(url: string) {
  const m = /^http:\/\/([^/:]+):(\d+)(\/[^?]*)(\?.*)?$/.exec(url);
  if (!m) throw new Error(`test client handles http://host:port/path only, got ${url}`);
  return { host: m[1], port: Number(m[2]), pathname: m[3] ?? "/", search: m[4] ?? "" };
}

/** One CLI process's http backend client: it remembers the lock it took, as OpenTofu's does. */
export class TofuHttpClient {
  readonly cfg: Required<Omit<TofuClientConfig, "username" | "password">> & TofuClientConfig;
  lockId = "";
  jsonLockInfo: string | null = null;

  constructor(cfg: TofuClientConfig) {
    this.cfg = {
      updateMethod: "POST",
      lockMethod: "LOCK",
      unlockMethod: "UNLOCK",
      lockAddress: `${cfg.address}/lock`,
      unlockAddress: `${cfg.address}/lock`,
      ...cfg,
    };
  }

  #request(method: string, url: string, body?: string): Promise<RawResponse> {
    const headers: Record<string, string> = {};
    if (this.cfg.username) {
      headers.authorization = `Basic ${Buffer.from(`${this.cfg.username}:${this.cfg.password ?? ""}`).toString("base64")}`;
    }
    return rawRequest(url, method, body, headers);
  }

  get(): Promise<RawResponse> {
    return this.#request("GET", this.cfg.address);
  }

  /** Put: `?ID=` merged into the address's query only while this client holds a lock. */
  put(state: string): Promise<RawResponse> {
    let url = this.cfg.address;
    if (this.lockId !== "") {
      const [base, query = ""] = url.split("?", 2) as [string, string?];
      const params = new URLSearchParams(query);
      params.set("ID", this.lockId);
      url = `${base}?${params.toString()}`;
    }
    return this.#request(this.cfg.updateMethod, url, state);
  }

  delete(): Promise<RawResponse> {
    return this.#request("DELETE", this.cfg.address);
  }

  /** Lock: clears the remembered ID first and keeps the new one only on 200. */
  async lock(info: GoLockInfo): Promise<RawResponse> {
    this.lockId = "";
    const json = JSON.stringify(info);
    const res = await this.#request(this.cfg.lockMethod, this.cfg.lockAddress, json);
    if (res.status === 200) {
      this.lockId = info.ID;
      this.jsonLockInfo = json;
    }
    return res;
  }

  /** Unlock: the LockInfo it locked with, or a zero LockInfo with just the ID (force-unlock). */
  unlock(id: string): Promise<RawResponse> {
    let body: string;
    if (this.jsonLockInfo !== null) {
      const info = JSON.parse(this.jsonLockInfo) as GoLockInfo;
      if (info.ID !== id) throw new Error(`lock id ${JSON.stringify(id)} does not match existing lock`);
      body = JSON.stringify(info);
    } else {
      body = forceUnlockBody(id);
    }
    return this.#request(this.cfg.unlockMethod, this.cfg.unlockAddress, body);
  }
}

/** A Terraform state document as the CLI writes it. */
export function stateDoc(serial: number, lineage: string, resources: unknown[] = []): string {
  return `${JSON.stringify({ version: 4, terraform_version: "1.12.6", serial, lineage, outputs: {}, resources, check_results: null }, null, 2)}\n`;
}
