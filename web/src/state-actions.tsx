/**
 * Download and Restore for the current state or one version. Restore writes that version's content
 * as a new version (RestoreVersion), behind a confirmation; it needs the admin permission, and is
 * refused while someone else holds the lock (a browser holds none), which is said in words.
 */
import type { LockInfo, Workspace } from "@oci-tfstate/client/web";
import { useRef, useState } from "preact/hooks";
import { client } from "./api.ts";
import { downloadState } from "./download.ts";
import { GuardedButton, useGuardedCall } from "./guarded.tsx";
import { missing } from "./permissions.ts";
import { ProblemNote } from "./problem.tsx";

export function DownloadButton({
  ws,
  workspace,
  version,
  id,
}: {
  ws: Workspace | undefined;
  workspace: string;
  /** 0: the current state. */
  version: bigint;
  id: string;
}) {
  const call = useGuardedCall(workspace, "download");
  return (
    <>
      <GuardedButton
        id={id}
        reason={missing(ws, "read") ?? call.denied}
        busy={call.busy}
        onClick={() => void call.run(() => downloadState(workspace, version))}
      >
        {call.busy ? "Downloading…" : version > 0n ? `Download v${version}` : "Download state"}
      </GuardedButton>
      {call.problem && <ProblemNote problem={call.problem} />}
    </>
  );
}

/** Why restoring is refused before asking, or undefined. */
export function restoreBlocked(
  ws: Workspace | undefined,
  lock: LockInfo | undefined,
  denied: string | undefined,
): string | undefined {
  return (
    missing(ws, "admin") ??
    denied ??
    (lock
      ? `refused while ${lock.who || "someone"} holds the lock${lock.operation ? ` (${lock.operation})` : ""}`
      : undefined)
  );
}

export function RestoreButton({
  ws,
  workspace,
  version,
  lock,
  onRestored,
}: {
  ws: Workspace | undefined;
  workspace: string;
  version: bigint;
  lock: LockInfo | undefined;
  onRestored: (newVersion: bigint) => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const call = useGuardedCall(workspace, "restore");
  const [done, setDone] = useState<string | undefined>(undefined);
  const id = `restore-${version}`;
  const restore = async () => {
    let written = 0n;
    const ok = await call.run(async () => {
      const res = await client.state.restoreVersion({ workspace, version });
      written = res.metadata?.version ?? 0n;
    });
    dialog.current?.close();
    if (ok) {
      setDone(
        written > 0n
          ? `Restored: v${version}'s content is now current, as v${written}.`
          : `Restored v${version}.`,
      );
      onRestored(written);
    }
  };
  return (
    <>
      <GuardedButton
        id={id}
        danger
        reason={restoreBlocked(ws, lock, call.denied)}
        busy={call.busy}
        onClick={() => {
          setDone(undefined);
          dialog.current?.showModal();
        }}
      >
        Restore
      </GuardedButton>
      <dialog ref={dialog} aria-labelledby={`${id}-title`} class="confirm">
        <h2 id={`${id}-title`}>
          Restore v{String(version)} of “{workspace}”?
        </h2>
        <p>
          Its content becomes the current state, written as a new version; the history is kept, so this can be
          undone by restoring the version that is current now. The next <code>plan</code> compares against the
          restored state.
        </p>
        <div class="actions">
          <button type="button" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button type="button" class="danger" disabled={call.busy} onClick={() => void restore()}>
            Restore v{String(version)}
          </button>
        </div>
      </dialog>
      {done && (
        <span class="ok" role="status">
          {done}
        </span>
      )}
      {call.problem && <ProblemNote problem={call.problem} />}
    </>
  );
}
