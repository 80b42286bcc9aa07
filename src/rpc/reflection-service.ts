/**
 * gRPC server reflection, v1 and v1alpha, so grpcurl, buf curl, Postman and friends work without
 * the .proto files. The two versions are the same messages under different package names (the
 * wire format is identical), so v1alpha is served by re-reading its messages as v1 ones.
 */
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import {
  type ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
} from "../gen/grpc/reflection/v1/reflection_pb.ts";
import {
  type ServerReflection as ServerReflectionV1Alpha,
  ServerReflectionRequestSchema as V1AlphaRequestSchema,
  ServerReflectionResponseSchema as V1AlphaResponseSchema,
} from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import type { DescriptorIndex } from "./descriptor-index.ts";

type Answer = MessageInitShape<typeof ServerReflectionResponseSchema>;

export function reflectionService(index: DescriptorIndex): ServiceImpl<typeof ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      // Files already sent on this stream: a client keeps what it was given once.
      const sent = new Set<string>();
      for await (const req of requests) yield answer(index, req, sent);
    },
  };
}

export function reflectionServiceV1Alpha(
  index: DescriptorIndex,
): ServiceImpl<typeof ServerReflectionV1Alpha> {
  const v1 = reflectionService(index);
  return {
    async *serverReflectionInfo(requests, ctx) {
      async function* asV1() {
        for await (const req of requests) {
          yield fromBinary(ServerReflectionRequestSchema, toBinary(V1AlphaRequestSchema, req));
        }
      }
      for await (const res of v1.serverReflectionInfo(asV1(), ctx)) {
        const bytes = toBinary(ServerReflectionResponseSchema, create(ServerReflectionResponseSchema, res));
        yield fromBinary(V1AlphaResponseSchema, bytes);
      }
    },
  };
}

function answer(index: DescriptorIndex, req: ServerReflectionRequest, sent: Set<string>): Answer {
  const base = { validHost: req.host, originalRequest: req };
  const files = (
    file: Parameters<DescriptorIndex["withDependencies"]>[0] | undefined,
    what: string,
  ): Answer =>
    file
      ? {
          ...base,
          messageResponse: {
            case: "fileDescriptorResponse",
            value: { fileDescriptorProto: index.withDependencies(file, sent) },
          },
        }
      : error(Code.NotFound, `${what} not found`);
  const error = (code: Code, message: string): Answer => ({
    ...base,
    messageResponse: { case: "errorResponse", value: { errorCode: code, errorMessage: message } },
  });

  const q = req.messageRequest;
  switch (q.case) {
    case "fileByFilename":
      return files(index.fileByName(q.value), `file ${JSON.stringify(q.value)}`);
    case "fileContainingSymbol":
      return files(index.fileContainingSymbol(q.value), `symbol ${JSON.stringify(q.value)}`);
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = q.value;
      return files(
        index.fileContainingExtension(containingType, extensionNumber),
        `extension ${extensionNumber} of ${JSON.stringify(containingType)}`,
      );
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbers(q.value);
      if (numbers === undefined) return error(Code.NotFound, `type ${JSON.stringify(q.value)} not found`);
      return {
        ...base,
        messageResponse: {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: q.value, extensionNumber: numbers },
        },
      };
    }
    case "listServices":
      return {
        ...base,
        messageResponse: {
          case: "listServicesResponse",
          value: { service: index.services.map((name) => ({ name })) },
        },
      };
    default:
      return error(Code.InvalidArgument, "the request asks nothing (no message_request field is set)");
  }
}
