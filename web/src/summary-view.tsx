/**
 * What the server reads out of a state (StateSummary): its key figures, its resources grouped by
 * module and type, and its outputs with sensitive values masked. A state that is not Terraform
 * JSON (OpenTofu-encrypted, or any other payload) is said to be so instead.
 */
import {
  StateFormat,
  type StateOutput,
  type StateResource,
  type StateSummary,
} from "@oci-tfstate/client/web";

/** Why resources and outputs cannot be shown, or undefined for a Terraform JSON state. */
export function unreadable(summary: StateSummary | undefined): string | undefined {
  if (summary === undefined) return undefined;
  switch (summary.format) {
    case StateFormat.TERRAFORM_JSON:
      return undefined;
    case StateFormat.ENCRYPTED:
      return "This state is encrypted (OpenTofu client-side encryption): the server cannot read its resources or outputs. History, download and restore still work.";
    default:
      return `This state is not Terraform state JSON${summary.detail ? ` (${summary.detail})` : ""}: the server cannot read its resources or outputs. History, download and restore still work.`;
  }
}

export function formatName(format: StateFormat): string {
  switch (format) {
    case StateFormat.TERRAFORM_JSON:
      return "Terraform state JSON";
    case StateFormat.ENCRYPTED:
      return "encrypted (OpenTofu)";
    case StateFormat.OPAQUE:
      return "not Terraform JSON";
    default:
      return "unknown";
  }
}

/** The full note (under the header), or one line for a tab naming what cannot be listed. */
export function FormatNote({ summary, what }: { summary: StateSummary | undefined; what?: string }) {
  const why = unreadable(summary);
  if (why === undefined || summary === undefined) return null;
  return (
    <p class={what ? "muted" : "note"} data-testid="format-note">
      {what ? `The ${what} cannot be listed: the state is ${formatName(summary.format)}.` : why}
    </p>
  );
}

/** Resources by module (root first), then by type, with each block's instance count. */
export function ResourceGroups({ summary }: { summary: StateSummary }) {
  if (unreadable(summary) !== undefined) return <FormatNote summary={summary} what="resources" />;
  if (summary.resources.length === 0) {
    return <p>This state manages no resources.</p>;
  }
  const modules = new Map<string, Map<string, StateResource[]>>();
  for (const r of summary.resources) {
    const byType = modules.get(r.module) ?? new Map<string, StateResource[]>();
    modules.set(r.module, byType);
    const type = r.mode === "data" ? `data.${r.type}` : r.type;
    byType.set(type, [...(byType.get(type) ?? []), r]);
  }
  const order = [...modules.keys()].sort((a, b) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1));
  return (
    <div data-testid="resources">
      <p class="muted">
        {String(summary.resourceCount)} managed instance{summary.resourceCount === 1n ? "" : "s"}
        {summary.dataSourceCount > 0n ? `, ${summary.dataSourceCount} data source instance(s)` : ""}.
        {summary.resourcesTruncated
          ? " The state lists more resources than the server sends; the first are shown."
          : ""}
      </p>
      {order.map((module) => {
        const byType = modules.get(module) ?? new Map<string, StateResource[]>();
        return (
          <section key={module} class="group" aria-label={module || "root module"}>
            <h3 class="mono">{module || "root module"}</h3>
            <table class="grid">
              <thead>
                <tr>
                  <th scope="col">Type</th>
                  <th scope="col">Address</th>
                  <th scope="col">Instances</th>
                  <th scope="col">Provider</th>
                </tr>
              </thead>
              <tbody>
                {[...byType.entries()]
                  .sort(([a], [b]) => (a < b ? -1 : 1))
                  .flatMap(([type, list]) =>
                    list.map((r) => (
                      <tr key={r.address} data-resource={r.address}>
                        <td data-label="Type" class="mono">
                          {type}
                        </td>
                        <td data-label="Address" class="mono wrap">
                          {r.address}
                        </td>
                        <td data-label="Instances">{String(r.instanceCount)}</td>
                        <td data-label="Provider" class="mono wrap muted">
                          {shortProvider(r.provider)}
                        </td>
                      </tr>
                    )),
                  )}
              </tbody>
            </table>
          </section>
        );
      })}
    </div>
  );
}

/** `provider["registry.opentofu.org/hashicorp/null"]` reads as `hashicorp/null`. */
function shortProvider(p: string): string {
  const m = /provider\["(?:[^/"]+\/)?([^"]+)"\]/.exec(p);
  return m?.[1] ?? p;
}

export function OutputList({ outputs }: { outputs: readonly StateOutput[] }) {
  if (outputs.length === 0) return <p>This state has no outputs.</p>;
  return (
    <table class="grid" data-testid="outputs">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Value</th>
          <th scope="col">Type</th>
        </tr>
      </thead>
      <tbody>
        {outputs.map((o) => (
          <tr key={o.name} data-output={o.name}>
            <td data-label="Name" class="mono">
              {o.name}
            </td>
            <td data-label="Value">
              <OutputValue output={o} />
            </td>
            <td data-label="Type" class="mono muted">
              {o.typeJson || "—"}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function OutputValue({ output }: { output: StateOutput | undefined }) {
  if (output === undefined) return <span class="muted">—</span>;
  if (output.sensitive) {
    return (
      <span class="masked" title="Sensitive: the server never sends the value">
        ●●●●●● (sensitive)
      </span>
    );
  }
  return <code class="value wrap">{pretty(output.valueJson)}</code>;
}

function pretty(json: string): string {
  try {
    const v: unknown = JSON.parse(json);
    return typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v, null, 1).replace(/\n\s*/g, " ");
  } catch {
    return json;
  }
}
