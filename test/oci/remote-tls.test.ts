import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { InvalidArgumentError, UnavailableError } from "../../src/errors.ts";
import { createRemoteTarget } from "../../src/oci/remote.ts";
import { type RegistryHandle, startRegistry } from "../harness/registry.ts";
import { createTestCertificates, type TestCertificates } from "../harness/tls.ts";
import { collect, STATE_TYPE } from "./remote-fixtures.ts";

describe("remote target: TLS", () => {
  let certs: TestCertificates;
  let registry: RegistryHandle;
  let plain: RegistryHandle;

  before(async () => {
    certs = await createTestCertificates();
    registry = await startRegistry({ tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile } });
    plain = await startRegistry();
  });
  after(async () => {
    await registry?.stop();
    await plain?.stop();
    await certs?.remove();
  });

  test("a registry signed by a private CA works with caFile (added to the system roots)", async () => {
    const target = createRemoteTarget({
      repository: `${registry.host}/tfstate/tls`,
      caFile: certs.caCertFile,
    });
    try {
      await target.ping();
      const desc = await target.pushBlob({ bytes: Buffer.from("over tls") }, STATE_TYPE);
      assert.equal((await collect(await target.fetchBlob(desc))).toString(), "over tls");
    } finally {
      await target.close();
    }
  });

  test("without the CA the certificate is refused, with a hint", async () => {
    const target = createRemoteTarget({
      repository: `${registry.host}/tfstate/tls`,
      retry: { initialBackoffMs: 1, maxBackoffMs: 2 },
    });
    try {
      await assert.rejects(target.ping(), (err) => {
        assert.ok(err instanceof UnavailableError);
        assert.match(err.message, /TLS verification of 127\.0\.0\.1:\d+ failed/);
        assert.match(err.message, /caFile/);
        return true;
      });
    } finally {
      await target.close();
    }
  });

  test("insecureSkipVerify works without the CA, over TLS (not plain HTTP)", async () => {
    const warnings: string[] = [];
    const target = createRemoteTarget({
      repository: `${registry.host}/tfstate/tls`,
      insecureSkipVerify: true,
      logger: { warn: (msg) => warnings.push(msg) },
    });
    try {
      await target.ping();
      await target.pushBlob({ bytes: Buffer.from("unverified") }, STATE_TYPE);
      assert.equal(warnings.length, 1, "turning verification off is logged");
    } finally {
      await target.close();
    }
    // plainHTTP is a separate switch: speaking HTTP to this TLS port does not work.
    const wrong = createRemoteTarget({
      repository: `${registry.host}/tfstate/tls`,
      plainHTTP: true,
      retry: { maxAttempts: 1 },
    });
    try {
      await assert.rejects(wrong.ping());
    } finally {
      await wrong.close();
    }
  });

  test("TLS against a plain HTTP registry fails with a plainHTTP hint", async () => {
    const target = createRemoteTarget({ repository: `${plain.host}/tfstate/tls`, retry: { maxAttempts: 1 } });
    try {
      await assert.rejects(target.ping(), (err) => {
        assert.ok(err instanceof UnavailableError);
        assert.match(err.message, /plainHTTP/);
        return true;
      });
    } finally {
      await target.close();
    }
  });

  test("a missing or invalid caFile is InvalidArgumentError naming the file", async () => {
    const missing = path.join(certs.dir, "no-such-ca.pem");
    assert.throws(
      () => createRemoteTarget({ repository: `${registry.host}/x`, caFile: missing }),
      (err) => err instanceof InvalidArgumentError && err.message.includes(missing),
    );
    const garbage = path.join(certs.dir, "garbage.pem");
    await writeFile(garbage, "this is not a certificate\n");
    assert.throws(
      () => createRemoteTarget({ repository: `${registry.host}/x`, caFile: garbage }),
      (err) =>
        err instanceof InvalidArgumentError && err.message.includes(garbage) && /no PEM/.test(err.message),
    );
    const broken = path.join(certs.dir, "broken.pem");
    await writeFile(broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert.throws(
      () => createRemoteTarget({ repository: `${registry.host}/x`, caFile: broken }),
      (err) =>
        err instanceof InvalidArgumentError && err.message.includes(broken) && /not valid/.test(err.message),
    );
  });
});
