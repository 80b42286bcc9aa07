/** Throwaway certificates for TLS tests, made with the `openssl` CLI. */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { trackForCleanup } from "./cleanup.ts";

const execFileAsync = promisify(execFile);

export interface TestCertificates {
  dir: string;
  caCertFile: string;
  caKeyFile: string;
  /** Signed by the CA, SAN IP:127.0.0.1 and DNS:localhost. */
  serverCertFile: string;
  serverKeyFile: string;
  /** Removes the dir when this module created it, else only the files it wrote. */
  remove(): Promise<void>;
}

export interface SelfSignedCertificate {
  dir: string;
  certFile: string;
  keyFile: string;
  remove(): Promise<void>;
}

export type KeyType = "ec" | "rsa";

export interface SelfSignedOptions {
  dir?: string;
  /** Default "ec" (fast); "rsa" when the key must sign RS256 tokens. */
  keyType?: KeyType;
  commonName?: string;
  /** Default: IP:127.0.0.1 and DNS:localhost. */
  subjectAltNames?: string[];
  /** File name stem inside dir; default "self-signed". */
  name?: string;
}

const DAYS = "2";
const DEFAULT_SANS = ["IP:127.0.0.1", "DNS:localhost"];

/** A CA and a server certificate signed by it, valid for 127.0.0.1 and localhost. */
export async function createTestCertificates(dir?: string): Promise<TestCertificates> {
  const { target, remove } = await prepareDir(dir, ["ca.crt", "ca.key", "server.crt", "server.key"]);
  try {
    const caCertFile = path.join(target, "ca.crt");
    const caKeyFile = path.join(target, "ca.key");
    const serverCertFile = path.join(target, "server.crt");
    const serverKeyFile = path.join(target, "server.key");
    const csrFile = path.join(target, "server.csr");
    const extFile = path.join(target, "server.ext");

    await openssl([
      "req",
      "-x509",
      ...keyArgs("ec"),
      "-keyout",
      caKeyFile,
      "-out",
      caCertFile,
      "-days",
      DAYS,
      "-subj",
      "/CN=oci-tfstate test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    await openssl([
      "req",
      ...keyArgs("ec"),
      "-keyout",
      serverKeyFile,
      "-out",
      csrFile,
      "-subj",
      "/CN=localhost",
    ]);
    await writeFile(
      extFile,
      [
        `subjectAltName=${DEFAULT_SANS.join(",")}`,
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        "",
      ].join("\n"),
    );
    await openssl([
      "x509",
      "-req",
      "-in",
      csrFile,
      "-CA",
      caCertFile,
      "-CAkey",
      caKeyFile,
      "-set_serial",
      randomSerial(),
      "-days",
      DAYS,
      "-extfile",
      extFile,
      "-out",
      serverCertFile,
    ]);
    await Promise.all([rm(csrFile, { force: true }), rm(extFile, { force: true })]);
    return { dir: target, caCertFile, caKeyFile, serverCertFile, serverKeyFile, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** A self-signed certificate (no CA); clients must trust the certificate itself. */
export async function createSelfSignedCertificate(
  opts: SelfSignedOptions = {},
): Promise<SelfSignedCertificate> {
  const name = opts.name ?? "self-signed";
  const { target, remove } = await prepareDir(opts.dir, [`${name}.crt`, `${name}.key`]);
  try {
    const certFile = path.join(target, `${name}.crt`);
    const keyFile = path.join(target, `${name}.key`);
    await openssl([
      "req",
      "-x509",
      ...keyArgs(opts.keyType ?? "ec"),
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      DAYS,
      "-set_serial",
      randomSerial(),
      "-subj",
      `/CN=${opts.commonName ?? "localhost"}`,
      "-addext",
      `subjectAltName=${(opts.subjectAltNames ?? DEFAULT_SANS).join(",")}`,
    ]);
    return { dir: target, certFile, keyFile, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

function keyArgs(keyType: KeyType): string[] {
  return keyType === "rsa"
    ? ["-newkey", "rsa:2048", "-nodes"]
    : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
}

function randomSerial(): string {
  return `0x${Buffer.from(crypto.getRandomValues(new Uint8Array(16)))
    .toString("hex")
    .replace(/^./, "1")}`;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync("openssl", args);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(err)}`, { cause: err });
  }
}

async function prepareDir(
  dir: string | undefined,
  files: string[],
): Promise<{ target: string; remove: () => Promise<void> }> {
  if (dir !== undefined) {
    return {
      target: dir,
      remove: async () => {
        await Promise.all(files.map((f) => rm(path.join(dir, f), { force: true })));
      },
    };
  }
  const target = await mkdtemp(path.join(tmpdir(), "oci-tfstate-certs-"));
  const untrack = trackForCleanup(undefined, target);
  return {
    target,
    remove: async () => {
      await rm(target, { recursive: true, force: true });
      untrack();
    },
  };
}
