/** The frame: header with the session, and the screen the hash names. */
import { useEffect, useErrorBoundary, useState } from "preact/hooks";
import { useRoute } from "./route.ts";
import { currentToken, onTokenChange, setToken } from "./session.ts";
import { SignIn } from "./sign-in.tsx";
import { WorkspaceList } from "./workspace-list.tsx";
import { WorkspacePage } from "./workspace-page.tsx";

export function App() {
  const route = useRoute();
  // Bumped on sign-in and sign-out, so every view fetches and watches again with the new token.
  const [session, setSession] = useState(0);
  useEffect(() => onTokenChange(() => setSession((s) => s + 1)), []);
  const signedIn = currentToken() !== undefined;
  // A bug in a screen shows as words, never as a blank page.
  const [crash, resetCrash] = useErrorBoundary();
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="#/">
          oci-tfstate
        </a>
        <nav aria-label="Session">
          {signedIn ? (
            <>
              <span class="muted">Signed in with a token</span>
              <button type="button" class="link" onClick={() => setToken(undefined)}>
                Sign out
              </button>
            </>
          ) : (
            <a href="#/sign-in">Sign in</a>
          )}
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        {crash ? (
          <div class="problem" role="alert">
            <p>This screen failed: {crash instanceof Error ? crash.message : String(crash)}.</p>
            <p>
              <button type="button" onClick={resetCrash}>
                Try again
              </button>
            </p>
          </div>
        ) : route.screen === "sign-in" ? (
          <SignIn />
        ) : route.screen === "workspace" || route.screen === "version" || route.screen === "diff" ? (
          <WorkspacePage key={`${route.name}/${session}`} route={route} session={session} />
        ) : (
          <WorkspaceList key={session} session={session} />
        )}
      </main>
    </>
  );
}
