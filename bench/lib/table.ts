/** Plain-text tables for the terminal (and for pasting into the README as Markdown). */

export type Align = "left" | "right";

/** A Markdown table with padded columns: readable in a terminal, renders on GitHub as is. */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align?: Align[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const cell = (text: string, i: number) => {
    const w = widths[i] ?? 0;
    return (align?.[i] ?? (i === 0 ? "left" : "right")) === "left" ? text.padEnd(w) : text.padStart(w);
  };
  const line = (cells: readonly string[]) =>
    `| ${header.map((_, i) => cell(cells[i] ?? "", i)).join(" | ")} |`;
  const rule = `|${widths
    .map((w, i) =>
      (align?.[i] ?? (i === 0 ? "left" : "right")) === "left"
        ? `:${"-".repeat(w + 1)}`
        : `${"-".repeat(w + 1)}:`,
    )
    .join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}
