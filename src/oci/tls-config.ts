/**
 * TLS for a remote target. A CA file ADDS to the roots Node trusts by default (bundled, system and
 * NODE_EXTRA_CA_CERTS), so token services and api.github.com keep working next to a private registry.
 * Skipping verification applies to the registry's own host only, never to other hosts (token realm
 * elsewhere, GitHub API, blob redirects to storage).
 */

import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { buildConnector } from "undici";
import { InvalidArgumentError } from "../errors.ts";

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Reads a PEM bundle; every certificate in it must parse. */
export function loadCaFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new InvalidArgumentError(`caFile ${JSON.stringify(file)} cannot be read (${code})`, { cause: err });
  }
  const pems = text.match(PEM_CERT_RE) ?? [];
  if (pems.length === 0) {
    throw new InvalidArgumentError(`caFile ${JSON.stringify(file)} holds no PEM certificate`);
  }
  for (const [i, pem] of pems.entries()) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new InvalidArgumentError(
        `caFile ${JSON.stringify(file)}: certificate ${i + 1} of ${pems.length} is not valid PEM`,
        { cause: err },
      );
    }
  }
  return pems;
}

function bareHostname(hostname: string): string {
  return hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
}

export interface TlsSettings {
  /** Hostname (no port) of the registry, the only host `insecureSkipVerify` applies to. */
  registryHostname: string;
  caFile?: string | undefined;
  insecureSkipVerify?: boolean | undefined;
}

/** An undici connector that applies the target's TLS settings per destination host. */
export function createConnector(settings: TlsSettings): buildConnector.connector {
  const ca =
    settings.caFile === undefined
      ? undefined
      : [...tls.getCACertificates("default"), ...loadCaFile(settings.caFile)];
  const base = ca === undefined ? {} : { ca };
  const verified = buildConnector(base);
  if (!settings.insecureSkipVerify) return verified;
  const unverified = buildConnector({ ...base, rejectUnauthorized: false });
  const registry = bareHostname(settings.registryHostname).toLowerCase();
  return (options, callback) => {
    const target = bareHostname(options.hostname).toLowerCase();
    (target === registry ? unverified : verified)(options, callback);
  };
}
