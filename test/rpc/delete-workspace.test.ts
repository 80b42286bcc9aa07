/**
 * WorkspaceService.DeleteWorkspace's `force` through the real clients: without it, a workspace whose
 * state still manages resources is FAILED_PRECONDITION naming the count (no LockHeldDetail: nobody
 * holds a lock), a locked one is FAILED_PRECONDITION with the holder; with it, both are deleted.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { LockHeldDetailSchema } from "../../src/gen/tfstate/v1/error_details_pb.ts";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { WorkspaceService } from "../../src/gen/tfstate/v1/workspace_service_pb.ts";
import { client, type Protocol, startRegistryFixture, text } from "./fixture.ts";

const fx = await startRegistryFixture();

async function refusal(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    assert.equal(Code[e.code], Code[Code.FailedPrecondition], e.message);
    return e;
  }
  assert.fail("the delete was not refused");
}

const state = (resources: unknown[]) =>
  text(JSON.stringify({ version: 4, serial: 1, lineage: "l", resources }));
const resource = (type: string, name: string) => ({
  mode: "managed",
  type,
  name,
  instances: [{ attributes: { id: name } }],
});

const protocols: Protocol[] = ["connect+proto over HTTP/2", "grpc over h2c"];

describe("DeleteWorkspace force", () => {
  for (const protocol of protocols) {
    test(`over ${protocol}: resources and locks refuse a delete without force; force deletes`, async () => {
      const { url } = await fx.serve();
      const ws = client(WorkspaceService, protocol, url);
      const st = client(StateService, protocol, url);
      await st.putState({
        workspace: "prod",
        state: state([resource("aws_instance", "web"), resource("aws_eip", "ip")]),
      });

      const busy = await refusal(ws.deleteWorkspace({ name: "prod" }));
      assert.match(
        busy.rawMessage,
        /"prod" still has resources in its state: 2 managed resources \(aws_instance\.web, aws_eip\.ip\)/,
      );
      assert.deepEqual(busy.findDetails(LockHeldDetailSchema), [], "no lock holder to report");
      assert.equal((await ws.getWorkspace({ name: "prod" })).workspace?.hasState, true, "nothing deleted");

      await st.lock({ workspace: "prod", lock: { id: "lock-1", who: "eve@ci" } });
      const locked = await refusal(ws.deleteWorkspace({ name: "prod" }));
      assert.equal(locked.findDetails(LockHeldDetailSchema)[0]?.holder?.id, "lock-1");
      const ownLock = await refusal(ws.deleteWorkspace({ name: "prod", lockId: "lock-1" }));
      assert.match(
        ownLock.rawMessage,
        /2 managed resources/,
        "holding the lock does not lift the resource check",
      );

      await ws.deleteWorkspace({ name: "prod", force: true });
      await assert.rejects(ws.getWorkspace({ name: "prod" }), (e: unknown) => {
        assert.equal(ConnectError.from(e).code, Code.NotFound);
        return true;
      });
      assert.equal((await st.getLock({ workspace: "prod" })).lock, undefined, "the lock went with it");

      await st.putState({ workspace: "empty", state: state([]) });
      await ws.deleteWorkspace({ name: "empty" });
    });
  }
});
