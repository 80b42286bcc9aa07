/**
 * StateService's reads of what a state says (GetStateSummary, GetOutputs, DiffVersions), over
 * StateInsights. Outputs are masked below this layer (src/summary), so no handler can send a
 * sensitive value.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { StateService } from "../gen/tfstate/v1/state_service_pb.ts";
import type { SummarizedState } from "../summary/state-insights.ts";
import { callOptions } from "./call-options.ts";
import { stateMetadata } from "./convert.ts";
import { optionalVersionArg, type ServiceDeps, versionArg } from "./deps.ts";
import { diffToProto, formatToProto, outputToProto, summaryToProto } from "./summary-convert.ts";

type InsightMethods = Pick<
  ServiceImpl<typeof StateService>,
  "getStateSummary" | "getOutputs" | "diffVersions"
>;

export function insightMethods({ insights }: ServiceDeps): InsightMethods {
  return {
    async getStateSummary(req, ctx) {
      const s = await insights.summary(req.workspace, optionalVersionArg(req.version), callOptions(ctx));
      return { metadata: metadataOf(req.workspace, s), summary: summaryToProto(s.summary, true) };
    },

    async getOutputs(req, ctx) {
      const s = await insights.summary(req.workspace, optionalVersionArg(req.version), callOptions(ctx));
      return {
        metadata: metadataOf(req.workspace, s),
        format: formatToProto(s.summary.format),
        outputs: s.summary.outputs.map(outputToProto),
        serial: BigInt(s.summary.serial),
      };
    },

    async diffVersions(req, ctx) {
      const from = versionArg(req.fromVersion, "from_version");
      const to = optionalVersionArg(req.toVersion, "to_version");
      return diffToProto(await insights.diff(req.workspace, from, to, callOptions(ctx)));
    },
  };
}

function metadataOf(workspace: string, s: SummarizedState) {
  return stateMetadata({ workspace, ...s });
}
