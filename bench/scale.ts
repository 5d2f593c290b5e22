/**
 * Platform scale (issue 6, item 7): a fleet of gateways against aedes and against
 * mosquitto, side by side, each broker in its own process. Each gateway is the real one
 * (gateway/gateway.ts on a MemoryStore, its real Uplink; bench/lib/fleet-gateway.ts), with
 * its terminals played at its store: what it publishes, and when, is its own doing.
 *
 * Per broker:
 * 1. connect: every gateway starts its uplink at the same moment (no jitter: the worst
 *    burst); the time until the platform has seen every birth;
 * 2. steady state: every gateway connected, each publishing its status (retained) once a
 *    status interval, a minute here, the phase set by its connection; the broker's CPU
 *    and resident memory over a window;
 * 3. regional outage: every gateway's connection cut at once (the platform stays up); the
 *    broker publishes the wills; while the link is down each gateway folds a heartbeat
 *    of each of its terminals and 1 in 20 stores an alarm; every attempt fails, and the
 *    gateway's real backoff (full jitter, gateway/uplink-backoff.ts) counts each failure, its
 *    ceiling at 5 s while an alarm waits [UPLINK-6];
 * 4. link restored: the reconnect storm, paced by the backoff timers: the time until the
 *    platform has every birth, every alarm and every batch (the folds, zstd), and until
 *    every alarm's receipt is back at its gateway; the broker's peak CPU meanwhile.
 *
 * The gateways run in worker processes (bench/fleet-worker.ts), the platform (the operator
 * console) in this process, each broker in its own, so the broker's CPU is its own. No
 * goal is set for this item: the figures, aedes / mosquitto, and what limits them.
 */

import { setTimeout as sleep } from 'node:timers/promises'
import { BROKERS, listenOverflows, openFilesLimit, startScaleBroker, type BrokerName } from './lib/fleet-brokers.js'
import { FleetChild } from './lib/fleet-child.js'
import { Platform } from './lib/fleet-platform.js'
import type { Failures, FleetSpec } from './lib/fleet-protocol.js'
import { cpuPercent, sampleProc, watchProc, type ProcSample } from './lib/proc.js'
import { metric, round, type BenchContext, type Benchmark, type Metric } from './lib/report.js'
import { percentile } from './lib/stats.js'

const PREFIX = 'steppelink/v1'

interface Plan {
  gateways: number
  workers: number
  /** Steady-state window, ms. */
  steadyMs: number
  /** Regional outage, from the cut to the restore, ms. */
  outageMs: number
  /** The gateways' status interval: each publishes its status this often (the issue's "a status every minute"). */
  statusEveryMs: number
  keepaliveS: number
  /** Terminals per gateway: statuses folded into the outage's batch. */
  backlogStatuses: number
  alarmOneIn: number
  areaSize: number
  connectTimeoutMs: number
}

const COMMON = { workers: 2, statusEveryMs: 60_000, keepaliveS: 60, backlogStatuses: 30, alarmOneIn: 20, areaSize: 50 }
// Quick: 500 gateways and short phases, both brokers within the 60 s budget. Full: 2,000,
// a minute of steady state (one status from each gateway), and an outage of 15 s, which is
// enough: the fast failures push the unluckiest gateways' backoff ceilings to about 8 × the
// outage, so the storm alone lasts minutes; a longer one only stretches it towards 300 s.
const QUICK: Plan = { ...COMMON, gateways: 500, steadyMs: 4_000, outageMs: 2_000, connectTimeoutMs: 30_000 }
const FULL: Plan = { ...COMMON, gateways: 2000, steadyMs: 60_000, outageMs: 15_000, connectTimeoutMs: 120_000 }

/** Samples of the broker, taken every this often, for its peak CPU. */
const SAMPLE_MS = 250
/** Bound on the storm: no backoff wait exceeds the policy's maximum, 300 s; plus a minute. */
const STORM_TIMEOUT_MS = 360_000

interface ConnectResult {
  connectS: number
  connectCpuPeakPct: number
  connectFailures: Failures
  connectOverflows: number | null
}

interface SteadyResult {
  steadyCpuPct: number
  /** Statuses that reached the platform during the window. */
  steadyStatuses: number
  steadyRssMB: number
  /** Resident memory of all the gateway workers together: what a simulated gateway weighs. */
  workersRssMB: number
}

interface OutageResult {
  deathsS: number
  alarms: number
}

interface StormResult {
  onlineS: number
  drainedS: number
  receiptedS: number
  stormCpuPeakPct: number
  stormCpuMeanPct: number
  /** From the cut to drained. */
  stormRssPeakMB: number
  /** When the successful attempts began after the restore: the backoff's pacing. */
  lastStartS: number
  medianStartS: number
  /** Per gateway, from the start of its successful attempt after the restore to online. */
  reconnectP50Ms: number
  reconnectP99Ms: number
  /** The gateway workers' event-loop delay from the restore to drained, worst worker: their share of the reconnect times. */
  workersLagP99Ms: number
  workersLagMaxMs: number
  republished: number
  /** CPU of the gateway workers and of the platform (this process) during the storm, % of one core. */
  clientsCpuPct: number
  stormFailures: Failures
  stormOverflows: number | null
}

interface BrokerRun extends ConnectResult, SteadyResult, OutageResult, StormResult {
  broker: BrokerName
  fdLimit: number
}

/** One broker with the fleet and the platform around it. */
interface Fleet {
  plan: Plan
  brokerPid: number
  brokerUrl: string
  workers: FleetChild[]
  platform: Platform
  log: (line: string) => void
}

export const benchmark: Benchmark = {
  name: 'scale',
  title: 'Platform scale: a fleet of gateways, aedes vs mosquitto',
  async run(ctx: BenchContext): Promise<Metric[]> {
    const plan = ctx.quick ? QUICK : FULL
    ctx.log(`${plan.gateways} gateways in ${plan.workers} workers${ctx.quick ? ' (--quick: 500, full mode runs 2,000)' : ''}`)
    const runs = new Map<BrokerName, BrokerRun>()
    for (const name of BROKERS) runs.set(name, await runBroker(name, plan, ctx))
    return toMetrics(runs.get('aedes')!, runs.get('mosquitto')!, plan)
  },
}

async function runBroker(name: BrokerName, plan: Plan, ctx: BenchContext): Promise<BrokerRun> {
  const broker = await startScaleBroker(name)
  const workers: FleetChild[] = []
  let platform: Platform | null = null
  try {
    const fdLimit = openFilesLimit(broker.pid)
    if (fdLimit < plan.gateways + 100) throw new Error(`${name} may open ${fdLimit} files: too few for ${plan.gateways} connections (raise ulimit -n)`)
    platform = await Platform.start(broker.url, PREFIX)
    for (let w = 0; w < plan.workers; w++) workers.push(new FleetChild('gateways', `gateways worker ${w}`))
    await Promise.all(workers.map((w) => w.next('ready', 10_000)))
    const fleet: Fleet = { plan, brokerPid: broker.pid, brokerUrl: broker.url, workers, platform, log: (line) => ctx.log(`${name}: ${line}`) }
    const connect = await connectAll(fleet)
    const steady = await steadyState(fleet)
    const stormWatch = watchProc(broker.pid, SAMPLE_MS)
    const outage = await regionalOutage(fleet)
    const storm = await reconnectStorm(fleet, outage.alarms, stormWatch)
    return { broker: name, fdLimit, ...connect, ...steady, ...outage, ...storm }
  } finally {
    await Promise.all(workers.map((w) => w.stop()))
    await platform?.close()
    await broker.close()
  }
}

/** 1. Every uplink started at once (no jitter: the worst burst), until every birth is at the platform. */
async function connectAll(f: Fleet): Promise<ConnectResult> {
  const { plan, platform: p } = f
  const watch = watchProc(f.brokerPid, SAMPLE_MS)
  const overflows = listenOverflows()
  const at = Date.now()
  specs(plan, f.brokerUrl).forEach((spec, i) => {
    f.workers[i]!.send({ type: 'start', spec })
  })
  await p.until(() => p.births.size >= plan.gateways, plan.connectTimeoutMs, 'every birth')
  const online = await Promise.all(f.workers.map((w) => w.next('online', plan.connectTimeoutMs)))
  const r: ConnectResult = {
    connectS: (p.births.lastAt - at) / 1000,
    connectCpuPeakPct: peakCpu(watch.stop(), at),
    connectFailures: merge(online.map((o) => o.failures)),
    connectOverflows: since(overflows),
  }
  f.log(`${plan.gateways} connected, births at the platform in ${r.connectS.toFixed(2)} s; ${describeFailures(r.connectFailures)}; listen overflows ${r.connectOverflows}`)
  return r
}

/** 2. All connected, each gateway's status once a minute: the broker's CPU and memory. */
async function steadyState(f: Fleet): Promise<SteadyResult> {
  await sleep(500)
  const before = sample(f.brokerPid)
  const statusesBefore = f.platform.statuses
  await sleep(f.plan.steadyMs)
  const after = sample(f.brokerPid)
  const steadyStatuses = f.platform.statuses - statusesBefore
  const workersRssMB = f.workers.map((w) => sample(w.pid).rssKB).reduce((a, b) => a + b, 0) / 1024
  const r = { steadyCpuPct: cpuPercent(before, after), steadyStatuses, steadyRssMB: after.rssKB / 1024, workersRssMB }
  f.log(`steady: ${r.steadyCpuPct.toFixed(2)} % CPU, ${r.steadyRssMB.toFixed(0)} MB over ${f.plan.steadyMs / 1000} s; ${steadyStatuses} statuses reached the platform meanwhile`)
  return r
}

/** 3. Every connection cut at once; the wills reach the platform; each gateway builds its backlog; the outage lasts. */
async function regionalOutage(f: Fleet): Promise<OutageResult> {
  const { plan, platform: p } = f
  p.reset()
  const at = Date.now()
  for (const w of f.workers) w.send({ type: 'cut' })
  const cuts = await Promise.all(f.workers.map((w) => w.next('cut', 30_000)))
  const alarms = cuts.reduce((n, c) => n + c.alarms, 0)
  const statuses = cuts.reduce((n, c) => n + c.statuses, 0)
  await p.until(() => p.deaths.size >= plan.gateways, 30_000, 'every death (will)')
  const deathsS = (p.deaths.lastAt - at) / 1000
  f.log(`cut: every will at the platform in ${deathsS.toFixed(2)} s; ${alarms} alarms and ${statuses} terminal status folds (${plan.backlogStatuses} a gateway) wait`)
  await sleep(Math.max(0, at + plan.outageMs - Date.now()))
  return { deathsS, alarms }
}

/** 4. The link is back: the storm, paced by each gateway's backoff timer, until every backlog is drained. */
async function reconnectStorm(f: Fleet, alarms: number, watch: ReturnType<typeof watchProc>): Promise<StormResult> {
  const { plan, platform: p } = f
  p.reset()
  const clientPids = [...f.workers.map((w) => w.pid), process.pid]
  const clientsBefore = clientPids.map(sample)
  const overflows = listenOverflows()
  const at = Date.now()
  for (const w of f.workers) w.send({ type: 'restore' })
  await Promise.all(f.workers.map((w) => w.next('restored', 10_000)))
  await p.until(() => p.births.size >= plan.gateways && p.alerts.size >= alarms && p.batches.size >= plan.gateways, STORM_TIMEOUT_MS, 'every birth, alarm and batch after the restore')
  const drained = await Promise.all(f.workers.map((w) => w.next('drained', STORM_TIMEOUT_MS)))
  const clientsAfter = clientPids.map(sample)
  const samples = watch.stop()
  const storm = samples.filter((s) => s.at >= at - SAMPLE_MS)
  const reconnects = drained.flatMap((d) => d.reconnectMs)
  const batchKB = drained.reduce((n, d) => n + d.batchBytes, 0) / 1024
  const starts = drained.flatMap((d) => d.startMs)
  const r: StormResult = {
    onlineS: (p.births.lastAt - at) / 1000,
    drainedS: (Math.max(p.alerts.lastAt, p.batches.lastAt) - at) / 1000,
    receiptedS: alarms === 0 ? 0 : (Math.max(...drained.map((d) => d.receiptedAt)) - at) / 1000,
    stormCpuPeakPct: peakCpu(storm, at),
    stormCpuMeanPct: cpuPercent(storm[0]!, storm[storm.length - 1]!),
    stormRssPeakMB: Math.max(...samples.map((s) => s.rssKB)) / 1024,
    lastStartS: Math.max(...starts) / 1000,
    medianStartS: percentile(starts, 50) / 1000,
    reconnectP50Ms: percentile(reconnects, 50),
    reconnectP99Ms: percentile(reconnects, 99),
    workersLagP99Ms: Math.max(...drained.map((d) => d.lagP99Ms)),
    workersLagMaxMs: Math.max(...drained.map((d) => d.lagMaxMs)),
    republished: drained.reduce((n, d) => n + d.republished, 0),
    clientsCpuPct: clientsBefore.reduce((sum, b, i) => sum + cpuPercent(b, clientsAfter[i]!), 0),
    stormFailures: merge(drained.map((d) => d.failures)),
    stormOverflows: since(overflows),
  }
  f.log(
    `storm: online in ${r.onlineS.toFixed(2)} s (attempt to online p50 ${r.reconnectP50Ms} ms, p99 ${r.reconnectP99Ms} ms), ` +
      `drained in ${r.drainedS.toFixed(2)} s (batches ${batchKB.toFixed(0)} KiB), receipts back in ${r.receiptedS.toFixed(2)} s ` +
      `(the last successful attempt began ${r.lastStartS.toFixed(2)} s after the restore; workers' event-loop delay p99 ${r.workersLagP99Ms} ms, max ${r.workersLagMaxMs} ms); broker peak ${r.stormCpuPeakPct.toFixed(0)} % CPU; ` +
      `${describeFailures(r.stormFailures)}; listen overflows ${r.stormOverflows}; ${p.describe()}`,
  )
  if (p.errors.length > 0) f.log(`platform errors: ${p.errors.join('; ')}`)
  return r
}

function since(before: number | null): number | null {
  const now = listenOverflows()
  return before === null || now === null ? null : now - before
}

/** The fleet split into contiguous shares, one per worker. */
function specs(plan: Plan, broker: string): FleetSpec[] {
  const ids = Array.from({ length: plan.gateways }, (_, i) => `gw-${String(i).padStart(5, '0')}`)
  const per = Math.ceil(plan.gateways / plan.workers)
  return Array.from({ length: plan.workers }, (_, w) => ({
    broker,
    prefix: PREFIX,
    ids: ids.slice(w * per, (w + 1) * per),
    seedBase: 1 + w * per,
    areaSize: plan.areaSize,
    keepaliveS: plan.keepaliveS,
    statusEveryMs: plan.statusEveryMs,
    backlogStatuses: plan.backlogStatuses,
    alarmOneIn: plan.alarmOneIn,
  }))
}

function merge(all: Failures[]): Failures {
  const out: Failures = {}
  for (const f of all) for (const [reason, n] of Object.entries(f)) out[reason] = (out[reason] ?? 0) + n
  return out
}

function describeFailures(f: Failures): string {
  const entries = Object.entries(f).sort((x, y) => y[1] - x[1])
  if (entries.length === 0) return 'no attempt failed'
  const total = entries.reduce((n, [, k]) => n + k, 0)
  return `${total} attempts failed (${entries.map(([reason, k]) => `${k}× ${reason}`).join(', ')})`
}

function sample(pid: number): ProcSample {
  const s = sampleProc(pid)
  if (s === null) throw new Error(`process ${pid} is gone`)
  return s
}

/** The highest CPU % between two consecutive samples, from `from` on. */
function peakCpu(samples: ProcSample[], from: number): number {
  let peak = 0
  for (let i = 1; i < samples.length; i++) {
    if (samples[i]!.at < from) continue
    peak = Math.max(peak, cpuPercent(samples[i - 1]!, samples[i]!))
  }
  return peak
}

function toMetrics(a: BrokerRun, m: BrokerRun, plan: Plan): Metric[] {
  const n = plan.gateways.toLocaleString('en-US')
  const side = (name: string, unit: string, pick: (r: BrokerRun) => number, note: string, places = 2): Metric =>
    metric({ name: `scale.${name}`, value: round(pick(a), places), unit, baseline: round(pick(m), places), baselineName: 'mosquitto', note })
  const clients = `gateway workers + platform used ${a.clientsCpuPct.toFixed(0)} % (aedes run) and ${m.clientsCpuPct.toFixed(0)} % (mosquitto run) of one core meanwhile, on the same 2 cores`
  return [
    metric({
      name: 'scale.gateways',
      value: plan.gateways,
      unit: 'connections',
      baseline: null,
      note:
        `gateways, each the real Gateway on a MemoryStore with its real Uplink (mqtt.js, persistent session), in ${plan.workers} worker processes ` +
        `(${Math.round(a.workersRssMB)} MB resident together); broker fd limit ${a.fdLimit} / ${m.fdLimit}`,
    }),
    side(
      'connect.s',
      's',
      (r) => r.connectS,
      `all ${n} uplinks started at once (no jitter), until the platform had every retained birth; aedes: ${describeFailures(a.connectFailures)}; ` +
        `mosquitto: ${describeFailures(m.connectFailures)}; kernel listen-queue overflows (system-wide) ${a.connectOverflows} / ${m.connectOverflows}`,
    ),
    side('connect.cpu.peak.pct', '%', (r) => r.connectCpuPeakPct, `broker CPU, peak over ${SAMPLE_MS} ms windows, during the connect burst (100 % = one core)`, 0),
    side(
      'steady.cpu.pct',
      '%',
      (r) => r.steadyCpuPct,
      `broker CPU with ${n} connected, each publishing its status (retained) once a minute, over ${plan.steadyMs / 1000} s (${a.steadyStatuses} / ${m.steadyStatuses} statuses at the platform); the phases are set by the connect burst, so the statuses come as a wave over ${a.connectS.toFixed(0)} / ${m.connectS.toFixed(0)} s`,
    ),
    side('steady.rss.mb', 'MB', (r) => r.steadyRssMB, `broker resident memory with ${n} persistent sessions connected`, 1),
    side('outage.wills.s', 's', (r) => r.deathsS, `every connection cut at once (regional outage); until the platform had every will (death)`),
    side(
      'storm.online.s',
      's',
      (r) => r.onlineS,
      `link restored after ${plan.outageMs / 1000} s of failing attempts; until every birth at the platform. Paced by the backoff (full jitter, same seeds for both): ` +
        `the last successful attempt began ${a.lastStartS.toFixed(1)} / ${m.lastStartS.toFixed(1)} s after the restore (median ${a.medianStartS.toFixed(1)} / ${m.medianStartS.toFixed(1)} s); ` +
        `after it, aedes: ${describeFailures(a.stormFailures)}; mosquitto: ${describeFailures(m.stormFailures)}; listen-queue overflows ${a.stormOverflows} / ${m.stormOverflows}`,
    ),
    side(
      'storm.reconnect.p50.ms',
      'ms',
      (r) => r.reconnectP50Ms,
      `per gateway, from the start of the attempt that succeeded to online (the CONNACK; birth and SUBSCRIBE written, [UPLINK-4]): what the broker adds, backoff aside, ` +
        `and what the gateway workers (a thousand gateways to a process) lag: their event loops ran up to ${a.workersLagP99Ms} / ${m.workersLagP99Ms} ms late at p99 (max ${a.workersLagMaxMs} / ${m.workersLagMaxMs} ms)`,
      0,
    ),
    side('storm.reconnect.p99.ms', 'ms', (r) => r.reconnectP99Ms, 'the same, 99th percentile over the fleet', 0),
    side(
      'storm.drained.s',
      's',
      (r) => r.drainedS,
      `until the platform had every alarm (${a.alarms}, 1 in ${plan.alarmOneIn}) and every batch (${n} × ${plan.backlogStatuses} statuses, zstd); ${clients}`,
    ),
    side(
      'storm.receipted.s',
      's',
      (r) => r.receiptedS,
      `until every alarm's receipt was back at its gateway (a gateway with an alarm waiting retries within 5 s, [UPLINK-6]); alarm republications (no receipt within 4-6 s): ${a.republished} / ${m.republished}`,
    ),
    side(
      'storm.cpu.peak.pct',
      '%',
      (r) => r.stormCpuPeakPct,
      `broker CPU, peak over ${SAMPLE_MS} ms windows, restore to drained (mean ${a.stormCpuMeanPct.toFixed(0)} / ${m.stormCpuMeanPct.toFixed(0)} %)`,
      0,
    ),
    side('storm.rss.peak.mb', 'MB', (r) => r.stormRssPeakMB, 'broker resident memory, peak from the cut to drained', 1),
  ]
}
