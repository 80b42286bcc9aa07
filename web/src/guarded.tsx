/**
 * A button the principal may not be able to use: disabled with the reason beside it (a missing
 * permission known up front, a 403 the server gave this session, or a state of the workspace such
 * as a lock), and the reason tied to the button for screen readers.
 */
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { describe, type Problem } from "./api.ts";
import { refusals } from "./permissions.ts";

export function GuardedButton({
  id,
  reason,
  busy = false,
  danger = false,
  onClick,
  children,
}: {
  /** Unique on the page: the reason's element is `<id>-reason`. */
  id: string;
  reason: string | undefined;
  busy?: boolean;
  danger?: boolean;
  onClick: () => void;
  children: ComponentChildren;
}) {
  const why = `${id}-reason`;
  return (
    <span class="guarded">
      <button
        type="button"
        class={danger ? "danger" : undefined}
        data-action={id}
        disabled={reason !== undefined || busy}
        aria-describedby={reason ? why : undefined}
        onClick={onClick}
      >
        {children}
      </button>
      {reason && (
        <span id={why} class="reason">
          {reason}
        </span>
      )}
    </span>
  );
}

/**
 * Runs calls for one action on one workspace: a 403 is remembered for the session and becomes the
 * button's reason; any other failure is returned for the screen to show.
 */
export function useGuardedCall(workspace: string, action: string) {
  const [denied, setDenied] = useState(refusals.get(workspace, action));
  useEffect(() => refusals.subscribe(() => setDenied(refusals.get(workspace, action))), [workspace, action]);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const run = async (call: () => Promise<void>): Promise<boolean> => {
    setBusy(true);
    try {
      await call();
      setProblem(undefined);
      return true;
    } catch (err) {
      const p = describe(err);
      if (p.kind === "denied") {
        refusals.set(workspace, action, p.message);
      } else {
        setProblem(p);
      }
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { denied, busy, problem, run };
}
