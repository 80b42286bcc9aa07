/**
 * The raw state as a file: DownloadState's chunks (any size, checked against the closing checksum's
 * length) put into a Blob, saved through a `blob:` link made with URL.createObjectURL. A download
 * is not a fetch or a navigation the CSP governs, so no directive has to allow blob: URLs.
 */
import { client } from "./api.ts";

/** Downloads the current state (`version` 0) or one version as `<workspace>[-v<n>].tfstate`. */
export async function downloadState(workspace: string, version: bigint): Promise<void> {
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let received = 0;
  let expected: bigint | undefined;
  for await (const msg of client.state.downloadState({ workspace, version })) {
    if (msg.payload.case === "chunk") {
      parts.push(new Uint8Array(msg.payload.value));
      received += msg.payload.value.length;
    } else if (msg.payload.case === "checksum") {
      expected = msg.payload.value.sizeBytes;
    }
  }
  if (expected === undefined || BigInt(received) !== expected) {
    throw new Error(`the download ended early (${received} bytes received, ${expected ?? "?"} expected)`);
  }
  const url = URL.createObjectURL(new Blob(parts, { type: "application/json" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName(workspace, version);
  document.body.append(a);
  a.click();
  a.remove();
  // The click has handed the Blob to the download by the next task.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function fileName(workspace: string, version: bigint): string {
  const safe = workspace.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^\.+/, "_") || "state";
  return version > 0n ? `${safe}-v${version}.tfstate` : `${safe}.tfstate`;
}
