import type { Logger } from "../log.ts";
import { openTarget } from "../oci/open-target.ts";
import type { Target } from "../oci/target.ts";
import type { BackendConfig } from "../oras/index.ts";
import type { Config } from "./config.ts";

/**
 * The storage target the Config names (a registry repository or a layout directory), built once
 * here and handed to the state core: the Config's settings go straight to the storage layer's.
 */
export function storageTarget(config: Config, logger: Logger, userAgent: string): Target {
  return openTarget({
    repository: config.repository,
    plainHTTP: config.plainHTTP,
    insecureSkipVerify: config.insecure,
    caFile: config.caFile || undefined,
    // Without explicit credentials, Docker's config.json (and its helpers), as docker and oras do.
    credentials:
      config.registryUsername !== undefined && config.registryPassword !== undefined
        ? { username: config.registryUsername, password: config.registryPassword }
        : { dockerConfig: undefined },
    userAgent,
    retry: {
      maxAttempts: config.retry.maxAttempts,
      initialBackoffMs: config.retry.initialBackoffMs,
      maxBackoffMs: config.retry.maxBackoffMs,
    },
    rateLimit: config.rateLimit,
    rateBurst: config.rateBurst,
    logger,
  });
}

/** The state core's own settings from the Config, on the target built from it. */
export function backendConfig(config: Config, target: Target, logger: Logger): BackendConfig {
  return {
    target,
    compression: config.compression,
    lockTTL: config.lockTTLMs,
    maxVersions: config.maxVersions,
    maxStateSize: config.maxStateSize,
    logger,
  };
}
