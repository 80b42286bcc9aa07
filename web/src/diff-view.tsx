/**
 * Two revisions of a workspace compared on the server (DiffVersions): "serial a → b", resources
 * added, removed and changed (with the changed attribute paths, never values), outputs changed
 * (sensitive values masked). A side that is not Terraform JSON cannot be compared; that is said.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ChangeKind, type DiffVersionsResponse } from "@oci-tfstate/client/web";
import { useEffect, useState } from "preact/hooks";
import { client, describe, type Problem } from "./api.ts";
import { ProblemNote } from "./problem.tsx";
import { versionHref, workspaceHref } from "./route.ts";
import { OutputValue } from "./summary-view.tsx";

const KIND: Record<number, string> = {
  [ChangeKind.ADDED]: "added",
  [ChangeKind.REMOVED]: "removed",
  [ChangeKind.CHANGED]: "changed",
};

export function DiffView({ workspace, from, to }: { workspace: string; from: bigint; to: bigint }) {
  const [diff, setDiff] = useState<DiffVersionsResponse | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  useEffect(() => {
    setDiff(undefined);
    client.state.diffVersions({ workspace, fromVersion: from, toVersion: to }).then(
      (res) => {
        setDiff(res);
        setProblem(undefined);
      },
      (err: unknown) => {
        const e = ConnectError.from(err);
        // Not a lock here: a side that cannot be read as Terraform JSON.
        setProblem(
          e.code === Code.FailedPrecondition
            ? { kind: "other", message: `These versions cannot be compared: ${e.rawMessage}.` }
            : describe(err),
        );
      },
    );
  }, [workspace, from, to]);

  const side = (v: bigint) => (v === 0n ? "the current state" : `v${v}`);
  return (
    <section aria-labelledby="diff-title" class="panel">
      <h2 id="diff-title">
        {diff ? `Serial ${diff.from?.serial ?? "?"} → ${diff.to?.serial ?? "?"}` : "Diff"}
      </h2>
      <p class="muted">
        {side(from)} ({from > 0n ? <a href={versionHref(workspace, from)}>view</a> : "current"}) compared with{" "}
        {side(to)}
        {to > 0n ? (
          <>
            {" "}
            (<a href={versionHref(workspace, to)}>view</a>)
          </>
        ) : null}
        . <a href={workspaceHref(workspace, "versions")}>All versions</a>
      </p>
      {problem && <ProblemNote problem={problem} />}
      {!diff && !problem && <p aria-live="polite">Comparing…</p>}
      {diff && <DiffBody diff={diff} />}
    </section>
  );
}

function DiffBody({ diff }: { diff: DiffVersionsResponse }) {
  const count = (k: ChangeKind) => diff.resources.filter((r) => r.kind === k).length;
  const lineageDiffers = diff.from && diff.to && diff.from.lineage !== diff.to.lineage;
  return (
    <>
      {lineageDiffers && (
        <p class="note">
          The two sides have different lineages ({diff.from?.lineage || "none"} and{" "}
          {diff.to?.lineage || "none"}): they are different states, not revisions of one.
        </p>
      )}
      <p data-testid="diff-counts">
        Resources: {count(ChangeKind.ADDED)} added, {count(ChangeKind.REMOVED)} removed,{" "}
        {count(ChangeKind.CHANGED)} changed. Outputs: {diff.outputs.length} changed.
      </p>
      <h3>Resources</h3>
      {diff.resources.length === 0 ? (
        <p>No resource differs.</p>
      ) : (
        <ul class="changes" data-testid="resource-changes">
          {diff.resources.map((r) => (
            <li key={r.address} class={`change ${KIND[r.kind] ?? ""}`} data-address={r.address}>
              <span class={`kind ${KIND[r.kind] ?? ""}`}>{KIND[r.kind] ?? "?"}</span>{" "}
              <code class="wrap">{r.address}</code>
              {r.changedPaths.length > 0 && (
                <ul class="paths">
                  {r.changedPaths.map((p) => (
                    <li key={p}>
                      <code class="wrap">{p}</code>
                    </li>
                  ))}
                </ul>
              )}
              {r.pathsTruncated && <span class="muted"> (more paths changed than listed)</span>}
            </li>
          ))}
        </ul>
      )}
      {diff.pathsTruncated && (
        <p class="muted">
          More instances changed than the server details: later ones show their address only.
        </p>
      )}
      <h3>Outputs</h3>
      {diff.outputs.length === 0 ? (
        <p>No output differs.</p>
      ) : (
        <table class="grid" data-testid="output-changes">
          <thead>
            <tr>
              <th scope="col">Output</th>
              <th scope="col">Change</th>
              <th scope="col">Before</th>
              <th scope="col">After</th>
            </tr>
          </thead>
          <tbody>
            {diff.outputs.map((o) => (
              <tr key={o.name} data-output={o.name}>
                <td data-label="Output" class="mono">
                  {o.name}
                </td>
                <td data-label="Change">
                  <span class={`kind ${KIND[o.kind] ?? ""}`}>{KIND[o.kind] ?? "?"}</span>
                </td>
                <td data-label="Before">
                  <OutputValue output={o.from} />
                </td>
                <td data-label="After">
                  <OutputValue output={o.to} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
