/**
 * DeleteWorkspace without force refuses what Terraform's `workspace delete` without -force refuses:
 * a workspace locked by someone else, and one whose state still manages resources (naming the
 * count), or whose state cannot be read for them. With force it deletes.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FailedPreconditionError } from "../../src/errors.ts";
import { LockError } from "../../src/oras/index.ts";
import { lockInfo, startCoordinatorFixture, text } from "./fixture.ts";

const fx = await startCoordinatorFixture();

function tfState(resources: unknown[]): Uint8Array {
  return text(
    JSON.stringify({ version: 4, terraform_version: "1.12.6", serial: 3, lineage: "l", resources }),
  );
}

const managed = (type: string, name: string, module?: string) => ({
  ...(module ? { module } : {}),
  mode: "managed",
  type,
  name,
  provider: 'provider["registry.opentofu.org/hashicorp/null"]',
  instances: [{ schema_version: 0, attributes: { id: "1" } }],
});
const dataSource = (type: string, name: string) => ({ ...managed(type, name), mode: "data" });

/** Refused with FailedPreconditionError (not a LockError); returns the message. */
async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FailedPreconditionError, String(err));
    assert.ok(!(err instanceof LockError), `not a lock refusal: ${String(err)}`);
    return err.message;
  }
  assert.fail("the delete was not refused");
}

describe("DeleteWorkspace without force", () => {
  test("refuses a state that manages resources, naming the count; data sources do not count; force deletes", async () => {
    const { coord, repo } = fx.coordinator();
    const resources = [
      managed("null_resource", "a"),
      dataSource("null_data_source", "d"),
      managed("aws_instance", "web", "module.app"),
      managed("aws_s3_bucket", "logs"),
      managed("random_id", "suffix"),
    ];
    await coord.putState("busy", tfState(resources));
    const message = await refused(coord.deleteWorkspace("busy"));
    assert.match(
      message,
      /"busy" still has resources in its state: 4 managed resources \(null_resource\.a, module\.app\.aws_instance\.web, aws_s3_bucket\.logs and 1 more\)/,
    );
    assert.match(message, /force/);
    assert.ok((await coord.listWorkspaceNames()).includes("busy"), "nothing was deleted");
    assert.ok((await fx.rawTags(repo)).includes("state-busy"));

    await coord.deleteWorkspace("busy", { force: true });
    assert.ok(!(await coord.listWorkspaceNames()).includes("busy"));
  });

  test("one resource is named as one; an empty state, or data sources only, is deleted without force", async () => {
    const { coord } = fx.coordinator({ backend: { compression: "gzip" } });
    await coord.putState("one", tfState([managed("null_resource", "only")]));
    assert.match(
      await refused(coord.deleteWorkspace("one")),
      /still has resources in its state: 1 managed resource \(null_resource\.only\)/,
    );

    await coord.putState("empty", tfState([]));
    await coord.deleteWorkspace("empty");
    await coord.putState("reads", tfState([dataSource("http", "probe")]));
    await coord.deleteWorkspace("reads");
    await coord.createWorkspace("fresh");
    await coord.deleteWorkspace("fresh");
    const names = await coord.listWorkspaceNames();
    for (const gone of ["empty", "reads", "fresh"]) assert.ok(!names.includes(gone), gone);
  });

  test("a state that cannot be inspected (encrypted, not JSON) is refused saying why; force deletes", async () => {
    const { coord } = fx.coordinator();
    // OpenTofu's client-side encryption envelope.
    await coord.putState(
      "sealed",
      text(
        JSON.stringify({
          serial: 2,
          lineage: "l",
          meta: {},
          encrypted_data: "AAEC",
          encryption_version: "v0",
        }),
      ),
    );
    assert.match(await refused(coord.deleteWorkspace("sealed")), /cannot be counted \(it is encrypted/);
    await coord.putState("binary", new Uint8Array([0xff, 0x00, 0x01]));
    assert.match(await refused(coord.deleteWorkspace("binary")), /cannot be counted \(it is not JSON\)/);
    await coord.deleteWorkspace("sealed", { force: true });
    await coord.deleteWorkspace("binary", { force: true });
  });

  test("a Terraform 0.11 (format 3) state counts its managed resources too", async () => {
    const { coord } = fx.coordinator();
    const v3 = {
      version: 3,
      serial: 1,
      modules: [
        { path: ["root"], resources: { "aws_instance.web": {}, "data.aws_ami.ubuntu": {} } },
        { path: ["root", "net"], resources: { "aws_vpc.main": {} } },
      ],
    };
    await coord.putState("legacy", text(JSON.stringify(v3)));
    assert.match(
      await refused(coord.deleteWorkspace("legacy")),
      /still has resources in its state: 2 managed resources \(aws_instance\.web, module\.net\.aws_vpc\.main\)/,
    );
  });

  test("the lock holder may delete an empty workspace; a lock is checked before the resources", async () => {
    const { coord } = fx.coordinator();
    await coord.putState("held", tfState([managed("null_resource", "a")]));
    await coord.lock("held", lockInfo("keeper", "kim@ci"));
    await assert.rejects(coord.deleteWorkspace("held"), (e: unknown) => {
      assert.ok(e instanceof LockError, String(e));
      assert.equal(e.holder.id, "keeper");
      assert.equal(e.generation, 1);
      assert.match(e.message, /locked by kim@ci \(lock ID keeper, OperationTypeApply\); unlock it first/);
      return true;
    });
    // Holding the lock lifts the lock check, not the resource check.
    assert.match(
      await refused(coord.deleteWorkspace("held", { lockId: "keeper" })),
      /1 managed resource \(null_resource\.a\)/,
    );
    await coord.putState("held", tfState([]), { lockId: "keeper" });
    await coord.deleteWorkspace("held", { lockId: "keeper" });
    assert.deepEqual(await coord.getLock("held"), { state: "unlocked" });
  });
});
