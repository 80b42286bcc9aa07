/** What to put in a Terraform/OpenTofu configuration to use a workspace of this service. */
import { useState } from "preact/hooks";

export function backendConfig(origin: string, workspace: string): string {
  const base = `${origin}/terraform/state/${encodeURIComponent(workspace)}`;
  return `terraform {
  backend "http" {
    address        = "${base}"
    lock_address   = "${base}/lock"
    unlock_address = "${base}/lock"
  }
}`;
}

/** The snippet for a workspace of the user's choice (a first `tofu apply` creates it). */
export function NewWorkspaceSnippet({ initial = "my-workspace" }: { initial?: string }) {
  const [name, setName] = useState(initial);
  const shown = name.trim() === "" ? initial : name.trim();
  return (
    <section class="empty" aria-labelledby="new-ws">
      <h2 id="new-ws">Store a new workspace here</h2>
      <p>
        Add this backend to your configuration and run <code>tofu init</code> then <code>tofu apply</code> (or{" "}
        <code>terraform</code>): the workspace appears in this list with its first state. With identity on,
        set <code>TF_HTTP_USERNAME</code> to any name and <code>TF_HTTP_PASSWORD</code> to your token.
      </p>
      <label>
        Workspace name <input value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </label>
      <pre class="snippet">{backendConfig(location.origin, shown)}</pre>
    </section>
  );
}
