/**
 * The real server (createServer on an OCI layout directory, the http backend mounted) with the
 * identity authenticator plugged into its one authentication point, and real clients: the
 * connect-node transports for Connect, gRPC and gRPC-Web, and plain HTTP for the http backend.
 */
import { after } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  type AuthenticatorOptions,
  createAuthenticator,
  type IdentityAuthenticator,
} from "../../src/auth/authenticator.ts";
import { WorkspaceService } from "../../src/gen/tfstate/v1/workspace_service_pb.ts";
import type { Principal } from "../../src/http/server.ts";
import type { Logger } from "../../src/log.ts";
import { type DiskServer, serveOnDisk } from "../http/disk-server.ts";
import { type Protocol, transport } from "../rpc/fixture.ts";

export interface LogRecord {
  level: string;
  msg: string;
  fields: Record<string, unknown> | undefined;
}

export function recordingLogger(): { logger: Logger; logs: LogRecord[] } {
  const logs: LogRecord[] = [];
  const record =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      logs.push({ level, msg, fields });
    };
  return {
    logs,
    logger: { debug: record("debug"), info: record("info"), warn: record("warn"), error: record("error") },
  };
}

export interface IdentityServer extends DiskServer {
  auth: IdentityAuthenticator;
  /** Every principal the authenticator resolved, in order. */
  principals: Principal[];
  /** What the authenticator logged. */
  authLogs: LogRecord[];
}

/** A server whose authentication point is createAuthenticator(opts); all stopped after the file. */
export async function serveWithIdentity(opts: Omit<AuthenticatorOptions, "logger">): Promise<IdentityServer> {
  const { logger, logs } = recordingLogger();
  const auth = await createAuthenticator({ ...opts, logger });
  after(() => auth.close());
  const principals: Principal[] = [];
  const server = await serveOnDisk({
    authenticate: async (req) => {
      const p = await auth.authenticate(req);
      principals.push(p);
      return p;
    },
  });
  return { ...server, auth, principals, authLogs: logs };
}

export interface RpcOutcome {
  /** "OK" or the Connect code's name. */
  code: string;
  message: string;
}

/** WorkspaceService.ListWorkspaces over `protocol`, with this Authorization header (if any). */
export async function listWorkspaces(
  protocol: Protocol,
  url: string,
  authorization?: string,
): Promise<RpcOutcome> {
  const client = createClient(WorkspaceService, transport(protocol, url));
  try {
    await client.listWorkspaces({}, authorization ? { headers: { authorization } } : {});
    return { code: "OK", message: "" };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: Code[e.code], message: e.rawMessage };
  }
}

export interface HttpOutcome {
  status: number;
  body: string;
  headers: Headers;
}

/** A GET of a workspace's state through the http backend. */
export async function httpBackendGet(
  url: string,
  workspace: string,
  authorization?: string,
): Promise<HttpOutcome> {
  const res = await fetch(`${url}/terraform/state/${workspace}`, {
    headers: authorization ? { authorization } : {},
  });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

export const bearer = (credential: string) => `Bearer ${credential}`;
export const basic = (username: string, password: string) =>
  `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;

/** The http backend's answer to a GET that got through: 200 with a state, or 204/404 without one. */
export function passedAuthentication(status: number): boolean {
  return status !== 401 && status !== 403 && status < 500;
}
