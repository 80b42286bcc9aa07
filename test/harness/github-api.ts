/**
 * A fake of the GitHub Packages REST API for one container package, backed live by a real registry.
 * GHCR refuses manifest DELETE (405) and deletes go through this API, so tests can exercise that
 * fallback end to end: versions are the registry's manifests grouped by digest.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { RecordedRequest } from "./proxy.ts";

export interface FakeGitHubApiOptions {
  /** The real registry (not a 405 proxy in front of it). */
  registryUrl: string;
  /** Repository name in the registry, e.g. "acme/infra/state". */
  repository: string;
  owner: string;
  /** Package name as GitHub shows it, e.g. "infra/state". */
  packageName: string;
  ownerKind: "org" | "user";
  /** Token the API accepts in `Authorization: Bearer <token>`. */
  token: string;
  /** Headers for the fake's own calls to the registry, e.g. basic credentials. */
  registryHeaders?: Record<string, string>;
}

export interface FakeGitHubApiHandle {
  url: string;
  /** Every API request in order, with the status it got. */
  readonly requests: RecordedRequest[];
  stop(): Promise<void>;
}

export interface PackageVersion {
  id: number;
  name: string;
  url: string;
  package_html_url: string;
  html_url: string;
  created_at: string;
  updated_at: string;
  metadata: { package_type: "container"; container: { tags: string[] } };
}

interface KnownDigest {
  id: number;
  firstSeen: string;
}

const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");
const DOCS_URL = "https://docs.github.com/rest/packages/packages";

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startFakeGitHubApi(opts: FakeGitHubApiOptions): Promise<FakeGitHubApiHandle> {
  const registry = opts.registryUrl.replace(/\/+$/, "");
  const ownerSegment = opts.ownerKind === "org" ? "orgs" : "users";
  const requests: RecordedRequest[] = [];
  // GitHub version ids are stable per digest; a digest pushed again after deletion is a new version.
  const known = new Map<string, KnownDigest>();
  let nextId = 1_000_001;
  let apiUrl = "";

  const registryFetch = (pathAndQuery: string, init: RequestInit): Promise<Response> =>
    fetch(`${registry}${pathAndQuery}`, {
      ...init,
      headers: { ...opts.registryHeaders, ...(init.headers as Record<string, string> | undefined) },
    });

  const versionUrl = (id: number): string =>
    `${apiUrl}/${ownerSegment}/${opts.owner}/packages/container/${encodeURIComponent(opts.packageName)}/versions/${id}`;

  const listVersions = async (): Promise<PackageVersion[]> => {
    const tags = await listTags();
    const digestOf = await Promise.all(tags.map((tag) => resolve(tag)));
    const tagsByDigest = new Map<string, string[]>();
    tags.forEach((tag, i) => {
      const digest = digestOf[i];
      if (digest === undefined) return; // Deleted between list and HEAD.
      tagsByDigest.set(digest, [...(tagsByDigest.get(digest) ?? []), tag]);
    });
    // Digests seen earlier that lost all their tags are still versions on GitHub ("untagged").
    const untagged = [...known.keys()].filter((digest) => !tagsByDigest.has(digest));
    const stillThere = await Promise.all(untagged.map((digest) => resolve(digest)));
    untagged.forEach((digest, i) => {
      if (stillThere[i] === undefined) known.delete(digest);
      else tagsByDigest.set(digest, []);
    });
    const versions: PackageVersion[] = [];
    for (const [digest, digestTags] of tagsByDigest) {
      let entry = known.get(digest);
      if (entry === undefined) {
        entry = { id: nextId++, firstSeen: new Date().toISOString() };
        known.set(digest, entry);
      }
      versions.push({
        id: entry.id,
        name: digest,
        url: versionUrl(entry.id),
        package_html_url: `https://github.com/${opts.owner}/packages/container/package/${opts.packageName}`,
        html_url: `https://github.com/${opts.owner}/packages/container/${opts.packageName}/${entry.id}`,
        created_at: entry.firstSeen,
        updated_at: entry.firstSeen,
        metadata: { package_type: "container", container: { tags: digestTags.sort() } },
      });
    }
    // GitHub lists the newest version first.
    return versions.sort((a, b) => b.id - a.id);
  };

  const listTags = async (): Promise<string[]> => {
    const res = await registryFetch(`/v2/${opts.repository}/tags/list`, { method: "GET" });
    if (res.status === 404) {
      await res.body?.cancel();
      return [];
    }
    if (res.status !== 200) throw new ApiError(502, `registry tags/list answered ${res.status}`);
    const body = (await res.json()) as { tags?: unknown };
    return Array.isArray(body.tags) ? body.tags.filter((t): t is string => typeof t === "string") : [];
  };

  const resolve = async (reference: string): Promise<string | undefined> => {
    const res = await registryFetch(`/v2/${opts.repository}/manifests/${reference}`, {
      method: "HEAD",
      headers: { Accept: MANIFEST_ACCEPT },
    });
    if (res.status === 404) return undefined;
    const digest = res.headers.get("docker-content-digest");
    if (res.status !== 200 || digest === null) {
      throw new ApiError(502, `registry HEAD manifest answered ${res.status}`);
    }
    return digest;
  };

  const deleteVersion = async (id: number): Promise<void> => {
    const versions = await listVersions();
    const version = versions.find((v) => v.id === id);
    if (version === undefined) throw new ApiError(404, "Not Found");
    const res = await registryFetch(`/v2/${opts.repository}/manifests/${version.name}`, { method: "DELETE" });
    await res.body?.cancel();
    if (res.status === 404) throw new ApiError(404, "Not Found");
    if (res.status !== 202) throw new ApiError(502, `registry DELETE manifest answered ${res.status}`);
    known.delete(version.name);
  };

  const route = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://api.invalid");
    const auth = /^(?:Bearer|token)\s+(.+)$/i.exec(req.headers.authorization ?? "");
    if (auth === null) throw new ApiError(401, "Requires authentication");
    if (auth[1] !== opts.token) throw new ApiError(401, "Bad credentials");

    // Split the raw path so an escaped "/" (%2F) inside the package name stays one segment.
    const segments = url.pathname.split("/").slice(1).map(decodeSegment);
    const [kind, owner, packages, container, pkg, versions, id, ...extra] = segments;
    if (packages !== "packages" || container !== "container" || versions !== "versions" || extra.length > 0) {
      throw new ApiError(404, "Not Found");
    }
    if (kind !== "orgs" && kind !== "users") throw new ApiError(404, "Not Found");
    if (kind !== ownerSegment || owner !== opts.owner) throw new ApiError(404, "Not Found");
    if (pkg !== opts.packageName) throw new ApiError(404, "Package not found.");

    if (id === undefined) {
      if (req.method !== "GET") throw new ApiError(404, "Not Found");
      const perPage = clamp(intParam(url.searchParams, "per_page", 30), 1, 100);
      const page = Math.max(1, intParam(url.searchParams, "page", 1));
      const all = await listVersions();
      const slice = all.slice((page - 1) * perPage, page * perPage);
      const lastPage = Math.max(1, Math.ceil(all.length / perPage));
      const links: string[] = [];
      const pageUrl = (p: number): string => {
        const next = new URL(`${apiUrl}${url.pathname}`);
        next.searchParams.set("per_page", String(perPage));
        next.searchParams.set("page", String(p));
        return next.toString();
      };
      if (page < lastPage)
        links.push(`<${pageUrl(page + 1)}>; rel="next"`, `<${pageUrl(lastPage)}>; rel="last"`);
      if (page > 1)
        links.push(`<${pageUrl(1)}>; rel="first"`, `<${pageUrl(Math.min(page - 1, lastPage))}>; rel="prev"`);
      return sendJson(res, 200, slice, links.length > 0 ? { Link: links.join(", ") } : {});
    }

    const versionId = /^\d+$/.test(id) ? Number(id) : Number.NaN;
    if (!Number.isSafeInteger(versionId)) throw new ApiError(404, "Not Found");
    if (req.method === "GET") {
      const version = (await listVersions()).find((v) => v.id === versionId);
      if (version === undefined) throw new ApiError(404, "Not Found");
      return sendJson(res, 200, version);
    }
    if (req.method === "DELETE") {
      await deleteVersion(versionId);
      res.writeHead(204);
      res.end();
      return;
    }
    throw new ApiError(404, "Not Found");
  };

  const server = http.createServer({ keepAlive: true }, (req, res) => {
    const record: RecordedRequest = {
      method: req.method ?? "",
      path: req.url ?? "",
      status: 0,
      headers: { ...req.headers },
    };
    requests.push(record);
    res.on("finish", () => {
      record.status = res.statusCode;
    });
    req.resume();
    req.on("end", () => {
      route(req, res).catch((err: unknown) => {
        const status = err instanceof ApiError ? err.status : 500;
        const message = err instanceof Error ? err.message : String(err);
        sendJson(res, status, { message, documentation_url: DOCS_URL, status: String(status) });
      });
    });
  });

  await new Promise<void>((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolveListen());
  });
  const { port } = server.address() as AddressInfo;
  apiUrl = `http://127.0.0.1:${port}`;

  let stopping: Promise<void> | undefined;
  return {
    url: apiUrl,
    get requests() {
      return requests;
    },
    stop() {
      stopping ??= new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      });
      return stopping;
    },
  };
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function intParam(params: URLSearchParams, name: string, fallback: number): number {
  const raw = params.get(name);
  if (raw === null || !/^\d+$/.test(raw)) return fallback;
  return Number(raw);
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const out = Buffer.from(JSON.stringify(body));
  res.writeHead(status, {
    ...headers,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": `${out.length}`,
  });
  res.end(out);
}
