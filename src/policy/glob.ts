/**
 * Globs for workspace names, token names and claim values: `*` any run of characters (including
 * none and "/"), `?` exactly one; everything else literal. Compiled once per pattern.
 */
const compiled = new Map<string, RegExp>();

export function globMatch(pattern: string, value: string): boolean {
  let re = compiled.get(pattern);
  if (re === undefined) {
    const body = [...pattern]
      .map((c) => (c === "*" ? "[\\s\\S]*" : c === "?" ? "[\\s\\S]" : c.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
      .join("");
    re = new RegExp(`^${body}$`, "u");
    compiled.set(pattern, re);
  }
  return re.test(value);
}
