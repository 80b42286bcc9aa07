/**
 * With OTEL_* variables set, the CLI starts the OpenTelemetry SDK: a server span per RPC, the
 * registry requests as spans of the same trace, and the RPC latency histogram, exported over
 * OTLP/HTTP to a real (local) collector endpoint and flushed on shutdown.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { startRegistry } from "../harness/registry.ts";
import { client, text } from "../rpc/fixture.ts";
import { runCli } from "./cli-process.ts";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number | string;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
}

const registry = await startRegistry();
test.after(() => registry.stop());

/** An OTLP/HTTP (JSON) receiver that keeps what it is sent. */
async function startCollector() {
  const spans: OtlpSpan[] = [];
  const metricNames = new Set<string>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString() || "{}");
      if (req.url === "/v1/traces") {
        for (const rs of body.resourceSpans ?? [])
          for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
      } else if (req.url === "/v1/metrics") {
        for (const rm of body.resourceMetrics ?? [])
          for (const sm of rm.scopeMetrics ?? []) for (const m of sm.metrics ?? []) metricNames.add(m.name);
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  test.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, metricNames };
}

test("RPCs are traced with the registry requests in the same trace, and their latency is measured", async () => {
  const collector = await startCollector();
  const run = await runCli(["--listen", "127.0.0.1:0", "--plain-http"], {
    OCI_TFSTATE_REPOSITORY: `${registry.host}/tfstate/otel-${randomBytes(4).toString("hex")}`,
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_LOGS_EXPORTER: "none",
    OTEL_SERVICE_NAME: "oci-tfstate-test",
  });
  const url = String((await run.waitForLog("listening")).url);
  await run.waitForLog("opentelemetry started");

  const c = client(StateService, "grpc over h2c", url);
  await c.putState({ workspace: "default", state: text('{"traced":true}') });
  // Binary GetState is served by the GetState endpoint, below Connect.
  assert.equal((await c.getState({ workspace: "default" })).state.byteLength, 15);
  // A watch over h2c is served by the WatchLock endpoint, below Connect; shutdown ends it.
  const watch = c.watchLock({ workspace: "default" })[Symbol.asyncIterator]();
  await watch.next(); // the snapshot
  await watch.next(); // SNAPSHOT_COMPLETE
  const watchEnded = watch.next().then(
    () => "no error",
    (e: unknown) => String(e),
  );
  run.child.kill("SIGTERM");
  assert.match(await watchEnded, /unavailable/i);
  assert.deepEqual(await run.exited, { code: 0, signal: null });

  const watchSpan = collector.spans.find((s) => s.name === "tfstate.v1.StateService/WatchLock");
  assert.ok(watchSpan, `no WatchLock span among ${collector.spans.map((s) => s.name).join(", ")}`);
  const watchAttrs = Object.fromEntries(
    (watchSpan.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]),
  );
  assert.equal(watchAttrs["rpc.system"], "grpc");
  assert.equal(Number(watchAttrs["rpc.grpc.status_code"]), 14, "ended by the shutdown: UNAVAILABLE");

  const rpc = collector.spans.find((s) => s.name === "tfstate.v1.StateService/PutState");
  assert.ok(rpc, `no PutState span among ${collector.spans.map((s) => s.name).join(", ")}`);
  assert.ok([2, "SPAN_KIND_SERVER"].includes(rpc.kind), `kind ${String(rpc.kind)}`);
  const attrs = Object.fromEntries((rpc.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]));
  assert.equal(attrs["rpc.system"], "grpc");
  assert.equal(attrs["rpc.method"], "PutState");

  const registryCalls = collector.spans.filter(
    (s) => s.traceId === rpc.traceId && /^HTTP (PUT|POST|GET|HEAD)$/.test(s.name),
  );
  assert.ok(
    registryCalls.length >= 2,
    `registry spans in the RPC's trace: ${registryCalls.map((s) => s.name).join(", ")}`,
  );
  assert.ok(
    registryCalls.some((s) => s.name === "HTTP PUT"),
    "the manifest PUT is part of the RPC's trace",
  );
  const read = collector.spans.find((s) => s.name === "tfstate.v1.StateService/GetState");
  assert.ok(read, `no GetState span among ${collector.spans.map((s) => s.name).join(", ")}`);
  const readAttrs = Object.fromEntries(
    (read.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]),
  );
  assert.equal(readAttrs["rpc.system"], "grpc");
  assert.equal(Number(readAttrs["rpc.grpc.status_code"]), 0);
  assert.ok(
    collector.spans.some((s) => s.traceId === read.traceId && s.name === "HTTP GET"),
    "the manifest GET is part of the GetState trace",
  );
  assert.ok(collector.metricNames.has("rpc.server.call.duration"), [...collector.metricNames].join(", "));
  assert.ok(
    collector.metricNames.has("http.client.request.duration"),
    "registry requests by status are measured",
  );
});
