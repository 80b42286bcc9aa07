import type { Coordinator } from "../coordinator/types.ts";
import type { TfstateServer } from "./server.ts";

/**
 * The shutdown order. The server stops taking connections, reports not ready and ends watch
 * streams; at the same time the coordinator refuses new work, abandons lock waits (UNAVAILABLE, so
 * clients retry elsewhere), lets running operations finish and awaits retention. Then every
 * connection has closed (or was cut off at the end of the grace period).
 */
export async function stopGracefully(server: TfstateServer, coordinator: Coordinator): Promise<void> {
  const connectionsClosed = server.shutdown();
  try {
    await coordinator.close();
  } finally {
    await connectionsClosed;
  }
}
