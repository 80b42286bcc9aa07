/** A state's key figures: serial, lineage, tool version, when written, size, version, digest. */
import { StateFormat, type StateMetadata, type StateSummary } from "@oci-tfstate/client/web";
import { ago, bytes, dateOf, exact } from "./format.ts";
import { FormatNote, formatName } from "./summary-view.tsx";

export function StateFacts({
  summary,
  metadata,
}: {
  summary: StateSummary | undefined;
  metadata: Pick<StateMetadata, "updateTime" | "version" | "digest" | "storedSizeBytes"> | undefined;
}) {
  const updated = dateOf(metadata?.updateTime);
  const json = summary?.format === StateFormat.TERRAFORM_JSON;
  // An encrypted envelope may carry serial and lineage; 0 and "" mean it did not.
  const serial = summary && (json || summary.serial > 0n) ? String(summary.serial) : "—";
  return (
    <>
      <dl class="facts" data-testid="state-facts">
        <dt>Serial</dt>
        <dd>{serial}</dd>
        <dt>Lineage</dt>
        <dd class="mono wrap">{summary?.lineage || "—"}</dd>
        <dt>Tool version</dt>
        <dd>{summary?.terraformVersion || "—"}</dd>
        <dt>Updated</dt>
        <dd title={exact(updated)}>{updated ? `${ago(updated)} (${exact(updated)})` : "—"}</dd>
        <dt>Format</dt>
        <dd>{summary ? formatName(summary.format) : "…"}</dd>
        <dt>Size</dt>
        <dd>{metadata ? bytes(metadata.storedSizeBytes) : "—"}</dd>
        <dt>Version</dt>
        <dd>{metadata && metadata.version > 0n ? `v${metadata.version}` : "not versioned"}</dd>
        <dt>Digest</dt>
        <dd class="mono wrap">{metadata?.digest || "—"}</dd>
      </dl>
      <FormatNote summary={summary} />
    </>
  );
}
