/**
 * Who may do what to which workspace: rules of principals (API token names, OIDC claim matchers,
 * anonymous) → workspace name globs → permissions. A principal's permissions on a workspace are
 * the union of the rules that match both. A workspace on which it has none does not exist for it:
 * listings leave it out and every call answers NOT_FOUND, so names do not leak.
 */
import { InvalidArgumentError } from "../errors.ts";
import type { Principal } from "../rpc/principal.ts";
import { globMatch } from "./glob.ts";
import { expand, isPermission, PERMISSIONS, type Permission } from "./permissions.ts";

export const GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com";
export const GITLAB_ISSUER = "https://gitlab.com";

export type PrincipalMatcher =
  | { kind: "token"; name: string }
  | { kind: "oidc"; issuer: string; claims: Readonly<Record<string, string>> }
  | { kind: "anonymous" };

export interface PolicyRule {
  principals: readonly PrincipalMatcher[];
  workspaces: readonly string[];
  permissions: readonly Permission[];
}

/** What a principal may do, by workspace: an Access, or one that follows the policy in force. */
export interface WorkspaceAccess {
  readonly principal: Principal;
  permissionsOn(workspace: string): ReadonlySet<Permission>;
  can(permission: Permission, workspace: string): boolean;
  /** Whether the workspace exists for this principal: it has some permission on it. */
  visible(workspace: string): boolean;
}

/** One principal's view of the workspaces under one policy, memoised per workspace. */
export class Access implements WorkspaceAccess {
  readonly principal: Principal;
  readonly #rules: readonly PolicyRule[] | "all";
  readonly #memo = new Map<string, ReadonlySet<Permission>>();

  constructor(principal: Principal, rules: readonly PolicyRule[] | "all") {
    this.principal = principal;
    this.#rules = rules;
  }

  permissionsOn(workspace: string): ReadonlySet<Permission> {
    let got = this.#memo.get(workspace);
    if (got === undefined) {
      if (this.#rules === "all") got = ALL;
      else {
        const granted: Permission[] = [];
        for (const rule of this.#rules) {
          if (rule.workspaces.some((w) => globMatch(w, workspace))) granted.push(...rule.permissions);
        }
        got = expand(granted);
      }
      this.#memo.set(workspace, got);
    }
    return got;
  }

  can(permission: Permission, workspace: string): boolean {
    return this.permissionsOn(workspace).has(permission);
  }

  /** Whether the workspace exists for this principal: it has some permission on it. */
  visible(workspace: string): boolean {
    return this.permissionsOn(workspace).size > 0;
  }
}

const ALL: ReadonlySet<Permission> = new Set(PERMISSIONS);

/**
 * The principal's access under whichever policy is in force when asked, for calls that outlive a
 * reload: a watch lasts hours, and a grant taken away must stop its next event, not its next call.
 * The Access is made again only when the policy changed.
 */
export function followingAccess(source: PolicySource, principal: Principal): WorkspaceAccess {
  let policy = source.current;
  let access = policy.accessFor(principal);
  const now = (): Access => {
    if (source.current !== policy) {
      policy = source.current;
      access = policy.accessFor(principal);
    }
    return access;
  };
  return {
    principal,
    permissionsOn: (ws) => now().permissionsOn(ws),
    can: (p, ws) => now().can(p, ws),
    visible: (ws) => now().visible(ws),
  };
}

/**
 * Where each request finds the policy in force: a Policy is its own source; the CLI's source
 * changes when SIGHUP reloads the policy file. Read per request, so a reload applies to the next
 * call, and to the next event of a watch (followingAccess).
 */
export interface PolicySource {
  readonly current: Policy;
}

export class Policy implements PolicySource {
  readonly #rules: readonly PolicyRule[] | "all";

  private constructor(rules: readonly PolicyRule[] | "all") {
    this.#rules = rules;
  }

  /** Every principal may do everything (no policy file: authenticated means trusted). */
  static allowAll(): Policy {
    return new Policy("all");
  }

  get current(): Policy {
    return this;
  }

  static fromRules(rules: readonly PolicyRule[]): Policy {
    return new Policy(rules);
  }

  /** Parses a policy document (YAML or JSON, already parsed); errors name the rule and field. */
  static fromDocument(doc: unknown): Policy {
    return new Policy(parseRules(doc));
  }

  accessFor(principal: Principal): Access {
    if (this.#rules === "all") return new Access(principal, "all");
    return new Access(
      principal,
      this.#rules.filter((r) => r.principals.some((m) => principalMatches(m, principal))),
    );
  }
}

function principalMatches(m: PrincipalMatcher, p: Principal): boolean {
  switch (m.kind) {
    case "anonymous":
      return p.method === "anonymous";
    case "token":
      return p.method === "token" && p.token !== undefined && globMatch(m.name, p.token);
    case "oidc": {
      if (p.method !== "oidc" || p.issuer === undefined || sameIssuer(p.issuer, m.issuer) === false)
        return false;
      const claims = p.claims ?? {};
      return Object.entries(m.claims).every(([name, pattern]) => claimMatches(claims[name], pattern));
    }
  }
}

function sameIssuer(a: string, b: string): boolean {
  return a.replace(/\/+$/, "") === b.replace(/\/+$/, "");
}

function claimMatches(value: unknown, pattern: string): boolean {
  if (typeof value === "string") return globMatch(pattern, value);
  if (typeof value === "number" || typeof value === "boolean") return globMatch(pattern, String(value));
  if (Array.isArray(value)) return value.some((v) => claimMatches(v, pattern));
  return false;
}

// ---- parsing ----

function fail(where: string, what: string): never {
  throw new InvalidArgumentError(`policy ${where}: ${what}`);
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(where, "must be a mapping");
  return value as Record<string, unknown>;
}

function stringList(value: unknown, where: string): string[] {
  if (!Array.isArray(value) || value.length === 0) fail(where, "must be a non-empty list");
  return value.map((v, i) => {
    if (typeof v !== "string" || v === "") fail(`${where}[${i}]`, "must be a non-empty string");
    return v;
  });
}

function claimsOf(
  value: Record<string, unknown>,
  where: string,
  skip: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (skip.includes(k)) continue;
    if (typeof v !== "string" || v === "") fail(`${where}.${k}`, "must be a non-empty string (a glob)");
    out[k] = v;
  }
  return out;
}

function parseMatcher(value: unknown, where: string): PrincipalMatcher {
  const m = record(value, where);
  const keys = Object.keys(m);
  if (keys.length !== 1) {
    fail(
      where,
      `must have exactly one of token, github, gitlab, oidc, anonymous; got ${keys.join(", ") || "none"}`,
    );
  }
  const key = keys[0] as string;
  const v = m[key];
  const at = `${where}.${key}`;
  switch (key) {
    case "token":
      if (typeof v !== "string" || v === "") fail(at, "must be a token name (a glob)");
      return { kind: "token", name: v };
    case "anonymous":
      if (v !== true) fail(at, "must be true");
      return { kind: "anonymous" };
    case "github": {
      const claims = claimsOf(record(v, at), at, []);
      if (Object.keys(claims).length === 0) fail(at, "must name at least one claim (e.g. repository)");
      return { kind: "oidc", issuer: GITHUB_ACTIONS_ISSUER, claims };
    }
    case "gitlab": {
      const r = record(v, at);
      const issuer = r.issuer === undefined ? GITLAB_ISSUER : r.issuer;
      if (typeof issuer !== "string" || !/^https:\/\//.test(issuer))
        fail(`${at}.issuer`, "must be an https URL");
      const claims = claimsOf(r, at, ["issuer"]);
      if (Object.keys(claims).length === 0) fail(at, "must name at least one claim (e.g. project_path)");
      return { kind: "oidc", issuer, claims };
    }
    case "oidc": {
      const r = record(v, at);
      if (typeof r.issuer !== "string" || !/^https?:\/\//.test(r.issuer))
        fail(`${at}.issuer`, "must be a URL");
      const claims =
        r.claims === undefined ? {} : claimsOf(record(r.claims, `${at}.claims`), `${at}.claims`, []);
      const extra = Object.keys(r).filter((k) => k !== "issuer" && k !== "claims");
      if (extra.length > 0) fail(at, `unknown field ${extra[0]} (claims go under "claims")`);
      return { kind: "oidc", issuer: r.issuer, claims };
    }
    default:
      return fail(at, "is not a kind of principal: use token, github, gitlab, oidc or anonymous");
  }
}

function parseRules(doc: unknown): PolicyRule[] {
  const top = record(doc, "file");
  const unknown = Object.keys(top).filter((k) => k !== "rules");
  if (unknown.length > 0) fail(unknown[0] as string, 'is not a policy field (the file holds "rules")');
  if (!Array.isArray(top.rules)) fail("rules", "must be a list of rules");
  return top.rules.map((raw, i): PolicyRule => {
    const where = `rules[${i}]`;
    const r = record(raw, where);
    const extra = Object.keys(r).filter((k) => !["principals", "workspaces", "permissions"].includes(k));
    if (extra.length > 0)
      fail(`${where}.${extra[0]}`, "is not a rule field (principals, workspaces, permissions)");
    if (!Array.isArray(r.principals) || r.principals.length === 0) {
      fail(`${where}.principals`, "must be a non-empty list");
    }
    const principals = r.principals.map((p, j) => parseMatcher(p, `${where}.principals[${j}]`));
    const workspaces = stringList(r.workspaces, `${where}.workspaces`);
    const permissions = stringList(r.permissions, `${where}.permissions`).map((p, j) => {
      if (!isPermission(p))
        fail(`${where}.permissions[${j}]`, `${JSON.stringify(p)} is not one of ${PERMISSIONS.join(", ")}`);
      return p;
    });
    return { principals, workspaces, permissions };
  });
}
