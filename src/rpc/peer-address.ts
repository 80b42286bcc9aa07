import { createContextKey } from "@connectrpc/connect";

/** The address of a call's peer (the connection's remote address), set by the edge for every RPC. */
export const remoteAddressKey = createContextKey<string | undefined>(undefined, {
  description: "peer address",
});
