/**
 * Hash routes: every screen is `/` to the server, which serves nothing else as HTML, and a link to
 * a workspace, a version or a diff still works after a reload.
 *   #/                              workspaces
 *   #/w/<name>                      workspace (Resources tab)
 *   #/w/<name>/outputs              workspace, Outputs tab
 *   #/w/<name>/versions             workspace, Versions tab
 *   #/w/<name>/versions/<n>         one version's summary
 *   #/w/<name>/diff/<from>/<to>     diff (to 0: the current state)
 *   #/sign-in
 */
import { useEffect, useState } from "preact/hooks";

export type WorkspaceTab = "resources" | "outputs" | "versions";

export type Route =
  | { screen: "workspaces" }
  | { screen: "workspace"; name: string; tab: WorkspaceTab }
  | { screen: "version"; name: string; version: bigint }
  | { screen: "diff"; name: string; from: bigint; to: bigint }
  | { screen: "sign-in" };

const NUMBER = /^\d{1,18}$/;

export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#/, "");
  if (h === "/sign-in") return { screen: "sign-in" };
  if (!h.startsWith("/w/")) return { screen: "workspaces" };
  const [encoded = "", ...rest] = h.slice(3).split("/");
  let name: string;
  try {
    name = decodeURIComponent(encoded);
  } catch {
    return { screen: "workspaces" };
  }
  const [a, b, c] = rest;
  if (a === "outputs" || a === "versions") {
    if (a === "versions" && b !== undefined && NUMBER.test(b)) {
      return { screen: "version", name, version: BigInt(b) };
    }
    return { screen: "workspace", name, tab: a };
  }
  if (a === "diff" && b !== undefined && c !== undefined && NUMBER.test(b) && NUMBER.test(c)) {
    return { screen: "diff", name, from: BigInt(b), to: BigInt(c) };
  }
  return { screen: "workspace", name, tab: "resources" };
}

const base = (name: string) => `#/w/${encodeURIComponent(name)}`;
export const workspaceHref = (name: string, tab: WorkspaceTab = "resources") =>
  tab === "resources" ? base(name) : `${base(name)}/${tab}`;
export const versionHref = (name: string, version: bigint) => `${base(name)}/versions/${version}`;
/** `to` 0 is the current state. */
export const diffHref = (name: string, from: bigint, to: bigint) => `${base(name)}/diff/${from}/${to}`;

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
