/** OCI media types and well-known values (image-spec v1.1). */
export const MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const MEDIA_TYPE_EMPTY = "application/vnd.oci.empty.v1+json";

/** The OCI empty descriptor's content `{}`; every artifact manifest here uses it as config. */
export const EMPTY_BLOB = new TextEncoder().encode("{}");
export const EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/** Manifest types a reader accepts; Distribution needs the OCI type listed even for GET by digest. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPE_OCI_MANIFEST,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_DOCKER_MANIFEST,
  MEDIA_TYPE_DOCKER_LIST,
].join(", ");

/** Registries are only required to take manifests up to 4 MiB; we never read more than that. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Image-layout annotation naming a manifest's tag in index.json. */
export const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";
