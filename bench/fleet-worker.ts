/**
 * A child process of the scale benchmark (bench/scale.ts), in one of two roles:
 * - `aedes`: the aedes broker alone (device-sim/broker.ts), so its CPU and memory can be
 *   read from /proc like mosquitto's;
 * - `gateways`: a share of the fleet (bench/lib/fleet-gateway.ts: the real Gateway on a
 *   MemoryStore, and its Uplink) behind one Region (bench/lib/fleet-region.ts), driven by
 *   messages: start, cut, restore, stop.
 * It talks over the IPC channel only (bench/lib/fleet-protocol.ts) and exits when its
 * parent goes away, so it never outlives the benchmark.
 */

import { monitorEventLoopDelay } from 'node:perf_hooks'
import { startAedes } from '../device-sim/broker.js'
import { findCompression } from '../gateway/compression.js'
import { FleetGateway } from './lib/fleet-gateway.js'
import type { Failures, FleetSpec, FromWorker, ToWorker } from './lib/fleet-protocol.js'
import { Region } from './lib/fleet-region.js'

function send(m: FromWorker): void {
  process.send?.(m)
}

function fail(e: unknown): void {
  send({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) })
  process.exit(1)
}

async function runAedes(): Promise<void> {
  const broker = await startAedes()
  process.on('message', (m: ToWorker) => {
    if (m.type !== 'stop') return
    void broker.close().then(() => {
      send({ type: 'stopped' })
      process.exit(0)
    }, fail)
  })
  send({ type: 'ready', url: broker.url })
}

/** The fleet's phases, as the worker sees them: only a restore's gateways count as drained. */
type Phase = 'idle' | 'connecting' | 'connected' | 'outage' | 'restored'

async function runGateways(): Promise<void> {
  const region = await Region.open()
  // Found once for the worker, as gateway/main.ts finds it once for its gateway.
  const compression = await findCompression()
  let gateways: FleetGateway[] = []
  let phase: Phase = 'idle'
  const online = new Set<FleetGateway>()
  const drained = new Set<FleetGateway>()
  let failures: Failures = {}
  /** performance.now() at the restore, like the gateways' attempt times. */
  let restoredAt = 0
  const reconnects = new Map<FleetGateway, { startMs: number; reconnectMs: number }>()
  // How late this process ran its callbacks during the storm: a CONNACK waits as long
  // before its gateway sees it, and that lag is in the reconnect times, not the broker's.
  const lag = monitorEventLoopDelay({ resolution: 10 })
  const onFailure = (reason: string, attemptAt: number) => {
    // An attempt begun before the restore failed at the dead end: part of the outage.
    if (phase === 'restored' && attemptAt < restoredAt) return
    failures[reason] = (failures[reason] ?? 0) + 1
  }

  const onOnline = (g: FleetGateway, attemptAt: number) => {
    if (phase === 'restored' && !reconnects.has(g)) {
      reconnects.set(g, { startMs: attemptAt - restoredAt, reconnectMs: performance.now() - attemptAt })
    }
    online.add(g)
    if (phase === 'connecting' && online.size === gateways.length) {
      phase = 'connected'
      send({ type: 'online', at: Date.now(), failures })
    }
  }
  const onDrained = (g: FleetGateway) => {
    if (phase !== 'restored' || drained.has(g)) return
    drained.add(g)
    if (drained.size < gateways.length) return
    const receipts = gateways.map((x) => x.receiptAt ?? 0)
    const republished = gateways.reduce((n, x) => n + x.republished, 0)
    const r = [...reconnects.values()]
    send({
      type: 'drained',
      at: Date.now(),
      receiptedAt: Math.max(0, ...receipts),
      republished,
      batchBytes: gateways.reduce((n, x) => n + x.batchBytes, 0),
      failures,
      startMs: r.map((x) => Math.round(x.startMs)),
      reconnectMs: r.map((x) => Math.round(x.reconnectMs)),
      lagP99Ms: Math.round(lag.percentile(99) / 1e6),
      lagMaxMs: Math.round(lag.max / 1e6),
    })
    lag.disable()
  }

  const start = (spec: FleetSpec) => {
    gateways = spec.ids.map(
      (id, i) =>
        new FleetGateway({
          id,
          area: `area-${Math.floor(i / spec.areaSize)}`,
          prefix: spec.prefix,
          broker: spec.broker,
          keepaliveS: spec.keepaliveS,
          terminals: spec.backlogStatuses,
          statusEveryMs: spec.statusEveryMs,
          connect: region.connect,
          compression,
          seed: spec.seedBase + i,
          onOnline,
          onDrained,
          onFailure,
        }),
    )
    phase = 'connecting'
    failures = {}
    for (const g of gateways) g.start()
  }

  const cut = (spec: FleetSpec) => {
    phase = 'outage'
    region.cut()
    const statuses = gateways.reduce((n, g, i) => n + g.buildBacklog(i % spec.alarmOneIn === 0), 0)
    const alarms = gateways.reduce((n, g) => n + g.waitingAlarms, 0)
    send({ type: 'cut', at: Date.now(), alarms, statuses })
  }

  const restore = () => {
    drained.clear()
    reconnects.clear()
    failures = {}
    region.restore()
    phase = 'restored'
    restoredAt = performance.now()
    lag.reset()
    lag.enable()
    send({ type: 'restored', at: Date.now() })
  }

  const stop = async () => {
    await Promise.all(gateways.map((g) => g.stop()))
    await region.close()
    send({ type: 'stopped' })
    process.exit(0)
  }

  let spec: FleetSpec | null = null
  process.on('message', (m: ToWorker) => {
    switch (m.type) {
      case 'start':
        spec = m.spec
        return start(m.spec)
      case 'cut':
        if (spec === null) return fail(new Error('cut before start'))
        return cut(spec)
      case 'restore':
        return restore()
      case 'stop':
        return void stop().catch(fail)
    }
  })
  send({ type: 'ready' })
}

process.on('disconnect', () => process.exit(0))
process.on('uncaughtException', fail)
const role = process.argv[2]
if (role === 'aedes') runAedes().catch(fail)
else if (role === 'gateways') runGateways().catch(fail)
else fail(new Error(`fleet-worker: unknown role ${String(role)}; expected aedes or gateways`))
