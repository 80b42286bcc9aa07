/** The Terraform/OpenTofu `http` state backend protocol, served on the coordinator. */

export { TERRAFORM_STATE_PREFIX } from "./request-path.ts";
export { createTerraformHttpRoute, type TerraformHttpRoute } from "./route.ts";
export type {
  HttpRequest,
  HttpResponse,
  RouteContext,
  RoutePrincipal,
  TerraformHttpAccess,
  TerraformHttpAction,
  TerraformHttpAuthorize,
  TerraformHttpRouteOptions,
} from "./types.ts";
