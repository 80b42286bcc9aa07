import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { InvalidArgumentError, isTfstateError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { Policy, type PolicySource } from "./policy.ts";

/** Reads a policy file (YAML, or JSON, which YAML reads too); an error names the file and the field. */
export function loadPolicyFile(file: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new InvalidArgumentError(
      `cannot read the policy file ${JSON.stringify(file)}: ${(err as { code?: string }).code ?? String(err)}`,
    );
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new InvalidArgumentError(
      `the policy file ${JSON.stringify(file)} is not valid YAML or JSON: ${(err as Error).message.split("\n")[0]}`,
    );
  }
  try {
    return Policy.fromDocument(doc);
  } catch (err) {
    if (isTfstateError(err)) throw new InvalidArgumentError(`${file}: ${err.message}`);
    throw err;
  }
}

/** The policy file in force, read again by `reload()` (SIGHUP). */
export interface PolicyFileSource extends PolicySource {
  /** True when the file's new content is in force; false when it did not load and the old is kept. */
  reload(): boolean;
}

/** Reads the policy file now (throws on a bad file: the start fails); a bad reload keeps the last. */
export function openPolicyFile(file: string, logger: Logger): PolicyFileSource {
  let current = loadPolicyFile(file);
  return {
    get current() {
      return current;
    },
    reload() {
      try {
        current = loadPolicyFile(file);
        logger.info("policy file reloaded", { policyFile: file });
        return true;
      } catch (err) {
        logger.error("policy file not reloaded: the previous policy stays in force", {
          policyFile: file,
          error: isTfstateError(err) ? err.message : String(err),
        });
        return false;
      }
    },
  };
}
