/** An error in words, with what to do about it. */
import type { Problem } from "./api.ts";

export function ProblemNote({ problem }: { problem: Problem }) {
  return (
    <div class="problem" role="alert">
      <p>{problem.message}</p>
      {problem.kind === "unauthenticated" && (
        <p>
          <a href="#/sign-in">Sign in with an API token</a>
        </p>
      )}
    </div>
  );
}
