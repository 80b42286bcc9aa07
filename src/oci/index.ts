/**
 * oci-tfstate/oci: storage targets for one OCI repository (knows OCI, nothing about Terraform).
 */
export {
  createLayoutTarget,
  type LayoutGcResult,
  type LayoutGcSettings,
  type LayoutGcStats,
  type LayoutTarget,
  type LayoutTargetOptions,
} from "./layout.ts";
export { LAYOUT_PREFIX, type OpenTargetOptions, openTarget } from "./open-target.ts";
export {
  type Credential,
  type CredentialFunc,
  type CredentialsOption,
  createRemoteTarget,
  parseRepositoryReference,
  RegistryResponseError,
  type RemoteTarget,
  type RemoteTargetOptions,
  type RetryOptions,
  registryErrorInfo,
} from "./remote.ts";
export type { BlobSource, CallOptions, Descriptor, Manifest, ManifestFetch, Target } from "./target.ts";
