/**
 * The message compressions the server offers. connect-node's own gzip and br use zlib's defaults
 * (gzip level 6, brotli quality 11); brotli at quality 11 costs well over a second per MiB of state,
 * which would make compressing a download slower than sending it. Responses are compressed at
 * speeds that keep up with the network; requests are decompressed by connect-node's codecs, which
 * enforce the read limit.
 */
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import type { Compression } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";

/** Messages smaller than this are sent as they are: the saving would not pay for the CPU. */
export const COMPRESS_MIN_BYTES = 1024;

/** Brotli's fast range: close to gzip's speed with a better ratio (11, the default, is far slower). */
const BROTLI_QUALITY = 4;

const gzip = promisify(zlib.gzip);
const brotliCompress = promisify(zlib.brotliCompress);

const fastGzip: Compression = {
  name: compressionGzip.name,
  compress: async (bytes) => arrayBufferBacked(await gzip(bytes, { level: zlib.constants.Z_BEST_SPEED })),
  decompress: compressionGzip.decompress,
};

const fastBrotli: Compression = {
  name: compressionBrotli.name,
  compress: async (bytes) =>
    arrayBufferBacked(
      await brotliCompress(bytes, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.byteLength,
        },
      }),
    ),
  decompress: compressionBrotli.decompress,
};

/** A request may use either; a response uses the first one in the client's accept list that is here. */
export const SERVER_COMPRESSIONS: readonly Compression[] = [fastGzip, fastBrotli];

function arrayBufferBacked(buf: Buffer): Uint8Array<ArrayBuffer> {
  return buf.buffer instanceof ArrayBuffer
    ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
    : new Uint8Array(buf);
}
