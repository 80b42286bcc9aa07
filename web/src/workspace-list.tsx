/**
 * Every workspace the caller may see: name, lock (live through WatchLock of all workspaces), last
 * update (time, serial), size, resource count (Workspace.summary), and the number of versions kept
 * with the current one; filtered by name, sorted, and loaded a page of ListWorkspaces at a time.
 * The version count is not in ListWorkspaces: it is one ListVersions per workspace with a state,
 * a few at a time, after the page is on screen.
 */
import { StateFormat, type Workspace, WorkspaceView } from "@oci-tfstate/client/web";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { client, describe, type Problem } from "./api.ts";
import { NewWorkspaceSnippet } from "./backend-snippet.tsx";
import { ago, bytes, dateOf, exact } from "./format.ts";
import { LockBadge } from "./lock-badge.tsx";
import { type LockView, useLockWatch } from "./lock-watch.ts";
import { missing } from "./permissions.ts";
import { ProblemNote } from "./problem.tsx";
import { workspaceHref } from "./route.ts";

const PAGE_SIZE = 100;
const COUNTS_AT_ONCE = 3;
/** ListVersions' largest page: more than this many versions reads as "1000+". */
const COUNT_PAGE = 1000;
type SortKey = "name" | "updated" | "size" | "resources";

export function WorkspaceList({ session }: { session: number }) {
  const [rows, setRows] = useState<Workspace[]>([]);
  const [next, setNext] = useState<string | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [filter, setFilter] = useState("");
  const [sort, setSort] = useState<SortKey>("name");
  const watch = useLockWatch("", session);
  const counts = useVersionCounts(rows);

  const load = async (token: string) => {
    setLoading(true);
    try {
      const res = await client.workspaces.listWorkspaces({
        pageSize: PAGE_SIZE,
        pageToken: token,
        view: WorkspaceView.FULL,
      });
      setRows((r) => (token === "" ? res.workspaces : [...r, ...res.workspaces]));
      setNext(res.nextPageToken || undefined);
      setProblem(undefined);
    } catch (err) {
      setProblem(describe(err));
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    void load("");
  }, []);

  // A lock change usually brackets a write: that row's size, time and version are read again.
  useEffect(() => {
    const name = watch.lastChanged;
    if (!name) return;
    client.workspaces.getWorkspace({ name, view: WorkspaceView.FULL }).then(
      (res) => {
        const ws = res.workspace;
        if (!ws) return;
        setRows((r) =>
          r.some((x) => x.name === name)
            ? r.map((x) => (x.name === name ? ws : x))
            : [...r, ws].sort((a, b) => (a.name < b.name ? -1 : 1)),
        );
      },
      () => {},
    );
  }, [watch.changes]);

  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    const list = f === "" ? [...rows] : rows.filter((w) => w.name.toLowerCase().includes(f));
    const time = (w: Workspace) => dateOf(w.updateTime)?.getTime() ?? 0;
    if (sort === "updated") list.sort((a, b) => time(b) - time(a));
    else if (sort === "size") list.sort((a, b) => Number(b.storedSizeBytes - a.storedSizeBytes));
    else if (sort === "resources") list.sort((a, b) => Number(resources(b) - resources(a)));
    return list;
  }, [rows, filter, sort]);

  const lockOf = (w: Workspace) => (watch.live ? watch.locks.get(w.name) : w.lock);
  const anyState = rows.some((w) => w.hasState);

  return (
    <section aria-labelledby="ws-title">
      <div class="title-row">
        <h1 id="ws-title">Workspaces</h1>
        <LiveNote {...watch} />
      </div>
      {problem && <ProblemNote problem={problem} />}
      <div class="controls">
        <label>
          Filter by name{" "}
          <input
            type="search"
            value={filter}
            onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
            placeholder="e.g. prod"
          />
        </label>
        <label>
          Sort by{" "}
          <select value={sort} onChange={(e) => setSort((e.target as HTMLSelectElement).value as SortKey)}>
            <option value="name">name</option>
            <option value="updated">last update</option>
            <option value="size">size</option>
            <option value="resources">resources</option>
          </select>
        </label>
        <button type="button" onClick={() => void load("")} disabled={loading}>
          Refresh
        </button>
      </div>
      {loading && rows.length === 0 && <p aria-live="polite">Loading workspaces…</p>}
      {rows.length > 0 && (
        <table class="workspaces">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Lock</th>
              <th scope="col">Last update</th>
              <th scope="col">Size</th>
              <th scope="col">Resources</th>
              <th scope="col">Versions</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((w) => {
              const updated = dateOf(w.updateTime);
              return (
                <tr key={w.name} data-workspace={w.name}>
                  <td data-label="Name">
                    <a href={workspaceHref(w.name)}>{w.name}</a>
                  </td>
                  <td data-label="Lock" class="lock-cell">
                    <LockBadge lock={lockOf(w)} />
                  </td>
                  <td data-label="Last update" title={exact(updated)}>
                    <span>
                      {w.hasState ? ago(updated) : "no state yet"}
                      {serialOf(w) !== undefined && <span class="muted"> · serial {serialOf(w)}</span>}
                    </span>
                  </td>
                  <td data-label="Size">{w.hasState ? bytes(w.storedSizeBytes) : "—"}</td>
                  <td data-label="Resources" data-testid="resource-count">
                    {resourceCell(w)}
                  </td>
                  <td data-label="Versions" data-testid="version-count">
                    {versionCell(w, counts.get(w.name))}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {rows.length > 0 && (
        <p class="muted" aria-live="polite">
          {shown.length === rows.length
            ? `${rows.length} workspace${rows.length === 1 ? "" : "s"}${next ? " loaded" : ""}`
            : `${shown.length} of ${rows.length} loaded workspaces match “${filter.trim()}”`}
          {next ? "; more on the server." : "."}
        </p>
      )}
      {next && (
        <button type="button" onClick={() => void load(next)} disabled={loading}>
          Load {PAGE_SIZE} more
        </button>
      )}
      {!loading && !problem && !anyState && <NewWorkspaceSnippet />}
    </section>
  );
}

function resources(w: Workspace): bigint {
  return w.summary?.format === StateFormat.TERRAFORM_JSON ? w.summary.resourceCount : -1n;
}

function serialOf(w: Workspace): string | undefined {
  const s = w.summary;
  if (s === undefined || s.format === StateFormat.OPAQUE) return undefined;
  return s.format === StateFormat.TERRAFORM_JSON || s.serial > 0n ? String(s.serial) : undefined;
}

function resourceCell(w: Workspace) {
  if (!w.hasState) return "—";
  const s = w.summary;
  // Large states are summarized on first GetWorkspace; the list leaves them unset until then.
  if (s === undefined) return <span class="muted">not summarized yet</span>;
  if (s.format === StateFormat.ENCRYPTED) return <span class="muted">encrypted</span>;
  if (s.format !== StateFormat.TERRAFORM_JSON) return <span class="muted">not Terraform JSON</span>;
  return String(s.resourceCount);
}

function versionCell(w: Workspace, count: string | undefined) {
  if (!w.hasState || w.version === 0n) return "—";
  return (
    <span>
      {count ?? "…"} <span class="muted">· current v{String(w.version)}</span>
    </span>
  );
}

/** How many versions each listed workspace keeps ("1000+" past one page; "—" when not readable). */
function useVersionCounts(rows: readonly Workspace[]): ReadonlyMap<string, string> {
  const [counts, setCounts] = useState<ReadonlyMap<string, string>>(new Map());
  // Counted again when a workspace's current version changes.
  const wanted = rows.filter((w) => w.hasState && w.version > 0n).map((w) => `${w.name}\u0000${w.version}`);
  const known = useRef(new Map<string, string>());
  useEffect(() => {
    let stopped = false;
    const todo = wanted.filter((k) => !known.current.has(k));
    const work = async () => {
      while (!stopped) {
        const key = todo.shift();
        if (key === undefined) return;
        const name = key.slice(0, key.indexOf("\u0000"));
        const ws = rows.find((w) => w.name === name);
        let text = "—";
        if (missing(ws, "read") === undefined) {
          try {
            const res = await client.state.listVersions({ workspace: name, pageSize: COUNT_PAGE });
            text = res.nextPageToken ? `${COUNT_PAGE}+` : String(res.versions.length);
          } catch {
            text = "—";
          }
        }
        known.current.set(key, text);
        setCounts((m) => new Map(m).set(name, text));
      }
    };
    for (let i = 0; i < COUNTS_AT_ONCE; i++) void work();
    return () => {
      stopped = true;
    };
  }, [wanted.join("\n")]);
  return counts;
}

export function LiveNote({ live, problem, retrying }: Pick<LockView, "live" | "problem" | "retrying">) {
  if (live) {
    return (
      <span class="live" title="Lock changes are pushed by the server (WatchLock)">
        ● live
      </span>
    );
  }
  // The screen shows the problem itself when a person must act.
  if (problem && !retrying) return null;
  return (
    <span class="live off" role="status">
      {problem ? `lock updates interrupted, reconnecting: ${problem.message}` : "connecting…"}
    </span>
  );
}
