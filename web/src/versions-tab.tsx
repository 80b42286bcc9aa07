/**
 * A workspace's history (ListVersions, newest first): version, time, serial, size and which one is
 * current, with View, Diff against current, Download and Restore per row, and a picker to compare
 * any two. The serial is not in the listing: each row's comes from GetStateSummary of that version
 * (cached per digest on the server), a few at a time.
 */
import { type LockInfo, StateFormat, type StateVersion, type Workspace } from "@oci-tfstate/client/web";
import { useEffect, useState } from "preact/hooks";
import { client, describe, type Problem } from "./api.ts";
import { ago, bytes, dateOf, exact } from "./format.ts";
import { missing } from "./permissions.ts";
import { ProblemNote } from "./problem.tsx";
import { diffHref, versionHref } from "./route.ts";
import { DownloadButton, RestoreButton } from "./state-actions.tsx";

const PAGE_SIZE = 50;
const SERIAL_READS_AT_ONCE = 3;

export function VersionsTab({
  ws,
  workspace,
  lock,
  onChanged,
}: {
  ws: Workspace | undefined;
  workspace: string;
  lock: LockInfo | undefined;
  onChanged: () => void;
}) {
  const [versions, setVersions] = useState<StateVersion[] | undefined>(undefined);
  const [next, setNext] = useState<string | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [serials, setSerials] = useState<ReadonlyMap<bigint, string>>(new Map());
  const noRead = missing(ws, "read");

  const load = async (token: string) => {
    try {
      const res = await client.state.listVersions({ workspace, pageSize: PAGE_SIZE, pageToken: token });
      setVersions((v) => (token === "" || v === undefined ? res.versions : [...v, ...res.versions]));
      setNext(res.nextPageToken || undefined);
      setProblem(undefined);
    } catch (err) {
      setProblem(describe(err));
    }
  };
  // Listed again when the current state changes (a write, a restore).
  useEffect(() => {
    if (noRead === undefined) void load("");
  }, [workspace, ws?.digest, noRead]);

  useEffect(() => {
    if (versions === undefined) return;
    let stopped = false;
    const todo = versions.filter((v) => !serials.has(v.number));
    const work = async () => {
      while (!stopped) {
        const v = todo.shift();
        if (v === undefined) return;
        let text: string;
        try {
          const res = await client.state.getStateSummary({ workspace, version: v.number });
          const s = res.summary;
          const readable = s !== undefined && (s.format === StateFormat.TERRAFORM_JSON || s.serial > 0n);
          text = readable ? String(s.serial) : "—";
        } catch {
          text = "—";
        }
        if (!stopped) setSerials((m) => new Map(m).set(v.number, text));
      }
    };
    for (let i = 0; i < SERIAL_READS_AT_ONCE; i++) void work();
    return () => {
      stopped = true;
    };
  }, [versions]);

  if (noRead) return <p class="reason">The history is not shown: {noRead}.</p>;
  if (problem) return <ProblemNote problem={problem} />;
  if (versions === undefined) return <p aria-live="polite">Loading versions…</p>;
  if (versions.length === 0) {
    return (
      <p>
        No versions are kept for this workspace. The server keeps a history only when started with{" "}
        <code>--max-versions</code> (or <code>OCI_TFSTATE_MAX_VERSIONS</code>).
      </p>
    );
  }
  return (
    <div>
      <ComparePicker workspace={workspace} versions={versions} />
      <table class="grid versions">
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Written</th>
            <th scope="col">Serial</th>
            <th scope="col">Size</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {versions.map((v) => {
            const current = ws !== undefined && v.digest === ws.digest;
            const written = dateOf(v.updateTime);
            return (
              <tr key={String(v.number)} data-version={String(v.number)}>
                <td data-label="Version">
                  <a href={versionHref(workspace, v.number)}>v{String(v.number)}</a>{" "}
                  {current && <span class="badge current">current</span>}
                </td>
                <td data-label="Written" title={exact(written)}>
                  {ago(written)}
                </td>
                <td data-label="Serial">{serials.get(v.number) ?? "…"}</td>
                <td data-label="Size">{bytes(v.storedSizeBytes)}</td>
                <td data-label="Actions">
                  <div class="row-actions">
                    <a class="button" href={versionHref(workspace, v.number)}>
                      View
                    </a>
                    {current ? null : (
                      <a class="button" href={diffHref(workspace, v.number, 0n)}>
                        Diff with current
                      </a>
                    )}
                    <DownloadButton
                      ws={ws}
                      workspace={workspace}
                      version={v.number}
                      id={`download-${v.number}`}
                    />
                    {!current && (
                      <RestoreButton
                        ws={ws}
                        workspace={workspace}
                        version={v.number}
                        lock={lock}
                        onRestored={onChanged}
                      />
                    )}
                  </div>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {next && (
        <button type="button" onClick={() => void load(next)}>
          Load {PAGE_SIZE} more versions
        </button>
      )}
    </div>
  );
}

/** Compare any two versions (or one with the current state). */
function ComparePicker({ workspace, versions }: { workspace: string; versions: readonly StateVersion[] }) {
  const oldest = versions.at(-1)?.number ?? 1n;
  const [from, setFrom] = useState(String(versions[1]?.number ?? oldest));
  const [to, setTo] = useState("0");
  return (
    <form
      class="controls compare"
      onSubmit={(e) => {
        e.preventDefault();
        location.hash = diffHref(workspace, BigInt(from), BigInt(to));
      }}
    >
      <label>
        Compare{" "}
        <select value={from} onChange={(e) => setFrom((e.target as HTMLSelectElement).value)}>
          {versions.map((v) => (
            <option key={String(v.number)} value={String(v.number)}>
              v{String(v.number)}
            </option>
          ))}
        </select>
      </label>
      <label>
        with{" "}
        <select value={to} onChange={(e) => setTo((e.target as HTMLSelectElement).value)}>
          <option value="0">the current state</option>
          {versions.map((v) => (
            <option key={String(v.number)} value={String(v.number)}>
              v{String(v.number)}
            </option>
          ))}
        </select>
      </label>
      <button type="submit">Show diff</button>
    </form>
  );
}
