/**
 * The on-registry vocabulary shared with ghoten-oras-backend (docs/oras-wire-format.md §1–2).
 * Changing any value here breaks interoperability with repositories ghoten reads and writes.
 */
export const ARTIFACT_TYPE_STATE = "application/vnd.terraform.state.v1";
export const ARTIFACT_TYPE_LOCK = "application/vnd.terraform.lock.v1";

export const MEDIA_TYPE_STATE = "application/vnd.terraform.statefile.v1";
export const MEDIA_TYPE_STATE_GZIP = "application/vnd.terraform.statefile.v1+gzip";

export const ANNOTATION_WORKSPACE = "org.terraform.workspace";
export const ANNOTATION_UPDATED_AT = "org.terraform.state.updated_at";
export const ANNOTATION_VERSION = "org.terraform.state.version";
export const ANNOTATION_LOCK_ID = "org.terraform.lock.id";
export const ANNOTATION_LOCK_INFO = "org.terraform.lock.info";
export const ANNOTATION_LOCK_GENERATION = "org.terraform.lock.generation";
export const ANNOTATION_CREATED = "org.opencontainers.image.created";

export const DEFAULT_WORKSPACE = "default";
/** ghoten's default when max_state_size is 0. */
export const DEFAULT_MAX_STATE_SIZE = 256 * 1024 * 1024;
/** Version numbers ghoten accepts in a version tag. */
export const MAX_VERSION_NUMBER = 2 ** 30;
