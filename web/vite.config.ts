/**
 * Builds the dashboard into web/dist, which the server serves (src/http/dashboard.ts) and git keeps
 * (scripts/check-web.sh rebuilds it in CI and fails when it differs). The API client is the
 * TypeScript client package's browser entry, taken from its sources (clients/ts/src/web.ts) with
 * the generated code it carries, so there is one copy of the generated code for both.
 */
import path from "node:path";
import { defineConfig } from "vite";

const root = import.meta.dirname;

export default defineConfig({
  root,
  base: "/",
  publicDir: path.join(root, "public"),
  resolve: {
    alias: { "@oci-tfstate/client/web": path.resolve(root, "../clients/ts/src/web.ts") },
  },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: path.join(root, "dist"),
    emptyOutDir: true,
    target: "es2022",
    // The polyfill is an inline-free helper for old browsers; every browser the CSP targets has it.
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    sourcemap: false,
  },
});
