import { type Counter, type Histogram, metrics, type UpDownCounter } from "@opentelemetry/api";

/** The coordinator's instruments (no-ops until an OpenTelemetry SDK is registered). */
export interface CoordinatorMetrics {
  activeWatchers: UpDownCounter;
  activePollers: UpDownCounter;
  /** Seconds a Lock call with a wait spent before it got the lock or gave up; `outcome` attribute. */
  lockWait: Histogram;
  /** Writes refused by fencing. */
  fencedWrites: Counter;
}

export function createCoordinatorMetrics(): CoordinatorMetrics {
  const meter = metrics.getMeter("oci-tfstate");
  return {
    activeWatchers: meter.createUpDownCounter("oci_tfstate.watch.active", {
      description: "Open WatchLock streams",
    }),
    activePollers: meter.createUpDownCounter("oci_tfstate.watch.pollers", {
      description:
        "Registry lock pollers running (one per watched workspace, one for all-workspace watchers)",
    }),
    lockWait: meter.createHistogram("oci_tfstate.lock.wait.duration", {
      description: "Time a Lock call with a wait spent until it got the lock or gave up",
      unit: "s",
    }),
    fencedWrites: meter.createCounter("oci_tfstate.lock.fenced_writes", {
      description: "Writes refused because they did not carry the lock holder's ID",
    }),
  };
}
