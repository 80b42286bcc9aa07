/**
 * The one way settings become a storage Target: a repository string names either a registry
 * repository or an image-layout directory. The service (src/config) and the state core's own
 * `createBackend({ repository })` both come through here.
 */
import { InvalidArgumentError } from "../errors.ts";
import { createLayoutTarget } from "./layout.ts";
import { createRemoteTarget, type RemoteTargetOptions } from "./remote.ts";
import type { Target } from "./target.ts";

/** A repository string with this prefix names an OCI image-layout directory on disk. */
export const LAYOUT_PREFIX = "oci-layout:";

/**
 * `repository` is `host[:port]/path` for a registry or `oci-layout:DIR` for a directory; the other
 * options are the registry's and are not used for a directory.
 */
export type OpenTargetOptions = RemoteTargetOptions;

export function openTarget(options: OpenTargetOptions): Target {
  if (typeof options.repository !== "string" || options.repository.trim() === "") {
    throw new InvalidArgumentError("repository is required (host[:port]/path or oci-layout:DIR)");
  }
  const repository = options.repository.trim();
  if (repository.startsWith(LAYOUT_PREFIX)) {
    const dir = repository.slice(LAYOUT_PREFIX.length);
    if (dir === "") {
      throw new InvalidArgumentError(`repository ${JSON.stringify(repository)} names no directory`);
    }
    return createLayoutTarget({ dir, logger: options.logger });
  }
  return createRemoteTarget({ ...options, repository });
}
