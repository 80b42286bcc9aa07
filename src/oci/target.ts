/**
 * Storage target: one OCI repository, reached over the distribution API or as an image-layout
 * directory. Knows OCI, nothing about Terraform.
 */
import type { CallOptions } from "../call-options.ts";

export type { CallOptions };

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  /** Inline content (base64), as oras-go writes for the empty config. */
  data?: string;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export type ManifestFetch =
  | { kind: "manifest"; descriptor: Descriptor; bytes: Uint8Array }
  /** Answer to a conditional fetch whose digest still matches. */
  | { kind: "unchanged"; digest: string };

export interface BlobSource {
  /** Whole content in memory (digest computed up front: single-request upload where possible). */
  bytes?: Uint8Array;
  /** Streamed content (chunked upload, digest computed on the way). */
  stream?: AsyncIterable<Uint8Array>;
}

export interface PushBlobOptions extends CallOptions {
  /** Refuse (and cancel the upload) once the content passes this many bytes. */
  maxSize?: number | undefined;
  /** Called with the byte count when `maxSize` is passed; returns the error to throw. */
  onTooLarge?: ((limit: number) => Error) | undefined;
}

export interface Target {
  readonly kind: "remote" | "layout";
  /** Human-readable location, safe to log (never contains credentials). */
  readonly location: string;

  /** Checks the target is reachable (registry `/v2/` ping, layout directory readable). */
  ping(opts?: CallOptions): Promise<void>;

  blobExists(digest: string, opts?: CallOptions): Promise<boolean>;
  /**
   * Streams a blob, verified against the descriptor's digest and size: the iterable throws
   * DataLossError at the end when they do not match. Throws NotFoundError if absent.
   */
  fetchBlob(
    desc: Pick<Descriptor, "digest" | "size">,
    opts?: CallOptions,
  ): Promise<AsyncIterable<Uint8Array>>;
  /** Stores a blob and returns its descriptor (digest and size as stored). */
  pushBlob(source: BlobSource, mediaType: string, opts?: PushBlobOptions): Promise<Descriptor>;

  /** HEAD of a tag or digest: the descriptor, or null when it does not exist. */
  resolve(reference: string, opts?: CallOptions): Promise<Descriptor | null>;
  /**
   * GET of a tag or digest (bytes verified against the digest): null when it does not exist,
   * `unchanged` when `ifNoneMatch` is the current digest.
   */
  fetchManifest(
    reference: string,
    opts?: CallOptions & { ifNoneMatch?: string | undefined },
  ): Promise<ManifestFetch | null>;
  /** PUT of a manifest under a tag or its digest; returns its descriptor. */
  pushManifest(
    reference: string,
    bytes: Uint8Array,
    mediaType: string,
    opts?: CallOptions,
  ): Promise<Descriptor>;
  /**
   * Deletes a manifest by digest (on registries this removes every tag pointing at it).
   * NotFoundError if it is already gone; UnimplementedError if the store refuses deletes.
   * `tagHint` names one of its tags, for fallbacks that work by tag (GitHub Packages API).
   */
  deleteManifest(digest: string, opts?: CallOptions & { tagHint?: string | undefined }): Promise<void>;
  /** Removes only a tag. UnimplementedError where the store cannot untag (Distribution 2.8). */
  deleteTag(tag: string, opts?: CallOptions): Promise<void>;
  /** Every tag in the repository, all pages followed. Empty when the repository does not exist. */
  listTags(opts?: CallOptions): Promise<string[]>;

  close(): Promise<void>;
}
