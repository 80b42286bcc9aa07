/**
 * Parsing of the `host[:port]/path` repository references the remote target is configured with.
 * The grammar is the distribution reference grammar, minus the Docker Hub shortcuts: the first
 * component is always the registry host, and a tag or digest is never part of a repository.
 */
import { InvalidArgumentError } from "../errors.ts";

export interface RepositoryReference {
  /** Registry host, with the port when one was given ("ghcr.io", "127.0.0.1:5000", "[::1]:5000"). */
  host: string;
  /** Repository path inside the registry ("org/tfstate"). */
  repository: string;
}

const HOST_LABEL_RE = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6_RE = /^\[[0-9a-fA-F:.]+\]$/;
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DIGEST_SUFFIX_RE = /@[a-z0-9]+(?:[+._-][a-z0-9]+)*:/i;
const MAX_NAME_LENGTH = 255;

function invalid(ref: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid repository reference ${JSON.stringify(ref)}: ${why}`);
}

export function parseRepositoryReference(ref: string): RepositoryReference {
  if (ref.trim() === "") throw invalid(ref, "it is empty; expected host[:port]/path");
  if (ref !== ref.trim()) throw invalid(ref, "it has leading or trailing whitespace");
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) {
    throw invalid(ref, "drop the URL scheme; use host[:port]/path (plain HTTP is a separate setting)");
  }
  if (DIGEST_SUFFIX_RE.test(ref)) {
    throw invalid(ref, "a digest (@sha256:...) is not allowed; give the repository only");
  }
  const slash = ref.indexOf("/");
  if (slash < 0) throw invalid(ref, "the repository path is missing; expected host[:port]/path");
  const hostPart = ref.slice(0, slash);
  const path = ref.slice(slash + 1);

  const host = parseHost(ref, hostPart);
  if (path === "") throw invalid(ref, "the repository path is missing; expected host[:port]/path");

  const components = path.split("/");
  for (const [i, component] of components.entries()) {
    const last = i === components.length - 1;
    if (component === "") throw invalid(ref, "the path has an empty component (a doubled or trailing '/')");
    if (last && component.includes(":")) {
      throw invalid(ref, `a tag (":${component.split(":").pop()}") is not allowed; give the repository only`);
    }
    if (/[A-Z]/.test(component)) {
      throw invalid(ref, `path component ${JSON.stringify(component)} has uppercase letters; use lowercase`);
    }
    if (!PATH_COMPONENT_RE.test(component)) {
      throw invalid(
        ref,
        `path component ${JSON.stringify(component)} may only hold a-z, 0-9 and single '.', '_', '__' ` +
          "or runs of '-' between them",
      );
    }
  }
  if (path.length > MAX_NAME_LENGTH) {
    throw invalid(ref, `the repository path is ${path.length} characters; the limit is ${MAX_NAME_LENGTH}`);
  }
  return { host, repository: path };
}

function parseHost(ref: string, hostPart: string): string {
  if (hostPart === "") throw invalid(ref, "the registry host is missing; expected host[:port]/path");
  let name = hostPart;
  let port: string | undefined;
  if (hostPart.startsWith("[")) {
    const close = hostPart.indexOf("]");
    if (close < 0) throw invalid(ref, "the IPv6 host has no closing ']'");
    name = hostPart.slice(0, close + 1);
    const rest = hostPart.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) throw invalid(ref, `unexpected ${JSON.stringify(rest)} after the IPv6 host`);
      port = rest.slice(1);
    }
    if (!IPV6_RE.test(name)) throw invalid(ref, `${JSON.stringify(name)} is not a valid IPv6 host`);
  } else {
    const colon = hostPart.indexOf(":");
    if (colon >= 0) {
      name = hostPart.slice(0, colon);
      port = hostPart.slice(colon + 1);
    }
    if (name === "") throw invalid(ref, "the registry host is missing; expected host[:port]/path");
    for (const label of name.split(".")) {
      if (label === "" || !HOST_LABEL_RE.test(label)) {
        throw invalid(ref, `${JSON.stringify(name)} is not a valid registry host name`);
      }
    }
  }
  if (port !== undefined) {
    const n = /^[0-9]{1,5}$/.test(port) ? Number(port) : Number.NaN;
    if (!(n >= 1 && n <= 65535)) {
      throw invalid(ref, `port ${JSON.stringify(port)} is not a number from 1 to 65535`);
    }
    return `${name}:${port}`;
  }
  return name;
}
