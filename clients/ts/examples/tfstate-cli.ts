/**
 * An example of the Node client: read and write a workspace's state, take and release its lock, and
 * follow lock changes as the server pushes them. Run it with the repository's Node from clients/ts:
 *
 *   node --import tsx examples/tfstate-cli.ts --url http://127.0.0.1:8080 get default > terraform.tfstate
 *   node --import tsx examples/tfstate-cli.ts put default terraform.tfstate
 *   node --import tsx examples/tfstate-cli.ts --protocol grpc watch default
 *
 * The bearer token, when the server needs one, comes from $OCI_TFSTATE_TOKEN; --ca-file trusts a CA
 * for https:// URLs.
 */
import { createHash, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { text } from "node:stream/consumers";
import { parseArgs } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createNodeClient,
  LockEventKindSchema,
  lockHolder,
  type Protocol,
  TOKEN_ENV_VAR,
  tokenFromEnv,
} from "@oci-tfstate/client/node";

const USAGE = `usage: tfstate-cli [--url URL] [--protocol connect|grpc|grpc-web] [--ca-file FILE] COMMAND WORKSPACE [ARG]
  get WORKSPACE          write the current state to stdout
  put WORKSPACE FILE     replace the state with FILE ("-" for stdin), checked by MD5
  lock WORKSPACE         take the lock and print its ID
  unlock WORKSPACE ID    release the lock with that ID
  watch [WORKSPACE]      print lock changes until interrupted (no WORKSPACE: all of them)`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      url: { type: "string", default: "http://127.0.0.1:8080" },
      protocol: { type: "string", default: "connect" },
      "ca-file": { type: "string" },
    },
    allowPositionals: true,
  });
  const [command, workspace = "", arg] = positionals;
  const caFile = values["ca-file"];
  const client = createNodeClient({
    baseUrl: values.url,
    protocol: values.protocol as Protocol,
    // Read again for every call when set, so a rotated token reaches the next one.
    token: process.env[TOKEN_ENV_VAR] ? tokenFromEnv() : undefined,
    tls: caFile === undefined ? undefined : { ca: readFileSync(caFile) },
  });
  try {
    switch (command) {
      case "get": {
        const { state } = await client.state.getState({ workspace });
        process.stdout.write(state);
        break;
      }
      case "put": {
        if (arg === undefined) throw new Error(USAGE);
        const state = arg === "-" ? new TextEncoder().encode(await text(process.stdin)) : readFileSync(arg);
        const md5 = createHash("md5").update(state).digest();
        const { metadata } = await client.state.putState({ workspace, state, md5 });
        console.log(
          `stored ${metadata?.sizeBytes} bytes as ${metadata?.digest} (version ${metadata?.version})`,
        );
        break;
      }
      case "lock": {
        const who = `${userInfo().username}@${hostname()}`;
        const { lock } = await client.state.lock({
          workspace,
          lock: { id: randomUUID(), operation: "tfstate-cli", who },
        });
        console.log(lock?.id);
        break;
      }
      case "unlock":
        await client.state.unlock({ workspace, lockId: arg ?? "" });
        break;
      case "watch": {
        // Ctrl-C aborts the stream; the loop then ends with a CANCELED error.
        const abort = new AbortController();
        process.once("SIGINT", () => abort.abort());
        process.once("SIGTERM", () => abort.abort());
        try {
          for await (const event of client.state.watchLock({ workspace }, { signal: abort.signal })) {
            const holder = event.lock
              ? ` id=${event.lock.id} who=${event.lock.who} operation=${event.lock.operation}`
              : "";
            console.log(`${LockEventKindSchema.value[event.kind]?.localName} ${event.workspace}${holder}`);
          }
        } catch (err) {
          if (ConnectError.from(err).code !== Code.Canceled) throw err;
        }
        break;
      }
      default:
        throw new Error(USAGE);
    }
  } finally {
    client.close();
  }
}

main().catch((err: unknown) => {
  const holder = lockHolder(err)?.holder;
  const message = err instanceof Error ? err.message : String(err);
  const held = holder ? ` (held by ${holder.who}, lock ID ${holder.id}, operation ${holder.operation})` : "";
  process.stderr.write(`tfstate-cli: ${message}${held}\n`);
  process.exitCode = 1;
});
