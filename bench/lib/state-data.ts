/**
 * Terraform-shaped state content of an exact size, made on the fly from a seed: JSON resources
 * with random IDs and addresses, so it compresses about as well as real state does (several
 * times), unlike random bytes. The same seed gives the same bytes, so a large state can be hashed
 * in one pass and sent in another without ever being held in memory whole.
 */

/** The serial is written as "1" and 9 digits, so it keeps its width (and stays a valid number). */
const SERIAL_DIGITS = 10;
const serialText = (n: number) =>
  `1${String(n % 10 ** (SERIAL_DIGITS - 1)).padStart(SERIAL_DIGITS - 1, "0")}`;
const HEAD = `{"version":4,"terraform_version":"1.9.5","serial":`;
/** Where the serial's digits start; `setSerial` rewrites them in place. */
export const SERIAL_OFFSET = HEAD.length;
const LINEAGE_AND_RESOURCES = `,"lineage":"5f3c2a9e-7d41-4b8a-9c6e-2b1f0e8d7a63","outputs":{},"resources":[`;
const TAIL = "]}\n";
const PAD_OPEN = `{"mode":"data","type":"terraform_remote_state","name":"padding","instances":[{"attributes":{"pad":"`;
const PAD_CLOSE = `"}}]}`;

/** xorshift32: fast, deterministic, good enough for made-up IDs. */
class Random {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.#s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s = x >>> 0;
    return this.#s;
  }
  hex(chars: number): string {
    let out = "";
    while (out.length < chars) out += this.next().toString(16).padStart(8, "0");
    return out.slice(0, chars);
  }
  int(n: number): number {
    return this.next() % n;
  }
}

function resource(r: Random, i: number): string {
  const id = r.hex(17);
  const ip = `10.${r.int(256)}.${r.int(256)}.${r.int(256)}`;
  return (
    `{"mode":"managed","type":"aws_instance","name":"web_${i}",` +
    `"provider":"provider[\\"registry.terraform.io/hashicorp/aws\\"]","instances":[{"schema_version":1,` +
    `"attributes":{"id":"i-${id}","arn":"arn:aws:ec2:eu-west-1:123456789012:instance/i-${id}",` +
    `"ami":"ami-${r.hex(17)}","instance_type":"t3.micro","availability_zone":"eu-west-1${"abc"[r.int(3)]}",` +
    `"private_ip":"${ip}","private_dns":"ip-${ip.replaceAll(".", "-")}.eu-west-1.compute.internal",` +
    `"subnet_id":"subnet-${r.hex(17)}","vpc_security_group_ids":["sg-${r.hex(17)}"],` +
    `"root_block_device":[{"volume_id":"vol-${r.hex(17)}","volume_size":8,"volume_type":"gp3",` +
    `"encrypted":true,"delete_on_termination":true}],"tags":{"Name":"web-${i}","team":"platform"}},` +
    `"sensitive_attributes":[],"private":"${r.hex(64)}"}]}`
  );
}

/**
 * The state as chunks of `chunkBytes` (the last one shorter), `totalBytes` in all. Each chunk is a
 * fresh buffer the caller may keep or drop.
 */
export function* stateChunks(totalBytes: number, seed: number, chunkBytes: number): Generator<Buffer> {
  const fixed = HEAD.length + SERIAL_DIGITS + LINEAGE_AND_RESOURCES.length + TAIL.length;
  const padFixed = PAD_OPEN.length + PAD_CLOSE.length + 1; // +1 for the comma before it
  if (totalBytes < fixed + padFixed) throw new Error(`a state needs at least ${fixed + padFixed} bytes`);
  const r = new Random(seed);
  let chunk = Buffer.allocUnsafe(chunkBytes);
  let used = 0;
  let written = 0;
  function* emit(text: string): Generator<Buffer> {
    let src = Buffer.from(text, "latin1");
    while (src.length > 0) {
      const n = Math.min(src.length, chunkBytes - used);
      src.copy(chunk, used, 0, n);
      used += n;
      written += n;
      src = src.subarray(n);
      if (used === chunkBytes) {
        yield chunk;
        chunk = Buffer.allocUnsafe(chunkBytes);
        used = 0;
      }
    }
  }
  yield* emit(HEAD + serialText(1) + LINEAGE_AND_RESOURCES);
  let i = 0;
  for (;;) {
    const next = (i === 0 ? "" : ",") + resource(r, i);
    // Always leave room for the padding resource (at least one pad byte) and the tail.
    if (written + next.length + padFixed + 1 + TAIL.length > totalBytes) break;
    yield* emit(next);
    i++;
  }
  const padLength =
    totalBytes - written - TAIL.length - PAD_OPEN.length - PAD_CLOSE.length - (i === 0 ? 0 : 1);
  yield* emit(`${i === 0 ? "" : ","}${PAD_OPEN}${"x".repeat(padLength)}${PAD_CLOSE}${TAIL}`);
  if (used > 0) yield chunk.subarray(0, used);
}

/** The whole state in one buffer. */
export function stateBytes(totalBytes: number, seed: number): Buffer {
  return Buffer.concat([...stateChunks(totalBytes, seed, 1024 * 1024)]);
}

/** Rewrites the serial in place, so every write of the same buffer is new content. */
export function setSerial(state: Buffer, serial: number): void {
  state.write(serialText(serial), SERIAL_OFFSET, "latin1");
}

/**
 * A large state made fast: `distinct` chunks of Terraform-shaped text are made once, then sent in
 * turn, each copy stamped with its index so no two chunks are equal. For throughput figures the
 * generator must not be the bottleneck; the content is not valid JSON as a whole, which the
 * service does not care about (it stores bytes as they are).
 */
export function* cycledChunks(
  totalBytes: number,
  seed: number,
  chunkBytes: number,
  distinct = 16,
): Generator<Buffer> {
  const pool = [...stateChunks(Math.min(totalBytes, distinct * chunkBytes), seed, chunkBytes)];
  let sent = 0;
  for (let i = 0; sent < totalBytes; i++) {
    const source = pool[i % pool.length] as Buffer;
    const size = Math.min(chunkBytes, totalBytes - sent, source.length);
    const chunk = Buffer.allocUnsafe(size);
    source.copy(chunk, 0, 0, size);
    if (size >= 16) chunk.write(`{"chunk":${String(i).padStart(6, "0")}`.slice(0, 16), 0, "latin1");
    sent += size;
    yield chunk;
  }
}
