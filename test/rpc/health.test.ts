/**
 * gRPC health checking: SERVING while the registry answers, NOT_SERVING when it does not or the
 * server is draining; Watch pushes the change.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../src/gen/grpc/health/v1/health_pb.ts";
import { startRegistryFixture } from "./fixture.ts";

const fx = await startRegistryFixture();

const health = (url: string) => createClient(Health, createGrpcTransport({ baseUrl: url }));

test("Check and List report SERVING for the server and each API service while the registry answers", async () => {
  const { url } = await fx.serve();
  const h = health(url);
  for (const service of ["", "tfstate.v1.StateService", "tfstate.v1.WorkspaceService"]) {
    assert.equal((await h.check({ service })).status, Status.SERVING, service);
  }
  await assert.rejects(
    h.check({ service: "no.such.Service" }),
    (err) => ConnectError.from(err).code === Code.NotFound,
  );
  const { statuses } = await h.list({});
  assert.deepEqual(Object.keys(statuses).sort(), [
    "",
    "tfstate.v1.StateService",
    "tfstate.v1.WorkspaceService",
  ]);
  for (const s of Object.values(statuses)) assert.equal(s.status, Status.SERVING);
});

test("Check reports NOT_SERVING when the registry cannot be reached", async () => {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  const { url } = await fx.serve({
    backend: { repository: `127.0.0.1:${port}/tfstate/gone`, retry: { maxAttempts: 1 } },
  });
  assert.equal((await health(url).check({ service: "" })).status, Status.NOT_SERVING);
});

test("Watch sends the status, then NOT_SERVING and UNAVAILABLE when the server shuts down", async () => {
  const served = await fx.serve();
  const h = health(served.url);
  const watch = h.watch({ service: "tfstate.v1.StateService" })[Symbol.asyncIterator]();
  assert.equal((await watch.next()).value?.status, Status.SERVING);

  const unknown = new AbortController();
  const other = h.watch({ service: "no.such.Service" }, { signal: unknown.signal })[Symbol.asyncIterator]();
  assert.equal((await other.next()).value?.status, Status.SERVICE_UNKNOWN);
  const stillOpen = await Promise.race([other.next().then(() => "ended"), delay(300).then(() => "open")]);
  assert.equal(stillOpen, "open", "a Watch on an unknown service stays open");
  unknown.abort();

  const stopping = served.stop();
  assert.equal((await watch.next()).value?.status, Status.NOT_SERVING);
  await assert.rejects(watch.next(), (err) => ConnectError.from(err).code === Code.Unavailable);
  await stopping;
});

function delay(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
