/**
 * One version of a workspace: its summary (GetStateSummary with the version), resources and
 * outputs, with Diff against the current state, Download and Restore.
 */
import type { GetStateSummaryResponse, LockInfo, Workspace } from "@oci-tfstate/client/web";
import { useEffect, useState } from "preact/hooks";
import { client, describe, type Problem } from "./api.ts";
import { ProblemNote } from "./problem.tsx";
import { diffHref, workspaceHref } from "./route.ts";
import { DownloadButton, RestoreButton } from "./state-actions.tsx";
import { StateFacts } from "./state-facts.tsx";
import { OutputList, ResourceGroups, unreadable } from "./summary-view.tsx";

export function VersionView({
  ws,
  workspace,
  version,
  lock,
  onChanged,
}: {
  ws: Workspace | undefined;
  workspace: string;
  version: bigint;
  lock: LockInfo | undefined;
  onChanged: () => void;
}) {
  const [res, setRes] = useState<GetStateSummaryResponse | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  useEffect(() => {
    setRes(undefined);
    client.state.getStateSummary({ workspace, version }).then(
      (r) => {
        setRes(r);
        setProblem(undefined);
      },
      (err: unknown) => setProblem(describe(err)),
    );
  }, [workspace, version]);
  const current = ws !== undefined && res?.metadata?.digest === ws.digest;
  const summary = res?.summary;
  return (
    <section class="panel" aria-labelledby="version-title">
      <h2 id="version-title">
        Version {String(version)} {current && <span class="badge current">current</span>}
      </h2>
      <p>
        <a href={workspaceHref(workspace, "versions")}>← All versions</a>
      </p>
      {problem && <ProblemNote problem={problem} />}
      {res && (
        <>
          <StateFacts summary={summary} metadata={res.metadata} />
          <div class="actions">
            {!current && (
              <a class="button" href={diffHref(workspace, version, 0n)}>
                Diff with current
              </a>
            )}
            <DownloadButton ws={ws} workspace={workspace} version={version} id="download-version" />
            {current ? (
              <span class="muted">This version is the current state.</span>
            ) : (
              <RestoreButton
                ws={ws}
                workspace={workspace}
                version={version}
                lock={lock}
                onRestored={onChanged}
              />
            )}
          </div>
          {summary && (
            <>
              <h3>Resources</h3>
              <ResourceGroups summary={summary} />
              {unreadable(summary) === undefined && (
                <>
                  <h3>Outputs</h3>
                  <OutputList outputs={summary.outputs} />
                </>
              )}
            </>
          )}
        </>
      )}
    </section>
  );
}
