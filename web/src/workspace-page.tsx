/**
 * One workspace: its header (serial, lineage, tool version, updated) with the raw state download;
 * its lock with every LockInfo field and the lease end, live through WatchLock, with Force unlock
 * behind a confirmation that names the holder; tabs for Resources (grouped by module and type),
 * Outputs (sensitive values masked) and Versions; and one version's page or a diff, which keep the
 * header and the live lock.
 */
import {
  type GetLockResponse,
  type GetOutputsResponse,
  type LockInfo,
  type StateSummary,
  type Workspace,
  WorkspaceView,
} from "@oci-tfstate/client/web";
import { useEffect, useRef, useState } from "preact/hooks";
import { client, describe, type Problem } from "./api.ts";
import { NewWorkspaceSnippet } from "./backend-snippet.tsx";
import { DiffView } from "./diff-view.tsx";
import { ago, dateOf, exact, until } from "./format.ts";
import { LockBadge } from "./lock-badge.tsx";
import { useLockWatch } from "./lock-watch.ts";
import { missing } from "./permissions.ts";
import { ProblemNote } from "./problem.tsx";
import { type Route, type WorkspaceTab, workspaceHref } from "./route.ts";
import { DownloadButton } from "./state-actions.tsx";
import { StateFacts } from "./state-facts.tsx";
import { FormatNote, OutputList, ResourceGroups, unreadable } from "./summary-view.tsx";
import { VersionView } from "./version-view.tsx";
import { VersionsTab } from "./versions-tab.tsx";
import { LiveNote } from "./workspace-list.tsx";

/** Force unlock refused by the server this session, by workspace: the reason it gave. */
const forceDenied = new Map<string, string>();

export type WorkspaceRoute = Extract<Route, { name: string }>;

const TABS: readonly [WorkspaceTab, string][] = [
  ["resources", "Resources"],
  ["outputs", "Outputs"],
  ["versions", "Versions"],
];

export function WorkspacePage({ route, session }: { route: WorkspaceRoute; session: number }) {
  const name = route.name;
  const [ws, setWs] = useState<Workspace | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [lease, setLease] = useState<GetLockResponse | undefined>(undefined);
  const [reloads, setReloads] = useState(0);
  const watch = useLockWatch(name, session);
  const lock = watch.live ? watch.locks.get(name) : ws?.lock;
  const reload = () => setReloads((n) => n + 1);

  useEffect(() => {
    client.workspaces.getWorkspace({ name, view: WorkspaceView.FULL }).then(
      (res) => {
        setWs(res.workspace);
        setProblem(undefined);
      },
      (err: unknown) => setProblem(describe(err)),
    );
    // The lease end and generation are GetLock's; asked again on every lock change.
    client.state.getLock({ workspace: name }).then(setLease, () => setLease(undefined));
  }, [name, watch.changes, reloads]);

  return (
    <section aria-labelledby="ws-name">
      <p>
        <a href="#/">← All workspaces</a>
      </p>
      <div class="title-row">
        <h1 id="ws-name">{name}</h1>
        {route.screen !== "workspace" && <LockBadge lock={lock} />}
        <LiveNote {...watch} />
      </div>
      {problem && <ProblemNote problem={problem} />}
      {ws?.hasState && (
        <>
          <StateFacts summary={ws.summary} metadata={ws} />
          <div class="actions">
            <DownloadButton ws={ws} workspace={name} version={0n} id="download-current" />
          </div>
        </>
      )}
      {ws && !ws.hasState && (
        <dl class="facts">
          <dt>State</dt>
          <dd>none yet</dd>
        </dl>
      )}
      {route.screen === "workspace" && !problem && (
        <LockPanel workspace={name} ws={ws} lock={lock} lease={lease} />
      )}
      {ws && !ws.hasState && <NewWorkspaceSnippet initial={name} />}
      {ws?.hasState &&
        (route.screen === "workspace" ? (
          <>
            <nav class="tabs" aria-label="Workspace">
              {TABS.map(([tab, label]) => (
                <a
                  key={tab}
                  href={workspaceHref(name, tab)}
                  aria-current={route.tab === tab ? "page" : undefined}
                >
                  {label}
                </a>
              ))}
            </nav>
            <div class="tab-body">
              {route.tab === "resources" && <ResourcesTab workspace={name} digest={ws.digest} />}
              {route.tab === "outputs" && <OutputsTab ws={ws} workspace={name} />}
              {route.tab === "versions" && (
                <VersionsTab ws={ws} workspace={name} lock={lock} onChanged={reload} />
              )}
            </div>
          </>
        ) : route.screen === "version" ? (
          <VersionView ws={ws} workspace={name} version={route.version} lock={lock} onChanged={reload} />
        ) : route.screen === "diff" ? (
          missing(ws, "read") ? (
            <p class="reason">The diff is not shown: {missing(ws, "read")}.</p>
          ) : (
            <DiffView workspace={name} from={route.from} to={route.to} />
          )
        ) : null)}
    </section>
  );
}

/** The current state's resources (GetStateSummary), read again when the state changes. */
function ResourcesTab({ workspace, digest }: { workspace: string; digest: string }) {
  const [summary, setSummary] = useState<StateSummary | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  useEffect(() => {
    client.state.getStateSummary({ workspace }).then(
      (res) => {
        setSummary(res.summary);
        setProblem(undefined);
      },
      (err: unknown) => setProblem(describe(err)),
    );
  }, [workspace, digest]);
  if (problem) return <ProblemNote problem={problem} />;
  if (!summary) return <p aria-live="polite">Loading resources…</p>;
  return <ResourceGroups summary={summary} />;
}

/** The current state's outputs (GetOutputs: read-outputs is enough), sensitive values masked. */
function OutputsTab({ ws, workspace }: { ws: Workspace; workspace: string }) {
  const [res, setRes] = useState<GetOutputsResponse | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const noRead = missing(ws, "read-outputs");
  useEffect(() => {
    if (noRead) return;
    client.state.getOutputs({ workspace }).then(
      (r) => {
        setRes(r);
        setProblem(undefined);
      },
      (err: unknown) => setProblem(describe(err)),
    );
  }, [workspace, ws.digest, noRead]);
  if (noRead) return <p class="reason">Outputs are not shown: {noRead}.</p>;
  if (problem) return <ProblemNote problem={problem} />;
  if (!res) return <p aria-live="polite">Loading outputs…</p>;
  if (unreadable(ws.summary) !== undefined) return <FormatNote summary={ws.summary} what="outputs" />;
  return <OutputList outputs={res.outputs} />;
}

function LockPanel({
  workspace,
  ws,
  lock,
  lease,
}: {
  workspace: string;
  ws: Workspace | undefined;
  lock: LockInfo | undefined;
  lease: GetLockResponse | undefined;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Problem | undefined>(undefined);
  const [refused, setDenied] = useState(forceDenied.get(workspace));
  const denied = missing(ws, "force-unlock") ?? refused;
  // The lease and generation belong to the lock on screen only when GetLock saw the same holder.
  const sameLock = lock !== undefined && lease?.lock?.id === lock.id;
  const expires = sameLock ? dateOf(lease?.expireTime) : undefined;

  const forceUnlock = async () => {
    setBusy(true);
    try {
      await client.state.unlock({ workspace, force: true });
      setResult(undefined);
      dialog.current?.close();
    } catch (err) {
      const p = describe(err);
      // A refusal disables the button and says why beside it; anything else is shown below.
      if (p.kind === "denied") {
        forceDenied.set(workspace, p.message);
        setDenied(p.message);
      } else {
        setResult(p);
      }
      dialog.current?.close();
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="lock-title">
      <h2 id="lock-title">
        Lock <LockBadge lock={lock} />
      </h2>
      {lock === undefined ? (
        <p>Nobody holds the lock: a plan or apply may start.</p>
      ) : (
        <>
          <dl class="facts" data-testid="lock-fields">
            <dt>Who</dt>
            <dd>{lock.who || "—"}</dd>
            <dt>Operation</dt>
            <dd>{lock.operation || "—"}</dd>
            <dt>Since</dt>
            <dd>{exact(dateOf(lock.created)) || "—"}</dd>
            <dt>Lease ends</dt>
            <dd>
              {expires ? `${exact(expires)} (in ${until(expires)})` : sameLock ? "never (no lease)" : "…"}
            </dd>
            <dt>Lock ID</dt>
            <dd class="mono wrap">{lock.id || "hidden (needs the lock permission)"}</dd>
            <dt>Tool version</dt>
            <dd>{lock.version || "—"}</dd>
            <dt>Info</dt>
            <dd class="wrap">{lock.info || "—"}</dd>
            <dt>Path</dt>
            <dd class="mono">{lock.path || "—"}</dd>
            <dt>Generation</dt>
            <dd>{sameLock && lease ? String(lease.generation) : "—"}</dd>
          </dl>
          <div class="actions">
            <button
              type="button"
              class="danger"
              disabled={denied !== undefined || busy}
              aria-describedby={denied ? "force-denied" : undefined}
              onClick={() => dialog.current?.showModal()}
            >
              Force unlock
            </button>
            {denied && (
              <span id="force-denied" class="reason">
                {denied}
              </span>
            )}
          </div>
          <dialog ref={dialog} aria-labelledby="confirm-title" class="confirm">
            <h2 id="confirm-title">Force unlock “{workspace}”?</h2>
            <p>
              This releases the lock held by <strong>{lock.who || "an unknown holder"}</strong>
              {lock.operation ? ` for ${lock.operation}` : ""}, taken {ago(dateOf(lock.created))}. If that run
              is still going, its next state write will be refused.
            </p>
            <div class="actions">
              <button type="button" onClick={() => dialog.current?.close()}>
                Cancel
              </button>
              <button type="button" class="danger" disabled={busy} onClick={() => void forceUnlock()}>
                Force unlock
              </button>
            </div>
          </dialog>
        </>
      )}
      {result && <ProblemNote problem={result} />}
    </section>
  );
}
