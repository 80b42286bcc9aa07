/**
 * One workspace: what is stored, and its lock with every LockInfo field and the lease end, live
 * through WatchLock, with Force unlock behind a confirmation that names the holder.
 * (Resources, outputs and versions come with the state summary API.)
 */
import { type GetLockResponse, type LockInfo, type Workspace, WorkspaceView } from "@oci-tfstate/client/web";
import { useEffect, useRef, useState } from "preact/hooks";
import { client, describe, type Problem } from "./api.ts";
import { NewWorkspaceSnippet } from "./backend-snippet.tsx";
import { ago, bytes, dateOf, exact, until } from "./format.ts";
import { LockBadge } from "./lock-badge.tsx";
import { useLockWatch } from "./lock-watch.ts";
import { ProblemNote } from "./problem.tsx";
import { LiveNote } from "./workspace-list.tsx";

/** Force unlock refused by the server this session, by workspace: the reason it gave. */
const forceDenied = new Map<string, string>();

export function WorkspacePage({ name, session }: { name: string; session: number }) {
  const [ws, setWs] = useState<Workspace | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [lease, setLease] = useState<GetLockResponse | undefined>(undefined);
  const watch = useLockWatch(name, session);
  const lock = watch.live ? watch.locks.get(name) : ws?.lock;

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
  }, [name, watch.changes]);

  const updated = dateOf(ws?.updateTime);
  return (
    <section aria-labelledby="ws-name">
      <p>
        <a href="#/">← All workspaces</a>
      </p>
      <div class="title-row">
        <h1 id="ws-name">{name}</h1>
        <LiveNote {...watch} />
      </div>
      {problem && <ProblemNote problem={problem} />}
      {ws && (
        <dl class="facts">
          <dt>State</dt>
          <dd>{ws.hasState ? bytes(ws.storedSizeBytes) : "none yet"}</dd>
          <dt>Last update</dt>
          <dd title={exact(updated)}>{ws.hasState ? `${ago(updated)} (${exact(updated)})` : "never"}</dd>
          <dt>Version</dt>
          <dd>{ws.version > 0n ? `v${ws.version}` : "not versioned"}</dd>
          <dt>Digest</dt>
          <dd class="mono wrap">{ws.digest || "—"}</dd>
        </dl>
      )}
      {!problem && <LockPanel workspace={name} lock={lock} lease={lease} />}
      {ws && !ws.hasState && <NewWorkspaceSnippet initial={name} />}
    </section>
  );
}

function LockPanel({
  workspace,
  lock,
  lease,
}: {
  workspace: string;
  lock: LockInfo | undefined;
  lease: GetLockResponse | undefined;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Problem | undefined>(undefined);
  const [denied, setDenied] = useState(forceDenied.get(workspace));
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
