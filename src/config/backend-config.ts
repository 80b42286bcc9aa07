import type { Logger } from "../log.ts";
import type { BackendConfig } from "../oras/index.ts";
import type { Config } from "./config.ts";

/** The state core's settings from the service's Config. */
export function backendConfig(config: Config, logger: Logger, userAgent: string): BackendConfig {
  return {
    repository: config.repository,
    plainHTTP: config.plainHTTP,
    insecure: config.insecure,
    ...(config.caFile !== undefined ? { caFile: config.caFile } : {}),
    compression: config.compression,
    lockTTL: config.lockTTLMs,
    maxVersions: config.maxVersions,
    maxStateSize: config.maxStateSize,
    rateLimit: config.rateLimit,
    rateBurst: config.rateBurst,
    retry: {
      maxAttempts: config.retry.maxAttempts,
      initialBackoff: config.retry.initialBackoffMs,
      maxBackoff: config.retry.maxBackoffMs,
    },
    ...(config.registryUsername !== undefined && config.registryPassword !== undefined
      ? { username: config.registryUsername, password: config.registryPassword }
      : {}),
    userAgent,
    logger,
  };
}
