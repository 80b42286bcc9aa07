/**
 * Lock again with the holder's ID renews the lease (the proto's promise), seen through the real
 * Connect and gRPC clients: `expire_time` moves, the generation stays, and a rival that tries after
 * the first lease end is refused.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { LockHeldDetailSchema } from "../../src/gen/tfstate/v1/error_details_pb.ts";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { storedGeneration } from "../coordinator/lock-annotation.ts";
import { client, type Protocol, startRegistryFixture } from "./fixture.ts";

const fx = await startRegistryFixture();
const TTL_MS = 1500;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const lock = (id: string, who: string) => ({
  id,
  operation: "OperationTypeApply",
  info: "",
  who,
  version: "1.12.6",
});

const protocols: Protocol[] = ["connect+json over HTTP/1.1", "grpc over h2c"];

describe("Lock with the holder's ID renews the lease", () => {
  for (const protocol of protocols) {
    test(`over ${protocol}: expire_time and the registry's lease_expiry move; a rival after the first lease end is refused`, async () => {
      const served = await fx.serve({ backend: { lockTTL: TTL_MS } });
      const c = client(StateService, protocol, served.url);
      const first = await c.lock({ workspace: "prod", lock: lock("renewer", "alice@ci") });
      assert.ok(first.expireTime, "a lease is reported");
      const firstEnd = timestampMs(first.expireTime);
      let lastEnd = firstEnd;
      while (Date.now() < firstEnd + TTL_MS) {
        await sleep(TTL_MS / 2);
        const renewed = await c.lock({ workspace: "prod", lock: lock("renewer", "alice@ci") });
        assert.ok(renewed.expireTime);
        const end = timestampMs(renewed.expireTime);
        assert.ok(end > lastEnd, `expire_time moved forward (${end} > ${lastEnd})`);
        assert.equal(renewed.generation, first.generation, "the generation stays");
        assert.equal(renewed.lock?.id, "renewer");
        const stored = await storedGeneration(fx.registry.url, served.repository, "locked-prod");
        assert.equal(stored.leaseExpiryMs, end, "the registry's lease_expiry is the one answered");
        assert.equal(BigInt(stored.generation), first.generation);
        lastEnd = end;
      }
      assert.ok(Date.now() > firstEnd);
      try {
        await c.lock({ workspace: "prod", lock: lock("rival", "bob@ci") });
        assert.fail("the rival took a renewed lock");
      } catch (err) {
        const e = ConnectError.from(err);
        assert.equal(e.code, Code.FailedPrecondition, e.message);
        assert.equal(e.findDetails(LockHeldDetailSchema)[0]?.holder?.id, "renewer");
      }
      const got = await c.getLock({ workspace: "prod" });
      assert.equal(got.lock?.id, "renewer");
      assert.ok(
        got.expireTime && timestampMs(got.expireTime) === lastEnd,
        "GetLock reports the renewed lease",
      );
      await c.unlock({ workspace: "prod", lockId: "renewer" });
    });
  }
});
