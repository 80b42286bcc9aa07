/**
 * The oci-tfstate server process: settings from flags and environment, then the state core, the
 * coordinator and the server, until SIGTERM or SIGINT shut it down gracefully (exit 0). A bad
 * setting prints one line and exits 2.
 */
import { readFileSync } from "node:fs";
import { type AuditLog, openAuditLog } from "./audit/audit-log.ts";
import { createAuthenticator, type IdentityAuthenticator } from "./auth/authenticator.ts";
import { IdentityFileError } from "./auth/config-file.ts";
import { tokenCommand } from "./auth/token-command.ts";
import { backendConfig, storageTarget } from "./config/backend-config.ts";
import { type Config, describeConfig } from "./config/config.ts";
import { exposureRefusal, loopbackOnly } from "./config/exposure.ts";
import { helpText } from "./config/help.ts";
import { identityOptions } from "./config/identity-config.ts";
import { ConfigError, loadConfig } from "./config/load.ts";
import { createCoordinator } from "./coordinator/index.ts";
import { isTfstateError } from "./errors.ts";
import { loadDashboard } from "./http/dashboard.ts";
import { stopGracefully } from "./http/lifecycle.ts";
import { createServer } from "./http/server.ts";
import { createJsonLogger, type Logger } from "./log.ts";
import { createBackend } from "./oras/index.ts";
import { Policy } from "./policy/policy.ts";
import { openPolicyFile, type PolicyFileSource } from "./policy/policy-file.ts";
import { startTelemetry } from "./telemetry/sdk.ts";
import { createTerraformHttpRoute, policyAuthorizer } from "./tfhttp/index.ts";

const PROGRAM = "oci-tfstate";
const EXIT_RUNTIME = 1;
const EXIT_USAGE = 2;

function fail(message: string, code: number): never {
  process.stderr.write(`${PROGRAM}: ${message}\n`);
  process.exit(code);
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as { code?: string }).code ?? (err as Error).message;
    return fail(`cannot read ${flag} ${JSON.stringify(file)}: ${code}`, EXIT_USAGE);
  }
}

/** API tokens and OIDC issuers as configured, or undefined (everyone anonymous); exits 2 on a bad file. */
async function identity(config: Config, logger: Logger): Promise<IdentityAuthenticator | undefined> {
  try {
    const opts = await identityOptions(config, logger);
    return opts === undefined ? undefined : await createAuthenticator(opts);
  } catch (err) {
    if (err instanceof IdentityFileError) fail(err.message, EXIT_USAGE);
    throw err;
  }
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (argv[0] === "token") {
    process.exitCode = tokenCommand(
      argv.slice(1),
      { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) },
      PROGRAM,
    );
    return;
  }
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, EXIT_USAGE);
    throw err;
  }
  if (loaded.kind === "help") {
    process.stdout.write(helpText(PROGRAM));
    return;
  }
  if (loaded.kind === "version") {
    process.stdout.write(`${PROGRAM} ${version()}\n`);
    return;
  }
  const { config, warnings } = loaded;
  const logger = createJsonLogger(config.logLevel);
  for (const w of warnings) logger.warn(w);
  installCrashHandlers(logger);

  const auth = await identity(config, logger);
  const refusal = exposureRefusal(config.listen, auth !== undefined, config.allowAnonymous);
  if (refusal !== undefined) {
    auth?.close();
    fail(refusal, EXIT_USAGE);
  }
  if (auth === undefined && !loopbackOnly(config.listen)) {
    logger.warn(
      "serving anonymous callers beyond loopback (--allow-anonymous): anyone who can reach the port can read and overwrite every state",
    );
  }
  let policy: PolicyFileSource | undefined;
  try {
    policy = config.policyFile === undefined ? undefined : openPolicyFile(config.policyFile, logger);
  } catch (err) {
    if (isTfstateError(err)) fail(`--policy-file: ${err.message}`, EXIT_USAGE);
    throw err;
  }

  const tls = config.tls
    ? { cert: readPem(config.tls.certFile, "--tls-cert"), key: readPem(config.tls.keyFile, "--tls-key") }
    : undefined;

  const audit =
    config.auditLog === undefined ? undefined : openAudit(config.auditLog, config.auditReads, logger);
  const telemetry = await startTelemetry({ enabled: config.telemetry, env, logger });
  let backend: ReturnType<typeof createBackend>;
  try {
    const target = storageTarget(config, logger, `${PROGRAM}/${version()}`);
    backend = createBackend(backendConfig(config, target, logger));
  } catch (err) {
    if (isTfstateError(err) && err.code === "invalid_argument")
      fail(`invalid configuration: ${err.message}`, EXIT_USAGE);
    throw err;
  }
  const coordinator = createCoordinator({
    backend,
    logger,
    watchPollIntervalMs: config.watchPollIntervalMs,
    maxLockWaitMs: config.maxLockWaitMs,
  });
  const server = createServer({
    coordinator,
    logger,
    maxMessageBytes: config.maxMessageBytes,
    bodyIdleTimeoutMs: config.bodyIdleTimeoutMs,
    maxStateSize: config.maxStateSize,
    shutdownGraceMs: config.shutdownGraceMs,
    tls,
    policy,
    allowedOrigins: config.allowedOrigins,
    allowedHosts: config.allowedHosts,
    audit,
    dashboard: await loadDashboard(),
    // Without identity configured: everyone is the anonymous principal (allowAll).
    authenticate: auth?.authenticate,
    routes: [
      createTerraformHttpRoute({
        coordinator,
        logger,
        maxStateSize: config.maxStateSize,
        lockWaitMs: config.httpLockWaitMs,
        authorize: policyAuthorizer(policy ?? Policy.allowAll()),
        audit,
      }),
    ],
  });

  let address: Awaited<ReturnType<typeof server.listen>>;
  try {
    address = await server.listen(config.listen.port, config.listen.host);
  } catch (err) {
    const code = (err as { code?: string }).code ?? (err as Error).message;
    await coordinator.close().catch(() => {});
    auth?.close();
    fail(`cannot listen on ${config.listen.host}:${config.listen.port} (--listen): ${code}`, EXIT_RUNTIME);
  }
  logger.info("listening", {
    url: address.url,
    storage: backend.target.location,
    config: describeConfig(config),
    identity: auth?.describe() ?? "none: every caller is anonymous",
  });

  coordinator.ready({ deadline: Date.now() + 10_000 }).then(
    () => {
      logger.info("storage reachable", { storage: backend.target.location });
      // So `state-default` exists from the start for OCI tools; the store may refuse (read-only).
      coordinator.ensureDefaultWorkspace({ deadline: Date.now() + 10_000 }).then(
        (created) => {
          if (created) logger.info("created the default workspace", { storage: backend.target.location });
        },
        (err: unknown) => logger.warn("could not create the default workspace", { error: err }),
      );
    },
    (err: unknown) => logger.warn("storage not reachable yet; /readyz reports it", { error: err }),
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn("second signal: exiting without waiting", { signal });
      process.exit(EXIT_RUNTIME);
    }
    stopping = true;
    logger.info("shutting down", { signal, graceMs: config.shutdownGraceMs });
    void (async () => {
      let code = 0;
      try {
        await stopGracefully(server, coordinator);
      } catch (err) {
        logger.error("shutdown failed", { error: err });
        code = EXIT_RUNTIME;
      }
      await audit?.close();
      auth?.close();
      await telemetry.shutdown();
      logger.info("stopped", { exitCode: code });
      process.exit(code);
    })();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  if (auth || policy) {
    // SIGHUP reloads the tokens and policy files instead of ending the process; connections stay open.
    process.on("SIGHUP", () => {
      logger.info("SIGHUP: reloading identity and policy", {
        tokensFile: config.tokensFile ?? "none configured",
        policyFile: config.policyFile ?? "none configured",
      });
      if (auth) void auth.reload("SIGHUP");
      policy?.reload();
    });
  }
}

/** Opens --audit-log (a bad path stops the start), reopened on SIGHUP after a rotation. */
function openAudit(destination: string, reads: number, logger: Logger): AuditLog {
  let audit: AuditLog;
  try {
    audit = openAuditLog({ destination, reads, logger });
  } catch (err) {
    const code = (err as { code?: string }).code ?? (err as Error).message;
    return fail(`cannot open --audit-log ${JSON.stringify(destination)}: ${code}`, EXIT_USAGE);
  }
  process.on("SIGHUP", () => audit.reopen());
  return audit;
}

function installCrashHandlers(logger: Logger): void {
  process.on("uncaughtException", (err) => {
    logger.error("uncaught exception", { error: err, stack: err.stack });
    process.exit(EXIT_RUNTIME);
  });
  process.on("unhandledRejection", (reason) => {
    logger.error("unhandled rejection", {
      error: reason,
      stack: reason instanceof Error ? reason.stack : undefined,
    });
    process.exit(EXIT_RUNTIME);
  });
}

main(process.argv.slice(2), process.env).catch((err: unknown) => {
  process.stderr.write(`${PROGRAM}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(EXIT_RUNTIME);
});
