/**
 * Every workspace the caller may see: name, lock (live through WatchLock of all workspaces), last
 * update, size and version; filtered by name, sorted, and loaded a page of ListWorkspaces at a time.
 */
import { type Workspace, WorkspaceView } from "@oci-tfstate/client/web";
import { useEffect, useMemo, useState } from "preact/hooks";
import { client, describe, type Problem } from "./api.ts";
import { NewWorkspaceSnippet } from "./backend-snippet.tsx";
import { ago, bytes, dateOf, exact } from "./format.ts";
import { LockBadge } from "./lock-badge.tsx";
import { type LockView, useLockWatch } from "./lock-watch.ts";
import { ProblemNote } from "./problem.tsx";
import { workspaceHref } from "./route.ts";

const PAGE_SIZE = 100;
type SortKey = "name" | "updated" | "size";

export function WorkspaceList({ session }: { session: number }) {
  const [rows, setRows] = useState<Workspace[]>([]);
  const [next, setNext] = useState<string | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [filter, setFilter] = useState("");
  const [sort, setSort] = useState<SortKey>("name");
  const watch = useLockWatch("", session);

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
              <th scope="col">Version</th>
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
                    {w.hasState ? ago(updated) : "no state yet"}
                  </td>
                  <td data-label="Size">{w.hasState ? bytes(w.storedSizeBytes) : "—"}</td>
                  <td data-label="Version">{w.version > 0n ? `v${w.version}` : "—"}</td>
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
