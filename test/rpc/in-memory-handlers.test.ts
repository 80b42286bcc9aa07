/**
 * The RPC handlers on their own, through Connect's in-memory router transport: no HTTP edge, no
 * registry (the coordinator runs on an OCI layout directory). They take the same interceptors as
 * on the server, and answer without the edge's body writers, the way any other Connect host would
 * serve them.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { createCoordinator } from "../../src/coordinator/index.ts";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../src/gen/grpc/health/v1/health_pb.ts";
import { LockEventKind, LockState, StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { noopLogger } from "../../src/log.ts";
import { createBackend } from "../../src/oras/index.ts";
import { errorInterceptor } from "../../src/rpc/errors.ts";
import { Readiness } from "../../src/rpc/readiness.ts";
import { rpcServices } from "../../src/rpc/routes.ts";
import { rpcTelemetry, telemetryInterceptor } from "../../src/rpc/telemetry-interceptor.ts";
import { rejectsWith, str, text } from "./fixture.ts";

const dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-in-memory-"));
const coordinator = createCoordinator({ backend: createBackend({ repository: `oci-layout:${dir}` }) });
after(async () => {
  await coordinator.close();
  await rm(dir, { recursive: true, force: true });
});

const transport = createRouterTransport(
  (router) => {
    const services = rpcServices({
      coordinator,
      logger: noopLogger,
      maxMessageBytes: 4 * 1024 * 1024,
      maxStateSize: 1024 * 1024,
      readiness: new Readiness({
        check: (o) => coordinator.ready(o),
        drainSignal: new AbortController().signal,
      }),
    });
    for (const { service, impl } of services) router.service(service, impl as never);
  },
  { router: { interceptors: [telemetryInterceptor(rpcTelemetry()), errorInterceptor(noopLogger)] } },
);
const state = createClient(StateService, transport);

test("arguments are checked before any coordinator call, each refusal naming the field", async () => {
  await rejectsWith(state.getState({ workspace: "" }), Code.InvalidArgument, /empty/);
  await rejectsWith(
    state.getVersion({ workspace: "w", version: 0n }),
    Code.InvalidArgument,
    /version must be positive/,
  );
  await rejectsWith(
    state.listVersions({ workspace: "w", pageToken: "nope" }),
    Code.InvalidArgument,
    /page_token/,
  );
  await rejectsWith(state.unlock({ workspace: "w" }), Code.InvalidArgument, /lock_id, or force/);
  await rejectsWith(
    state.putState({ workspace: "w", state: text("{}"), md5: new Uint8Array(3) }),
    Code.InvalidArgument,
    /md5 must be 16 bytes/,
  );
  await rejectsWith(
    state.lock({ workspace: "w", lock: { id: "x" }, wait: durationFromMs(-1000) }),
    Code.InvalidArgument,
    /wait/,
  );
});

test("without the edge's body writer, GetState carries its state in the message", async () => {
  await state.putState({ workspace: "plain", state: text('{"serial":1}') });
  const got = await state.getState({ workspace: "plain" });
  assert.equal(str(got.state), '{"serial":1}');
  assert.equal(got.metadata?.sizeBytes, 12n);
});

test("without the edge's frame writer, WatchLock yields one message per event until the client stops", async () => {
  const ac = new AbortController();
  const events = state.watchLock({ workspace: "watched" }, { signal: ac.signal })[Symbol.asyncIterator]();
  assert.equal((await events.next()).value?.kind, LockEventKind.SNAPSHOT);
  assert.equal((await events.next()).value?.kind, LockEventKind.SNAPSHOT_COMPLETE);
  await state.lock({ workspace: "watched", lock: { id: "in-memory" } });
  const locked = (await events.next()).value;
  assert.equal(locked?.kind, LockEventKind.LOCKED);
  assert.equal(locked?.lock?.id, "in-memory");
  assert.equal((await state.getLock({ workspace: "watched" })).state, LockState.LOCKED);
  ac.abort();
  await assert.rejects(events.next());
  await state.unlock({ workspace: "watched", lockId: "in-memory" });
});

test("health checking answers for the server and the API services", async () => {
  const health = createClient(Health, transport);
  assert.equal((await health.check({ service: "" })).status, Status.SERVING);
  await rejectsWith(health.check({ service: "no.such.Service" }), Code.NotFound);
});
