/**
 * What the scale benchmark and its child processes (bench/fleet-worker.ts) say to each
 * other over the Node IPC channel. Two roles: `gateways` runs a share of the simulated
 * fleet, `aedes` runs the aedes broker alone, so that each broker's CPU can be read from
 * /proc on its own.
 */

export type FleetRole = 'gateways' | 'aedes'

/** What a gateways worker is told to run. */
export interface FleetSpec {
  broker: string
  prefix: string
  /** Gateway ids of this worker. */
  ids: string[]
  /** Gateway i of this worker seeds its random numbers with seedBase + i. */
  seedBase: number
  /** Gateways per area: each gateway also subscribes to its area's command topic. */
  areaSize: number
  keepaliveS: number
  /** The gateways' status interval: each publishes its status this often while online. */
  statusEveryMs: number
  /** Terminals per gateway: each folds a heartbeat during the outage; the folds go as one batch. */
  backlogStatuses: number
  /** One gateway in this many also stores an alarm during the outage. */
  alarmOneIn: number
}

export type ToWorker =
  | { type: 'start'; spec: FleetSpec }
  /** The regional outage begins: every connection cut, attempts fail until `restore`. */
  | { type: 'cut' }
  | { type: 'restore' }
  | { type: 'stop' }

/** Failed connection attempts and lost connections in a phase, by reason. */
export type Failures = Record<string, number>

export type FromWorker =
  | { type: 'ready'; url?: string }
  /** Every gateway of the worker has been online (birth and subscriptions acknowledged). */
  | { type: 'online'; at: number; failures: Failures }
  /** Every connection was cut and every backlog is built: alarms stored, terminal status folds waiting. */
  | { type: 'cut'; at: number; alarms: number; statuses: number }
  /** The link is back. */
  | { type: 'restored'; at: number }
  /**
   * After a restore: every alarm has its receipt and every batch its PUBACK. Per gateway,
   * of its first attempt after the restore that succeeded: `startMs`, when it began after
   * the restore (the backoff's pacing: the real policy's jitter), and `reconnectMs`, from
   * its start to online (the broker's service time, and this worker's own lag: `lagP99Ms`
   * and `lagMaxMs` of its event loop from the restore on). `batchBytes`: the batches on the wire.
   */
  | { type: 'drained'; at: number; receiptedAt: number; republished: number; batchBytes: number; failures: Failures; startMs: number[]; reconnectMs: number[]; lagP99Ms: number; lagMaxMs: number }
  | { type: 'stopped' }
  | { type: 'error'; message: string }
