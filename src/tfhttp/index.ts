/** The Terraform/OpenTofu `http` state backend protocol, served on the coordinator. */

export { policyAuthorizer } from "./authorization.ts";
export { TERRAFORM_STATE_PREFIX } from "./request-path.ts";
export { createTerraformHttpRoute, TERRAFORM_HTTP_ROUTES, type TerraformHttpRoute } from "./route.ts";
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
