import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { UnavailableError } from "../../src/errors.ts";
import { createRemoteTarget, DEFAULT_USER_AGENT } from "../../src/oci/remote.ts";
import { type ProxyHandle, startProxy } from "../harness/proxy.ts";
import { type RegistryHandle, startRegistry } from "../harness/registry.ts";
import { STATE_TYPE } from "./remote-fixtures.ts";

type SdkConfig = NonNullable<ConstructorParameters<typeof NodeSDK>[0]>;
type Exporter = NonNullable<SdkConfig["traceExporter"]>;
type ExportedSpan = Parameters<Exporter["export"]>[0][number];

describe("remote target: HTTP plumbing", () => {
  let registry: RegistryHandle;
  let proxy: ProxyHandle;

  before(async () => {
    registry = await startRegistry();
    proxy = await startProxy(registry.url);
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });
  beforeEach(() => {
    proxy.clear();
    proxy.clearFaults();
  });

  test("the rate limiter spaces requests: 6 at 10/s with burst 1 take at least 0.5 s", async () => {
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/rate`,
      plainHTTP: true,
      rateLimit: 10,
      rateBurst: 1,
    });
    try {
      const started = performance.now();
      await Promise.all(Array.from({ length: 6 }, () => target.listTags()));
      const took = performance.now() - started;
      assert.ok(took >= 480, `took only ${took} ms`);
      assert.ok(took < 3000, `took ${took} ms`);
      assert.equal(proxy.requests.length, 6);
    } finally {
      await target.close();
    }
  });

  test("a burst lets that many requests through at once", async () => {
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/rate`,
      plainHTTP: true,
      rateLimit: 2,
      rateBurst: 5,
    });
    try {
      const started = performance.now();
      await Promise.all(Array.from({ length: 5 }, () => target.listTags()));
      // Without the burst, 5 requests at 2/s would take 2 s.
      assert.ok(performance.now() - started < 1500);
    } finally {
      await target.close();
    }
  });

  test("a rate-limit wait ends at the deadline", async () => {
    const target = createRemoteTarget({
      repository: `${proxy.host}/tfstate/rate`,
      plainHTTP: true,
      rateLimit: 0.5,
    });
    try {
      await target.listTags();
      const started = performance.now();
      await assert.rejects(target.listTags({ deadline: Date.now() + 100 }), /deadline exceeded/);
      assert.ok(performance.now() - started < 800);
    } finally {
      await target.close();
    }
  });

  test("every request carries the User-Agent, the default naming the project and version", async () => {
    const custom = createRemoteTarget({
      repository: `${proxy.host}/tfstate/ua`,
      plainHTTP: true,
      userAgent: "my-service/2.0",
    });
    const plain = createRemoteTarget({ repository: `${proxy.host}/tfstate/ua`, plainHTTP: true });
    try {
      await custom.pushBlob({ bytes: Buffer.from("ua") }, STATE_TYPE);
      await custom.listTags();
      assert.ok(proxy.requests.length >= 3);
      assert.ok(proxy.requests.every((r) => r.headers["user-agent"] === "my-service/2.0"));
      proxy.clear();
      await plain.ping();
      assert.match(DEFAULT_USER_AGENT, /^oci-tfstate\/\d+\.\d+\.\d+/);
      assert.equal(proxy.requests[0]?.headers["user-agent"], DEFAULT_USER_AGENT);
    } finally {
      await custom.close();
      await plain.close();
    }
  });

  test("each HTTP request is a client span, and the trace context goes out in traceparent", async () => {
    const spans: ExportedSpan[] = [];
    const exporter: Exporter = {
      export(batch, done) {
        spans.push(...batch);
        done({ code: 0 });
      },
      shutdown: async () => {},
    };
    const sdk = new NodeSDK({ traceExporter: exporter, instrumentations: [], autoDetectResources: false });
    sdk.start();
    const target = createRemoteTarget({ repository: `${proxy.host}/tfstate/otel`, plainHTTP: true });
    try {
      await target.ping();
      proxy.fault({ method: "GET", path: /tags\/list/, times: 1, action: { kind: "status", status: 503 } });
      assert.deepEqual(await target.listTags(), []);
      await assert.rejects(target.fetchManifest("missing-tag").then(() => target.deleteTag("nope")));
    } finally {
      await target.close();
      await sdk.shutdown();
    }
    const http = spans.filter((s) => s.name.startsWith("HTTP "));
    assert.deepEqual(
      http.map((s) => `${s.name} ${s.attributes["http.response.status_code"]}`),
      ["HTTP GET 200", "HTTP GET 503", "HTTP GET 404", "HTTP GET 404", "HTTP DELETE 400"],
    );
    assert.equal(http[0]?.attributes["error.type"], undefined);
    assert.equal(http[0]?.status.code, 0 /* SpanStatusCode.UNSET */);
    const first = http[1];
    assert.ok(first);
    assert.equal(first.kind, 2 /* SpanKind.CLIENT */);
    assert.equal(first.attributes["http.request.method"], "GET");
    assert.equal(first.attributes["server.address"], "127.0.0.1");
    assert.equal(first.attributes["server.port"], Number(proxy.host.split(":")[1]));
    assert.equal(first.attributes["url.full"], `${proxy.url}/v2/tfstate/otel/tags/list?n=1000`);
    assert.equal(first.attributes["error.type"], "503");
    assert.equal(first.status.code, 2 /* SpanStatusCode.ERROR */);
    // The trace context reached the registry, naming the span of that very request.
    const traceparent = String(proxy.requests[1]?.headers.traceparent);
    assert.match(traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    assert.equal(traceparent.split("-")[2], first.spanContext().spanId);
  });

  test("a closed target refuses further work", async () => {
    const target = createRemoteTarget({ repository: `${proxy.host}/tfstate/closed`, plainHTTP: true });
    await target.ping();
    await target.close();
    await target.close();
    await assert.rejects(target.listTags(), UnavailableError);
  });
});
