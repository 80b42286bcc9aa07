/**
 * Sign-in with an API token (or a JWT): checked with one ListWorkspaces call, then kept in
 * sessionStorage for this tab only.
 */
import { useState } from "preact/hooks";
import { client, describe, type Problem } from "./api.ts";
import { ProblemNote } from "./problem.tsx";
import { setToken } from "./session.ts";

export function SignIn() {
  const [value, setValue] = useState("");
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const token = value.trim();
    if (token === "") {
      setProblem({ kind: "other", message: "Paste a token first." });
      return;
    }
    setBusy(true);
    try {
      await client.workspaces.listWorkspaces(
        { pageSize: 1 },
        { headers: { authorization: `Bearer ${token}` } },
      );
      setToken(token);
      location.hash = "#/";
    } catch (err) {
      const p = describe(err);
      setProblem(
        p.kind === "unauthenticated"
          ? { kind: "other", message: "The server did not accept this token (401 Unauthenticated)." }
          : p,
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="sign-in-title" class="narrow">
      <h1 id="sign-in-title">Sign in</h1>
      <p>
        Paste an API token (<code>otfs_…</code>, made with <code>oci-tfstate token create</code>) or a JWT of
        a trusted issuer. It stays in this tab only and is sent to this server alone.
      </p>
      <form onSubmit={(e) => void submit(e)}>
        <label>
          API token{" "}
          <input
            type="password"
            name="token"
            autocomplete="off"
            spellcheck={false}
            value={value}
            onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
      {problem && <ProblemNote problem={problem} />}
    </section>
  );
}
