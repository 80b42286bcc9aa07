import { InvalidArgumentError } from "../errors.ts";
import type { UploadStateHeader, UploadStateRequest } from "../gen/tfstate/v1/state_service_pb.ts";
import type { Md5CheckedStream } from "../oras/state-codec.ts";
import { StateSizeError } from "./size-limits.ts";

/**
 * The chunks of an UploadState stream after its header, checked on the way: no second header, no
 * more than the size announced or the server's maximum, and at the end the announced size. The
 * announced MD5 is checked against the sum the core computes for the state anyway (`checkMd5`), so
 * each byte is hashed once. A failed check throws inside the core's read of the stream, so the core
 * abandons the upload before its manifest is written and the old state stays; `failure` keeps the
 * error so the handler reports it even if the layers in between rewrap it.
 */
export class UploadBody implements Md5CheckedStream {
  readonly #rest: AsyncIterator<UploadStateRequest>;
  readonly #header: UploadStateHeader;
  readonly #maxStateSize: number;
  #failure: Error | undefined;

  constructor(rest: AsyncIterator<UploadStateRequest>, header: UploadStateHeader, maxStateSize: number) {
    this.#rest = rest;
    this.#header = header;
    this.#maxStateSize = maxStateSize;
  }

  get failure(): Error | undefined {
    return this.#failure;
  }

  checkMd5(md5: Uint8Array): void {
    const expected = this.#header.md5;
    if (expected.length === 0 || Buffer.from(md5).equals(expected)) return;
    const err = new InvalidArgumentError(
      `the MD5 of the received state is ${Buffer.from(md5).toString("hex")}, ` +
        `not ${Buffer.from(expected).toString("hex")} as the header says`,
    );
    this.#failure ??= err;
    throw err;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    try {
      yield* this.#chunks();
    } catch (err) {
      this.#failure ??= err instanceof Error ? err : new Error(String(err));
      throw err;
    }
  }

  async *#chunks(): AsyncGenerator<Uint8Array> {
    const announced = this.#header.sizeBytes === undefined ? undefined : Number(this.#header.sizeBytes);
    let received = 0;
    let index = 1;
    for (;;) {
      const next = await this.#rest.next();
      if (next.done) break;
      const { payload } = next.value;
      if (payload.case === "header") {
        throw new InvalidArgumentError(
          `UploadState message ${index} is a second header; only the first may be one`,
        );
      }
      if (payload.case !== "chunk") {
        throw new InvalidArgumentError(`UploadState message ${index} carries neither a header nor a chunk`);
      }
      index++;
      const chunk = payload.value;
      received += chunk.byteLength;
      if (received > this.#maxStateSize) {
        throw new StateSizeError(
          `the uploaded state passed the maximum state size of ${this.#maxStateSize} bytes`,
          this.#maxStateSize,
          received,
          "max_state_size",
        );
      }
      if (announced !== undefined && received > announced) {
        throw new InvalidArgumentError(`received more than the ${announced} bytes the header announced`);
      }
      if (chunk.byteLength > 0) yield chunk;
    }
    if (announced !== undefined && received !== announced) {
      throw new InvalidArgumentError(`received ${received} bytes, but the header announced ${announced}`);
    }
  }
}
