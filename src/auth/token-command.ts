/**
 * `oci-tfstate token create NAME [--description TEXT]`: makes a new API token. The secret is
 * printed once, alone on stdout (so `TOKEN=$(oci-tfstate token create ci)` captures just it); the
 * entry for the tokens file, which holds only the secret's SHA-256, goes to stderr after a comment
 * line saying where to put it (so `2>> tokens.yaml` appends it to a file whose list comes last).
 * Nothing is written anywhere else.
 */
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { TOKEN_NAME, TOKEN_NAME_RULE } from "./token-file.ts";
import { newSecret, sha256 } from "./token-set.ts";

export interface CommandOutput {
  stdout(text: string): void;
  stderr(text: string): void;
}

const TOKENS_FILE_ENV = "OCI_TFSTATE_TOKENS_FILE";

export const EXIT_OK = 0;
export const EXIT_USAGE = 2;

export function tokenUsage(program: string): string {
  return [
    `Usage: ${program} token create NAME [--description TEXT]`,
    "",
    "Makes a new API token. The secret is printed once on stdout; the entry for the tokens file",
    "(--tokens-file), which holds only the secret's SHA-256, is printed on stderr. Add the entry",
    "under `tokens:` in that file; the server picks it up without a restart (or on SIGHUP).",
    `NAME is ${TOKEN_NAME_RULE}; it names the caller in logs, audit records and policy rules.`,
    "",
  ].join("\n");
}

/** The entry for the tokens file, indented as an item of its `tokens:` list. */
export function tokenEntryYaml(name: string, secret: string, description?: string): string {
  const entry: Record<string, string> = { name, sha256: sha256(secret).toString("hex") };
  if (description !== undefined) entry.description = description;
  return stringify([entry], { lineWidth: 0 })
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => `  ${l}\n`)
    .join("");
}

/** Runs `token ...` with the arguments after `token`; returns the exit status. */
export function tokenCommand(args: readonly string[], out: CommandOutput, program: string): number {
  const usageError = (message: string) => {
    out.stderr(`${program}: ${message} (see ${program} token --help)\n`);
    return EXIT_USAGE;
  };
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (err) {
    return usageError((err as Error).message.split("\n")[0] ?? "bad arguments");
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    out.stdout(tokenUsage(program));
    return EXIT_OK;
  }
  const [command, name, ...extra] = positionals;
  if (command !== "create") {
    return usageError(
      command === undefined
        ? "token needs a command: create"
        : `unknown token command ${JSON.stringify(command)}`,
    );
  }
  if (name === undefined) return usageError("token create needs a NAME");
  if (extra.length > 0) return usageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  if (!TOKEN_NAME.test(name))
    return usageError(`invalid token name ${JSON.stringify(name)}: a name is ${TOKEN_NAME_RULE}`);
  const secret = newSecret();
  out.stdout(`${secret}\n`);
  out.stderr(
    // A YAML comment: stderr appended to a tokens file whose list comes last is still a valid file.
    `# Add under \`tokens:\` in the --tokens-file (${TOKENS_FILE_ENV}); the secret on stdout is shown only once.\n` +
      tokenEntryYaml(name, secret, values.description),
  );
  return EXIT_OK;
}

function parse(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    options: { description: { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
    allowPositionals: true,
  });
}
