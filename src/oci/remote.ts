/**
 * The remote Target: one repository in an OCI distribution registry, over undici. Every operation
 * costs the fewest requests the registry allows (no HEAD before GET, tokens cached per scope,
 * credentials sent up front once the scheme is known), every read is verified against its digest,
 * and every registry answer maps to a domain error that keeps the status and OCI error codes.
 */
import packageJson from "../../package.json" with { type: "json" };
import {
  DataLossError,
  InvalidArgumentError,
  isTfstateError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  UnimplementedError,
} from "../errors.ts";
import { BlobUploader } from "./blob-upload.ts";
import { CallContext } from "./call-context.ts";
import { type CredentialsOption, hasSecret, resolveCredentials } from "./credentials.ts";
import { assertDigest, isDigest, sha256Digest, verifyStream } from "./digest.ts";
import { DEFAULT_GITHUB_API_URL, GitHubPackages } from "./github-packages.ts";
import {
  discard,
  HttpClient,
  type HttpResponse,
  header,
  headerValues,
  networkError,
  readResponseBody,
} from "./http-client.ts";
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from "./media-types.ts";
import { createRateLimiter } from "./rate-limiter.ts";
import { parseRepositoryReference } from "./reference.ts";
import { RegistryAuth } from "./registry-auth.ts";
import { RegistryClient } from "./registry-client.ts";
import { errorFromResponse, readErrorBody, registryErrorInfo } from "./registry-error.ts";
import { type RetryOptions, resolveRetryOptions, TransientError } from "./retry.ts";
import type {
  BlobSource,
  CallOptions,
  Descriptor,
  ManifestFetch,
  PushBlobOptions,
  Target,
} from "./target.ts";

export type { Credential, CredentialFunc, CredentialsOption } from "./credentials.ts";
export { parseRepositoryReference } from "./reference.ts";
export { RegistryResponseError, registryErrorInfo } from "./registry-error.ts";
export type { RetryOptions } from "./retry.ts";

export interface RemoteTargetLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
  debug?(msg: string, fields?: Record<string, unknown>): void;
}

export interface RemoteTargetOptions {
  /** `host[:port]/path`, no tag or digest. */
  repository: string;
  /** Speak http:// instead of https://. */
  plainHTTP?: boolean | undefined;
  /** TLS without certificate verification, for the registry host only. */
  insecureSkipVerify?: boolean | undefined;
  /** PEM bundle trusted in addition to the system roots. */
  caFile?: string | undefined;
  credentials?: CredentialsOption | undefined;
  /** Default `oci-tfstate/<version>`. */
  userAgent?: string | undefined;
  /** Defaults: 3 attempts, 1 s doubling to at most 30 s. */
  retry?: Partial<RetryOptions> | undefined;
  /** Requests per second for every HTTP request of this target (0 or unset = unlimited). */
  rateLimit?: number | undefined;
  /** Token bucket size (0 or unset = 1). */
  rateBurst?: number | undefined;
  /**
   * GitHub REST API base for deletes on ghcr.io (which refuses registry DELETEs). Used when the host
   * is ghcr.io (default https://api.github.com) or when set explicitly.
   */
  githubApiUrl?: string | undefined;
  /** Uploads larger than this go up in PATCH chunks of this size. Default 8 MiB. */
  chunkSize?: number | undefined;
  logger?: RemoteTargetLogger | undefined;
}

export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;
export const DEFAULT_USER_AGENT = `oci-tfstate/${packageJson.version}`;

const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const MAX_TAG_LIST_BYTES = 64 * 1024 * 1024;
const TAGS_PAGE_SIZE = 1000;

function checkReference(reference: string): string {
  if (isDigest(reference) || TAG_RE.test(reference)) return reference;
  throw new InvalidArgumentError(
    `invalid manifest reference ${JSON.stringify(reference)}: expected a tag ` +
      "([A-Za-z0-9_][A-Za-z0-9._-]{0,127}) or a digest (sha256:<64 hex>)",
  );
}

function checkTag(tag: string): string {
  if (TAG_RE.test(tag)) return tag;
  throw new InvalidArgumentError(
    `invalid tag ${JSON.stringify(tag)}: expected [A-Za-z0-9_][A-Za-z0-9._-]{0,127}`,
  );
}

/** Content-Type without parameters, or the manifest's own `mediaType` when the header says nothing useful. */
function manifestMediaType(contentType: string | undefined, bytes?: Uint8Array): string {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type !== "" && type !== "application/json" && type !== "application/octet-stream") return type;
  if (bytes !== undefined) {
    try {
      const mediaType = (JSON.parse(Buffer.from(bytes).toString("utf8")) as { mediaType?: unknown })
        .mediaType;
      if (typeof mediaType === "string" && mediaType !== "") return mediaType;
    } catch {
      // Not JSON: the caller's parser reports that.
    }
  }
  return type;
}

/** The `rel="next"` target of a Link header, resolved against the request URL. */
export function nextLink(values: readonly string[], base: URL): URL | undefined {
  for (const value of values) {
    for (const match of value.matchAll(/<([^>]*)>\s*((?:;\s*[^;,]*)*)/g)) {
      const params = match[2] ?? "";
      if (/;\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?\s*(;|$)/i.test(params)) {
        return new URL(match[1] ?? "", base);
      }
    }
  }
  return undefined;
}

function sha256Header(res: HttpResponse): string | undefined {
  const value = header(res, "docker-content-digest")?.trim();
  return value?.startsWith("sha256:") ? value : undefined;
}

export class RemoteTarget implements Target {
  readonly kind = "remote" as const;
  readonly location: string;
  readonly host: string;
  readonly repository: string;
  private readonly http: HttpClient;
  private readonly auth: RegistryAuth;
  private readonly client: RegistryClient;
  private readonly uploader: BlobUploader;
  private readonly githubApiUrl: string | undefined;
  private readonly retry: RetryOptions;
  private github: GitHubPackages | undefined;
  /** Set once the registry answered a DELETE with 405 and the GitHub Packages API took over. */
  private registryRefusesDeletes = false;
  private closed: Promise<void> | undefined;

  constructor(opts: RemoteTargetOptions) {
    const { host, repository } = parseRepositoryReference(opts.repository);
    this.host = host;
    this.repository = repository;
    this.location = `${host}/${repository}`;
    const origin = new URL(`${opts.plainHTTP ? "http" : "https"}://${host}`);
    this.retry = resolveRetryOptions(opts.retry);
    const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
      throw new InvalidArgumentError(`chunkSize must be a positive whole number of bytes, got ${chunkSize}`);
    }
    if (opts.githubApiUrl !== undefined) {
      let api: URL | undefined;
      try {
        api = new URL(opts.githubApiUrl);
      } catch {
        api = undefined;
      }
      if (api === undefined || (api.protocol !== "https:" && api.protocol !== "http:")) {
        throw new InvalidArgumentError(
          `githubApiUrl ${JSON.stringify(opts.githubApiUrl)} is not an http(s) URL`,
        );
      }
    }
    this.githubApiUrl = opts.githubApiUrl ?? (host === "ghcr.io" ? DEFAULT_GITHUB_API_URL : undefined);

    this.http = new HttpClient({
      userAgent: opts.userAgent ?? DEFAULT_USER_AGENT,
      rateLimiter: createRateLimiter(opts.rateLimit, opts.rateBurst),
      registryHostname: origin.hostname,
      caFile: opts.caFile,
      insecureSkipVerify: opts.insecureSkipVerify,
    });
    if (opts.insecureSkipVerify && !opts.plainHTTP) {
      opts.logger?.warn("TLS certificate verification is off for this registry", { host });
    }
    this.auth = new RegistryAuth({
      host,
      credentials: resolveCredentials(opts.credentials, opts.logger),
      http: this.http,
    });
    this.client = new RegistryClient({
      origin,
      repository,
      http: this.http,
      auth: this.auth,
      retry: this.retry,
      logger: opts.logger,
    });
    this.uploader = new BlobUploader({ client: this.client, chunkSize, logger: opts.logger });
  }

  private context(opts: CallOptions | undefined, what: string): CallContext {
    if (this.closed !== undefined)
      throw new UnavailableError(`${what} in ${this.location}: the target is closed`);
    return new CallContext(opts, `${what} in ${this.location}`);
  }

  async ping(opts?: CallOptions): Promise<void> {
    const call = this.context(opts, "ping registry");
    try {
      await this.client.retrying(async () => {
        const res = await this.client.exchange(
          { method: "GET", url: new URL("/v2/", this.client.origin), scope: "" },
          call,
        );
        if (res.status === 200) return discard(res);
        if (res.status === 404) {
          await discard(res);
          throw new UnavailableError(
            `${call.what}: ${this.host} is not an OCI registry (GET /v2/ answered 404)`,
          );
        }
        return this.client.fail(res, "GET", call);
      }, call);
    } catch (err) {
      // Reachable, and asking for credentials nobody configured: reads may still work anonymously.
      if (err instanceof UnauthenticatedError && !hasSecret(await this.auth.credential(call))) return;
      throw err;
    }
  }

  async blobExists(digest: string, opts?: CallOptions): Promise<boolean> {
    assertDigest(digest);
    const call = this.context(opts, `check blob ${digest}`);
    return this.client.retrying(async () => {
      const res = await this.client.exchange(
        { method: "HEAD", url: this.client.repoUrl(`blobs/${digest}`) },
        call,
      );
      if (res.status === 200) {
        await discard(res);
        return true;
      }
      if (res.status === 404) {
        await discard(res);
        return false;
      }
      return this.client.fail(res, "HEAD", call);
    }, call);
  }

  async fetchBlob(
    desc: Pick<Descriptor, "digest" | "size">,
    opts?: CallOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    assertDigest(desc.digest);
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
      throw new InvalidArgumentError(`invalid blob size ${desc.size} for ${desc.digest}`);
    }
    const call = this.context(opts, `fetch blob ${desc.digest}`);
    const res = await this.client.request(
      { method: "GET", url: this.client.repoUrl(`blobs/${desc.digest}`) },
      call,
    );
    if (res.status !== 200) await this.client.fail(res, "GET", call);
    const announced = Number(header(res, "content-length"));
    if (
      Number.isFinite(announced) &&
      header(res, "content-length") !== undefined &&
      announced !== desc.size
    ) {
      await discard(res);
      throw new DataLossError(
        `${call.what}: registry ${this.host} announces ${announced} bytes, the descriptor names ${desc.size}`,
      );
    }
    return verifyStream(guardBody(res, call), desc, `blob ${desc.digest} from ${this.location}`);
  }

  async pushBlob(source: BlobSource, mediaType: string, opts?: PushBlobOptions): Promise<Descriptor> {
    const call = this.context(opts, "push blob");
    return this.uploader.push(source, mediaType, opts ?? {}, call);
  }

  async resolve(reference: string, opts?: CallOptions): Promise<Descriptor | null> {
    const ref = checkReference(reference);
    const call = this.context(opts, `resolve manifest ${ref}`);
    const found = await this.client.retrying(async () => {
      const res = await this.client.exchange(
        {
          method: "HEAD",
          url: this.client.repoUrl(`manifests/${ref}`),
          headers: { accept: MANIFEST_ACCEPT },
        },
        call,
      );
      if (res.status === 404) {
        await discard(res);
        return null;
      }
      if (res.status !== 200) return this.client.fail(res, "HEAD", call);
      await discard(res);
      const stated = sha256Header(res);
      if (isDigest(ref) && stated !== undefined && stated !== ref) {
        throw new DataLossError(`${call.what}: registry ${this.host} answered for ${stated}, not ${ref}`);
      }
      const digest = isDigest(ref) ? ref : stated;
      const size = Number(header(res, "content-length"));
      const mediaType = manifestMediaType(header(res, "content-type"));
      if (digest === undefined || !Number.isSafeInteger(size) || mediaType === "")
        return "incomplete" as const;
      return { mediaType, digest, size };
    }, call);
    if (found !== "incomplete") return found;
    // The registry did not say enough in its HEAD answer: read the manifest itself.
    const fetched = await this.fetchManifest(ref, opts);
    return fetched?.kind === "manifest" ? fetched.descriptor : null;
  }

  async fetchManifest(
    reference: string,
    opts?: CallOptions & { ifNoneMatch?: string | undefined },
  ): Promise<ManifestFetch | null> {
    const ref = checkReference(reference);
    const ifNoneMatch = opts?.ifNoneMatch;
    if (ifNoneMatch !== undefined) assertDigest(ifNoneMatch);
    const call = this.context(opts, `fetch manifest ${ref}`);
    const headers: Record<string, string> = { accept: MANIFEST_ACCEPT };
    if (ifNoneMatch !== undefined) headers["if-none-match"] = `"${ifNoneMatch}"`;
    return this.client.retrying(async (): Promise<ManifestFetch | null> => {
      const res = await this.client.exchange(
        { method: "GET", url: this.client.repoUrl(`manifests/${ref}`), headers },
        call,
      );
      if (res.status === 304 && ifNoneMatch !== undefined) {
        await discard(res);
        return { kind: "unchanged", digest: ifNoneMatch };
      }
      if (res.status === 404) {
        await readErrorBody(res.body);
        return null;
      }
      if (res.status !== 200) return this.client.fail(res, "GET", call);
      const bytes = await readResponseBody(
        res,
        MAX_MANIFEST_BYTES,
        call,
        () =>
          new ResourceExhaustedError(
            `${call.what}: the manifest is larger than ${MAX_MANIFEST_BYTES} bytes`,
            MAX_MANIFEST_BYTES,
          ),
      );
      const digest = sha256Digest(bytes);
      const expected = isDigest(ref) ? ref : sha256Header(res);
      if (expected !== undefined && expected !== digest) {
        throw new DataLossError(
          `${call.what}: registry ${this.host} sent content with digest ${digest} for ${ref}, expected ${expected}`,
        );
      }
      if (ifNoneMatch === digest) return { kind: "unchanged", digest };
      const mediaType = manifestMediaType(header(res, "content-type"), bytes);
      return { kind: "manifest", descriptor: { mediaType, digest, size: bytes.byteLength }, bytes };
    }, call);
  }

  async pushManifest(
    reference: string,
    bytes: Uint8Array,
    mediaType: string,
    opts?: CallOptions,
  ): Promise<Descriptor> {
    const ref = checkReference(reference);
    const call = this.context(opts, `push manifest ${ref}`);
    if (bytes.byteLength > MAX_MANIFEST_BYTES) {
      throw new ResourceExhaustedError(
        `${call.what}: the manifest is ${bytes.byteLength} bytes; registries need only accept ${MAX_MANIFEST_BYTES}`,
        MAX_MANIFEST_BYTES,
      );
    }
    if (mediaType === "") throw new InvalidArgumentError(`${call.what}: a media type is required`);
    const digest = sha256Digest(bytes);
    if (isDigest(ref) && ref !== digest) {
      throw new InvalidArgumentError(`${call.what}: the manifest's digest is ${digest}, not ${ref}`);
    }
    await this.client.retrying(async () => {
      const res = await this.client.exchange(
        {
          method: "PUT",
          url: this.client.repoUrl(`manifests/${ref}`),
          headers: { "content-type": mediaType },
          body: bytes,
        },
        call,
      );
      if (res.status < 200 || res.status > 299) return this.client.fail(res, "PUT", call);
      await discard(res);
      const stored = sha256Header(res);
      if (stored !== undefined && stored !== digest) {
        throw new DataLossError(`${call.what}: registry ${this.host} stored ${stored}, we sent ${digest}`);
      }
    }, call);
    return { mediaType, digest, size: bytes.byteLength };
  }

  async deleteManifest(digest: string, opts?: CallOptions & { tagHint?: string | undefined }): Promise<void> {
    assertDigest(digest);
    const tagHint = opts?.tagHint;
    if (tagHint !== undefined) checkTag(tagHint);
    const call = this.context(opts, `delete manifest ${digest}`);
    // Known to refuse (GHCR): go straight to the API rather than spend a request on another 405.
    if (this.registryRefusesDeletes) return this.githubPackages().deleteManifest(digest, tagHint, call);
    try {
      await this.client.retrying(async () => {
        const res = await this.client.exchange(
          { method: "DELETE", url: this.client.repoUrl(`manifests/${digest}`) },
          call,
        );
        if (res.status >= 200 && res.status <= 299) return discard(res);
        return this.client.fail(res, "DELETE", call);
      }, call);
    } catch (err) {
      if (!(err instanceof UnimplementedError)) throw err;
      if (this.githubApiUrl === undefined) {
        throw new UnimplementedError(
          `${call.what}: registry ${this.host} refuses deletes` +
            ` (status ${registryErrorInfo(err)?.status ?? "405"}); enable deletes on the registry`,
          { cause: err.cause },
        );
      }
      this.registryRefusesDeletes = true;
      await this.githubPackages().deleteManifest(digest, tagHint, call);
    }
  }

  private githubPackages(): GitHubPackages {
    this.github ??= new GitHubPackages({
      apiUrl: this.githubApiUrl ?? DEFAULT_GITHUB_API_URL,
      registryHost: this.host,
      repository: this.repository,
      http: this.http,
      credential: (call) => this.auth.credential(call),
      retry: this.retry,
    });
    return this.github;
  }

  async deleteTag(tag: string, opts?: CallOptions): Promise<void> {
    checkTag(tag);
    const call = this.context(opts, `delete tag ${tag}`);
    await this.client.retrying(async () => {
      const res = await this.client.exchange(
        { method: "DELETE", url: this.client.repoUrl(`manifests/${tag}`) },
        call,
      );
      if (res.status >= 200 && res.status <= 299) return discard(res);
      if (res.status === 400 || res.status === 405) {
        const body = await readErrorBody(res.body);
        const cause = errorFromResponse(res.status, body, {
          method: "DELETE",
          host: this.host,
          what: call.what,
        }).cause;
        throw new UnimplementedError(
          `${call.what}: registry ${this.host} cannot remove a tag on its own (status ${res.status}); ` +
            "only deleting the manifest by digest, which removes all its tags, may be possible",
          { cause },
        );
      }
      return this.client.fail(res, "DELETE", call);
    }, call);
  }

  async listTags(opts?: CallOptions): Promise<string[]> {
    const call = this.context(opts, "list tags");
    const tags: string[] = [];
    const seen = new Set<string>();
    let url: URL | undefined = this.client.repoUrl(`tags/list?n=${TAGS_PAGE_SIZE}`);
    while (url !== undefined) {
      if (seen.has(url.href)) {
        throw new UnavailableError(
          `${call.what}: registry ${this.host} sent a tag list page link that loops`,
        );
      }
      seen.add(url.href);
      const pageUrl: URL = url;
      const page = await this.client.retrying(async () => {
        const res = await this.client.exchange({ method: "GET", url: pageUrl }, call);
        if (res.status === 404) {
          const err = errorFromResponse(404, await readErrorBody(res.body), {
            method: "GET",
            host: this.host,
            what: call.what,
          });
          const codes = registryErrorInfo(err)?.registryCodes ?? [];
          // An unknown repository simply has no tags yet.
          if (codes.length === 0 || codes.includes("NAME_UNKNOWN"))
            return { tags: [] as string[], next: undefined };
          throw err;
        }
        if (res.status !== 200) return this.client.fail(res, "GET", call);
        const body = await readResponseBody(
          res,
          MAX_TAG_LIST_BYTES,
          call,
          () =>
            new UnavailableError(`${call.what}: a tag list page was larger than ${MAX_TAG_LIST_BYTES} bytes`),
        );
        let parsed: { tags?: unknown };
        try {
          parsed = JSON.parse(body.toString("utf8")) as { tags?: unknown };
        } catch (err) {
          throw new UnavailableError(`${call.what}: registry ${this.host} sent a tag list that is not JSON`, {
            cause: err,
          });
        }
        const pageTags = Array.isArray(parsed.tags) ? parsed.tags.filter((t) => typeof t === "string") : [];
        return { tags: pageTags as string[], next: nextLink(headerValues(res, "link"), res.url) };
      }, call);
      tags.push(...page.tags);
      url = page.next;
    }
    return tags;
  }

  close(): Promise<void> {
    this.closed ??= this.http.close();
    return this.closed;
  }
}

/** Passes a response body through, turning network failures and aborts into domain errors. */
async function* guardBody(res: HttpResponse, call: CallContext): AsyncGenerator<Uint8Array> {
  let finished = false;
  try {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) yield chunk;
    finished = true;
  } catch (err) {
    if (call.done) throw call.abortError();
    if (isTfstateError(err) && !(err instanceof TransientError)) throw err;
    const failure = networkError(err, res.method, res.url, call);
    throw new UnavailableError(`${failure.message}; the download was cut off`, { cause: err });
  } finally {
    // A consumer that stops early must not leave the connection half-read.
    if (!finished) res.body.destroy();
  }
}

export function createRemoteTarget(opts: RemoteTargetOptions): RemoteTarget {
  return new RemoteTarget(opts);
}
