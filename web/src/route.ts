/**
 * Hash routes (`#/`, `#/w/<name>`, `#/sign-in`): every screen is `/` to the server, which serves
 * nothing else as HTML, and a link to a workspace still works after a reload.
 */
import { useEffect, useState } from "preact/hooks";

export type Route = { screen: "workspaces" } | { screen: "workspace"; name: string } | { screen: "sign-in" };

export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#/, "");
  if (h.startsWith("/w/")) {
    try {
      return { screen: "workspace", name: decodeURIComponent(h.slice(3)) };
    } catch {
      return { screen: "workspaces" };
    }
  }
  if (h === "/sign-in") return { screen: "sign-in" };
  return { screen: "workspaces" };
}

export const workspaceHref = (name: string) => `#/w/${encodeURIComponent(name)}`;

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
