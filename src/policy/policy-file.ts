import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { InvalidArgumentError, isTfstateError } from "../errors.ts";
import { Policy } from "./policy.ts";

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
