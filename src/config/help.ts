import { ENV_PREFIX, envName, OPTIONS } from "./options.ts";

/** The --help text, generated from the option table so it cannot drift from what is parsed. */
export function helpText(program = "oci-tfstate"): string {
  const lines = [
    `Usage: ${program} [flags]`,
    `       ${program} token create NAME [--description TEXT]   (a new API token; see token --help)`,
    "",
    "Serves Terraform/OpenTofu state stored in an OCI registry (or an OCI layout directory) over",
    "Connect, gRPC and gRPC-Web, with gRPC health checking, server reflection, /healthz and /readyz.",
    "",
    `Every flag can also be set with its ${ENV_PREFIX}* environment variable; a flag wins over`,
    "its variable. Durations look like 500ms, 30s, 10m or 1h30m; sizes like 268435456, 256MiB or 1GiB.",
    "",
    "Flags:",
  ];
  for (const o of OPTIONS) {
    const usage =
      o.type === "boolean" ? `--${o.flag}, --no-${o.flag}` : `--${o.flag} ${o.placeholder ?? "VALUE"}`;
    lines.push(`  ${usage}`);
    lines.push(`      ${o.help}`);
    const facts = [`env ${envName(o.flag)}`];
    if (o.seed) facts.push(`or ${o.seed.name} (${o.seed.note})`);
    if (o.default !== undefined) facts.push(`default ${o.default}`);
    lines.push(`      [${facts.join("; ")}]`);
  }
  lines.push(
    "  -h, --help",
    "      Show this help and exit.",
    "  --version",
    "      Print the version and exit.",
    "",
    "OpenTelemetry: the SDK starts when any OTEL_* variable is set (OTEL_EXPORTER_OTLP_ENDPOINT,",
    "OTEL_TRACES_EXPORTER, OTEL_SERVICE_NAME, ...), unless OTEL_SDK_DISABLED=true.",
    "",
    "Exit status: 0 after a clean shutdown (SIGTERM or SIGINT), 1 on a runtime failure, 2 for a bad setting.",
  );
  return `${lines.join("\n")}\n`;
}
