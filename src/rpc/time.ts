/**
 * RFC 3339 strings (as Terraform and the registry annotations carry them, with Go's nanoseconds)
 * to and from google.protobuf.Timestamp, without losing the nanoseconds on either side.
 */
import { create } from "@bufbuild/protobuf";
import { type Timestamp, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError } from "../errors.ts";

const RFC3339 = /^(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;
/** Go's zero time, which Terraform writes for "no time". */
const GO_ZERO_TIME = "0001-01-01T00:00:00Z";

/** The instant an RFC 3339 string names; undefined for an empty string, Go's zero time, or garbage. */
export function timestampFromRfc3339(text: string | undefined): Timestamp | undefined {
  if (text === undefined || text === "" || text === GO_ZERO_TIME) return undefined;
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [, whole = "", fraction = "", zone = "Z"] = m;
  const ms = Date.parse(`${whole.replace(/[t ]/, "T")}${zone.toUpperCase()}`);
  if (Number.isNaN(ms)) return undefined;
  return create(TimestampSchema, {
    seconds: BigInt(Math.floor(ms / 1000)),
    nanos: fraction === "" ? 0 : Number(fraction.padEnd(9, "0")),
  });
}

/** Go's time.RFC3339Nano in UTC: trailing zeros of the fraction trimmed, no fraction when zero. */
export function rfc3339FromTimestamp(ts: Timestamp): string {
  const seconds = Number(ts.seconds);
  if (!Number.isSafeInteger(seconds) || ts.nanos < 0 || ts.nanos > 999_999_999) {
    throw new InvalidArgumentError("timestamp is out of range");
  }
  const date = new Date(seconds * 1000);
  if (Number.isNaN(date.getTime())) throw new InvalidArgumentError("timestamp is out of range");
  const whole = date.toISOString().slice(0, 19);
  const fraction = String(ts.nanos).padStart(9, "0").replace(/0+$/, "");
  return fraction === "" ? `${whole}Z` : `${whole}.${fraction}Z`;
}
