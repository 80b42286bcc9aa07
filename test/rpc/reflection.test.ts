/**
 * Server reflection (v1 and v1alpha) answers with the real descriptors, so generic clients work
 * without .proto files: checked with the generated client over gRPC, and with `buf curl`.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  MethodOptions_IdempotencyLevel,
} from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  ServerReflection,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../src/gen/grpc/reflection/v1/reflection_pb.ts";
import { ServerReflection as ServerReflectionV1Alpha } from "../../src/gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { client, startRegistryFixture, text } from "./fixture.ts";

const execFileAsync = promisify(execFile);
const fx = await startRegistryFixture();
const served = await fx.serve();

type Question = ServerReflectionRequest["messageRequest"];

/** Asks the questions in order on one reflection stream and returns the answers. */
async function ask(
  questions: Question[],
  version: "v1" | "v1alpha" = "v1",
): Promise<ServerReflectionResponse[]> {
  const transport = createGrpcTransport({ baseUrl: served.url });
  async function* requests() {
    for (const q of questions) yield { host: "", messageRequest: q };
  }
  const answers: ServerReflectionResponse[] = [];
  const stream =
    version === "v1"
      ? createClient(ServerReflection, transport).serverReflectionInfo(requests() as never)
      : createClient(ServerReflectionV1Alpha, transport).serverReflectionInfo(requests() as never);
  for await (const a of stream) answers.push(a as ServerReflectionResponse);
  return answers;
}

function files(answer: ServerReflectionResponse | undefined): FileDescriptorProto[] {
  assert.equal(
    answer?.messageResponse.case,
    "fileDescriptorResponse",
    JSON.stringify(answer?.messageResponse),
  );
  const value = answer.messageResponse.value as { fileDescriptorProto: Uint8Array[] };
  return value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

/** Orders files so each comes after the files it imports, as a FileDescriptorSet wants them. */
function dependenciesFirst(all: FileDescriptorProto[]): FileDescriptorProto[] {
  const out: FileDescriptorProto[] = [];
  const visit = (f: FileDescriptorProto) => {
    if (out.includes(f)) return;
    for (const dep of f.dependency) {
      const d = all.find((x) => x.name === dep);
      assert.ok(d, `${f.name} imports ${dep}, which was not sent`);
      visit(d);
    }
    out.push(f);
  };
  for (const f of all) visit(f);
  return out;
}

const SERVICES = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "tfstate.v1.StateService",
  "tfstate.v1.WorkspaceService",
];

test("reflection v1 lists the services and serves complete, usable file descriptors", async () => {
  const [list, byService, byMessage, byMethod, byFile, missing, extensions] = await ask([
    { case: "listServices", value: "" },
    { case: "fileContainingSymbol", value: "tfstate.v1.StateService" },
    { case: "fileContainingSymbol", value: "tfstate.v1.LockInfo" },
    { case: "fileContainingSymbol", value: "tfstate.v1.StateService.WatchLock" },
    { case: "fileByFilename", value: "tfstate/v1/workspace_service.proto" },
    { case: "fileContainingSymbol", value: "tfstate.v1.NoSuchThing" },
    { case: "allExtensionNumbersOfType", value: "tfstate.v1.LockInfo" },
  ]);

  assert.equal(list?.messageResponse.case, "listServicesResponse");
  assert.deepEqual(
    (list.messageResponse.value as { service: { name: string }[] }).service.map((s) => s.name),
    SERVICES,
  );

  const serviceFiles = files(byService);
  assert.equal(serviceFiles[0]?.name, "tfstate/v1/state_service.proto", "the requested file comes first");
  assert.deepEqual(
    serviceFiles.map((f) => f.name).sort(),
    [
      "google/protobuf/duration.proto",
      "google/protobuf/timestamp.proto",
      "tfstate/v1/lock.proto",
      "tfstate/v1/state.proto",
      "tfstate/v1/state_service.proto",
      "tfstate/v1/summary.proto",
    ],
    "and every file it imports",
  );
  const service = serviceFiles[0]?.service.find((s) => s.name === "StateService");
  assert.equal(service?.method.length, 15);
  const watch = service?.method.find((m) => m.name === "WatchLock");
  assert.equal(watch?.serverStreaming, true);
  const getState = service?.method.find((m) => m.name === "GetState");
  assert.equal(getState?.options?.idempotencyLevel, MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS);

  // The descriptors resolve on their own, as a reflection client (grpcurl) needs them to.
  const registry = createFileRegistry(
    create(FileDescriptorSetSchema, { file: dependenciesFirst(serviceFiles) }),
  );
  assert.equal(registry.getService("tfstate.v1.StateService")?.methods.length, 15);
  assert.ok(registry.getMessage("tfstate.v1.DownloadStateResponse"));

  // Already sent on this stream: only the requested file comes again, not its imports.
  assert.deepEqual(
    files(byMessage).map((f) => f.name),
    ["tfstate/v1/lock.proto"],
  );
  assert.equal(files(byMethod)[0]?.name, "tfstate/v1/state_service.proto");
  const wsFiles = files(byFile);
  assert.equal(wsFiles[0]?.name, "tfstate/v1/workspace_service.proto");
  assert.ok(wsFiles.some((f) => f.name === "tfstate/v1/workspace.proto"));

  assert.equal(missing?.messageResponse.case, "errorResponse");
  assert.equal((missing.messageResponse.value as { errorCode: number }).errorCode, 5);
  assert.equal(extensions?.messageResponse.case, "allExtensionNumbersResponse");
  assert.deepEqual((extensions.messageResponse.value as { extensionNumber: number[] }).extensionNumber, []);
});

test("reflection v1alpha answers the same questions", async () => {
  const [list, byService] = await ask(
    [
      { case: "listServices", value: "" },
      { case: "fileContainingSymbol", value: "tfstate.v1.WorkspaceService" },
    ],
    "v1alpha",
  );
  assert.equal(list?.messageResponse.case, "listServicesResponse");
  assert.deepEqual(
    (list.messageResponse.value as { service: { name: string }[] }).service.map((s) => s.name),
    SERVICES,
  );
  assert.equal(files(byService)[0]?.name, "tfstate/v1/workspace_service.proto");
});

const buf = path.resolve("node_modules/.bin/buf");

test("buf curl lists and calls methods through reflection alone", async () => {
  await client(StateService, "grpc over h2c", served.url).putState({
    workspace: "default",
    state: text('{"serial":3}'),
  });

  const { stdout: methods } = await execFileAsync(buf, [
    "curl",
    "--protocol",
    "grpc",
    "--http2-prior-knowledge",
    "--list-methods",
    served.url,
  ]);
  assert.match(methods, /^tfstate\.v1\.StateService\/GetState$/m);
  assert.match(methods, /^tfstate\.v1\.WorkspaceService\/ListWorkspaces$/m);

  for (const protocol of ["grpc", "connect"]) {
    const { stdout } = await execFileAsync(buf, [
      "curl",
      "--protocol",
      protocol,
      "--http2-prior-knowledge",
      "--data",
      '{"workspace":"default"}',
      `${served.url}/tfstate.v1.StateService/GetState`,
    ]);
    const body = JSON.parse(stdout) as { state: string; metadata: { workspace: string } };
    assert.equal(body.metadata.workspace, "default");
    assert.equal(Buffer.from(body.state, "base64").toString(), '{"serial":3}');
  }
});
