/**
 * Memory of another process from /proc/<pid>/status: VmRSS (resident now) and VmHWM (the peak
 * resident size since the process started; it cannot be reset, so a peak-growth figure needs a
 * fresh process).
 */
import { readFile } from "node:fs/promises";

export interface ProcessMemory {
  rssBytes: number;
  hwmBytes: number;
}

export async function readMemory(pid: number): Promise<ProcessMemory> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return { rssBytes: field(status, "VmRSS"), hwmBytes: field(status, "VmHWM") };
}

function field(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(status);
  if (!m?.[1]) throw new Error(`/proc status has no ${name} line`);
  return Number(m[1]) * 1024;
}

/** Samples VmRSS every `intervalMs` while running, keeping the largest value seen. */
export class RssSampler {
  readonly #pid: number;
  #timer: NodeJS.Timeout | undefined;
  #maxRss = 0;
  #reading = false;

  constructor(pid: number, intervalMs = 20) {
    this.#pid = pid;
    this.#timer = setInterval(() => void this.#sample(), intervalMs);
  }

  async #sample(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    try {
      const { rssBytes } = await readMemory(this.#pid);
      if (rssBytes > this.#maxRss) this.#maxRss = rssBytes;
    } catch {
      // The process is gone; the last value stands.
    } finally {
      this.#reading = false;
    }
  }

  /** Stops sampling (after one last sample) and returns the largest VmRSS seen. */
  async stop(): Promise<number> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sample();
    return this.#maxRss;
  }
}
