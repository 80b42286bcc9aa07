/**
 * GetState's work, shared by the Connect handler (rpc/state-service.ts) and the endpoint that
 * serves binary GetState calls below Connect (http/get-state-endpoint.ts): the same checks, the
 * same errors, the same response, however the call came in.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CallOptions } from "../call-options.ts";
import { NotFoundError } from "../errors.ts";
import type { GetStateRequest, GetStateResponseSchema } from "../gen/tfstate/v1/state_service_pb.ts";
import { metadataFromPayload, notModifiedMetadata } from "./convert.ts";
import type { RpcDeps } from "./deps.ts";
import { checkUnaryState } from "./size-limits.ts";

export type GetStateAnswer = MessageInitShape<typeof GetStateResponseSchema>;

/**
 * Reads the state `req` asks for. `unaryLimit` is the largest state the caller's message can
 * carry (see unaryStateLimit). The state bytes in the answer are the coordinator's own buffer,
 * possibly its cache's: not to be modified.
 */
export async function getStateAnswer(
  deps: Pick<RpcDeps, "coordinator">,
  req: Pick<GetStateRequest, "workspace" | "ifNoneMatch">,
  opts: CallOptions,
  unaryLimit: number,
): Promise<GetStateAnswer> {
  const ws = req.workspace;
  if (req.ifNoneMatch !== "") {
    // The manifest alone says whether the caller's copy is current: no blob read for that.
    const head = await deps.coordinator.stateHead(ws, opts);
    if (!head) throw new NotFoundError(`workspace ${JSON.stringify(ws)} has no state`);
    if (head.digest === req.ifNoneMatch) {
      return { metadata: notModifiedMetadata(ws, head), notModified: true };
    }
  }
  const payload = await deps.coordinator.getState(ws, opts);
  if (!payload) throw new NotFoundError(`workspace ${JSON.stringify(ws)} has no state`);
  checkUnaryState(`the state of workspace ${JSON.stringify(ws)}`, payload.size, unaryLimit);
  return { metadata: metadataFromPayload(ws, payload), state: payload.data };
}
