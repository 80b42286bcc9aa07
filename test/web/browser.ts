/**
 * Debian's Chromium (`apt-get install chromium`, as .ci/run does) driven by playwright-core: no
 * browser is ever downloaded. A missing Chromium fails the test that asked for it, naming the fix.
 * Every page records its console errors, page errors and any request that leaves the server's
 * origin (the dashboard must make none).
 */
import { existsSync } from "node:fs";
import { after } from "node:test";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

export const CHROMIUM_PATH = process.env.OCI_TFSTATE_CHROMIUM ?? "/usr/bin/chromium";

let launched: Promise<Browser> | undefined;
// Registered at import (the top level of the test file): one registered inside a test runs when it ends.
after(async () => {
  const b = await launched?.catch(() => undefined);
  await b?.close();
});

/** One headless Chromium for the test file, closed once its tests are done. */
export function browser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}: install Debian's chromium package ` +
        "(apt-get install chromium; .ci/run does) or set OCI_TFSTATE_CHROMIUM to its path",
    );
  }
  launched ??= chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // Root in CI: Chromium's sandbox needs user namespaces it may not have there.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  return launched;
}

export interface Watched {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught page errors, CSP violations among them. */
  errors: string[];
  /** URLs requested outside the server's origin (blocked). */
  foreign: string[];
}

/** A fresh context (its own sessionStorage) with a page on `origin`, watched. */
export async function openPage(
  origin: string,
  viewport: { width: number; height: number } = { width: 1280, height: 800 },
): Promise<Watched> {
  const context = await (await browser()).newContext({ viewport });
  const errors: string[] = [];
  const foreign: string[] = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`) || url === origin) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  return { context, page, errors, foreign };
}

/** Console errors that are CSP violations. */
export const cspViolations = (errors: readonly string[]) =>
  errors.filter((e) => /content security policy/i.test(e));
