/**
 * Footprint of the real gateway process on a board: resident memory and CPU idle (a
 * household at normal load: connected, its terminals heartbeating, nothing else) and
 * during a burst of 50 presses, and start-up time to "gateway ready" and to the first
 * birth at the broker.
 *
 * Side by side in one run: the gateway with its defaults, the same gateway under
 * `node --lite-mode` (the deployment change this benchmark recommends for boards), and a
 * bare Node process (`setInterval` only) as the floor that no Node program goes below.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { waitUntil } from '../device-sim/wait.js'
import type { EventKind } from '../protocol/messages.js'
import { NORMAL_LOAD, startHousehold, type GatewayStart, type Household, type Pressed } from './lib/household-rig.js'
import { cpuPercent, watchProc, type ProcSample } from './lib/proc.js'
import { metric, round, type Benchmark, type BenchContext, type Metric } from './lib/report.js'
import { mean, percentile } from './lib/stats.js'

/** Resident memory goal for a 512 MB board, MB. */
const RSS_GOAL_MB = 80
const CPU_IDLE_GOAL_PCT = 1
const READY_GOAL_MS = 2000
/** The burst: this many presses at once, spread over the terminals. */
const BURST = 50
/** Alarms and the lower classes alternately, as a storm night might bring them. */
const BURST_KINDS: readonly EventKind[] = ['emergency', 'test', 'fire', 'mains-lost', 'medical', 'mains-restored', 'panic', 'battery-low']
/** The V8 flag recommended for boards (see the report): interpreter and baseline code only. */
export const LITE_FLAGS = ['--lite-mode'] as const
const BARE_NODE_IDLE = 'setInterval(() => {}, 1000)'
const BARE_NODE_READY = "console.log('ready')"
const SAMPLE_MS = 250

interface Settings {
  idleS: number
  /** Restarts timed per system (after the first start, which creates the store). */
  startups: number
  /** After the sessions are back, before the idle window: start-up work settles. */
  settleS: number
}

const QUICK: Settings = { idleS: 20, startups: 2, settleS: 2 }
const FULL: Settings = { idleS: 60, startups: 7, settleS: 5 }

/** Resident memory split: private (V8 heap, malloc) and file-backed (the node binary, libraries). */
interface Resident {
  rssMB: number
  anonMB: number
  fileMB: number
  /** Peak RSS since the process started (VmHWM): start-up included. */
  hwmMB: number
}

function residentOf(pid: number): Resident {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kB = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)
    if (m === null) throw new Error(`/proc/${pid}/status has no ${key}`)
    return Number(m[1])
  }
  const mb = (x: number) => round(x / 1024, 1)
  return { rssMB: mb(kB('VmRSS')), anonMB: mb(kB('RssAnon')), fileMB: mb(kB('RssFile')), hwmMB: mb(kB('VmHWM')) }
}

/** A Node process with nothing to do but wait: the floor of any Node program's footprint. */
function startBareNode(): ChildProcess {
  return spawn(process.execPath, ['-e', BARE_NODE_IDLE], { stdio: 'ignore' })
}

/** ms from spawning `node -e "console.log('ready')"` to its line: Node's own start-up. */
async function bareNodeReadyMs(): Promise<number> {
  const t0 = Date.now()
  const child = spawn(process.execPath, ['-e', BARE_NODE_READY], { stdio: ['ignore', 'pipe', 'ignore'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const ms = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', () => resolve(Date.now() - t0))
    child.once('error', reject)
  })
  await exited
  return ms
}

interface Startups {
  readyMs: number[]
  birthMs: number[]
}

function record(into: Startups, s: GatewayStart): void {
  into.readyMs.push(s.readyAt - s.spawnedAt)
  into.birthMs.push(s.birthAt - s.spawnedAt)
}

/** Samples over a window: mean RSS, CPU % of one core, peak RSS. */
interface Window {
  rssMB: number
  peakMB: number
  cpuPct: number
  cpuMs: number
  ms: number
}

function windowOf(samples: readonly ProcSample[]): Window {
  if (samples.length < 2) throw new Error('a window needs at least two samples (the process exited?)')
  const first = samples[0]!
  const last = samples.at(-1)!
  return {
    rssMB: round(mean(samples.map((s) => s.rssKB)) / 1024, 1),
    peakMB: round(Math.max(...samples.map((s) => s.rssKB)) / 1024, 1),
    cpuPct: round(cpuPercent(first, last), 2),
    cpuMs: last.cpuMs - first.cpuMs,
    ms: last.at - first.at,
  }
}

/** What one gateway configuration showed. */
interface Observed {
  idle: Window
  idleResident: Resident
  burst: Window
  startups: Startups
}

async function burstOf(h: Household, pid: number): Promise<Window> {
  const watch = watchProc(pid, SAMPLE_MS)
  const pressed: Pressed[] = []
  for (let i = 0; i < BURST; i++) pressed.push(h.press(i % h.terminals.length, BURST_KINDS[i % BURST_KINDS.length]!))
  await h.waitForDelivery(pressed, 'received', 120_000)
  // The last receipts' INDICATEs and the store's writes right after count too.
  await sleep(1000)
  return windowOf(watch.stop())
}

export const benchmark: Benchmark = {
  name: 'footprint',
  title: 'Footprint of the gateway process (memory, CPU, start-up)',
  async run(ctx: BenchContext): Promise<Metric[]> {
    const s = ctx.quick ? QUICK : FULL
    const dirs = { plain: join(ctx.dir, 'default'), lite: join(ctx.dir, 'lite') }
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true })
    const households: Household[] = []
    let bare: ChildProcess | null = null
    try {
      ctx.log(`starting two households of ${NORMAL_LOAD.terminals} terminals: gateway as is, and under node ${LITE_FLAGS.join(' ')}`)
      const [plain, lite] = await Promise.all([startHousehold({ dir: dirs.plain, ack: 'auto' }), startHousehold({ dir: dirs.lite, ack: 'auto', nodeFlags: LITE_FLAGS })])
      households.push(plain.household, lite.household)

      // Start-up: one at a time (two cores; parallel starts would slow each other), the
      // three systems interleaved so that a noisy moment hits all three alike.
      const times = { plain: { readyMs: [], birthMs: [] } as Startups, lite: { readyMs: [], birthMs: [] } as Startups, bare: [] as number[] }
      for (let i = 0; i < s.startups; i++) {
        record(times.plain, await plain.household.restartGateway())
        record(times.lite, await lite.household.restartGateway())
        times.bare.push(await bareNodeReadyMs())
      }
      ctx.log(`start-up, ready ms: default ${times.plain.readyMs.join(' ')}; lite ${times.lite.readyMs.join(' ')}; bare node ${times.bare.join(' ')}`)
      // The bare node starts now so that its own start-up is over before the idle window.
      bare = startBareNode()
      const bareChild = bare
      await waitUntil(() => bareChild.pid !== undefined, { what: 'bare node spawned' })
      await Promise.all(households.map((h) => h.waitForSessions()))
      await sleep(s.settleS * 1000)

      const pid = (h: Household) => h.gateway!.child.pid!
      ctx.log(`idle for ${s.idleS} s (terminals heartbeating every ${NORMAL_LOAD.heartbeatS} s)`)
      const watches = [pid(plain.household), pid(lite.household), bareChild.pid!].map((p) => watchProc(p, SAMPLE_MS))
      await sleep(s.idleS * 1000)
      const [idlePlain, idleLite, idleBare] = watches.map((w) => windowOf(w.stop()))
      const residents = [pid(plain.household), pid(lite.household), bareChild.pid!].map(residentOf)

      ctx.log(`burst of ${BURST} presses in both households`)
      const [burstPlain, burstLite] = await Promise.all([burstOf(plain.household, pid(plain.household)), burstOf(lite.household, pid(lite.household))])
      const observed = {
        plain: { idle: idlePlain!, idleResident: residents[0]!, burst: burstPlain, startups: times.plain },
        lite: { idle: idleLite!, idleResident: residents[1]!, burst: burstLite, startups: times.lite },
      }
      ctx.log(`default: idle ${JSON.stringify(observed.plain.idle)} ${JSON.stringify(observed.plain.idleResident)} burst ${JSON.stringify(burstPlain)}`)
      ctx.log(`lite: idle ${JSON.stringify(observed.lite.idle)} ${JSON.stringify(observed.lite.idleResident)} burst ${JSON.stringify(burstLite)}`)
      return metrics(observed.plain, observed.lite, idleBare!, residents[2]!, times.bare)
    } finally {
      bare?.kill('SIGKILL')
      await Promise.all(households.map((h) => h.close()))
    }
  },
}

function metrics(plain: Observed, lite: Observed, bare: Window, bareResident: Resident, bareReadyMs: number[]): Metric[] {
  const under = (goal: number) => (v: number) => v < goal
  const bareName = 'bare node process'
  const defaultName = 'gateway, default node'
  const median = (xs: number[]) => percentile(xs, 50)
  const startupNote = (st: Startups) =>
    `${st.readyMs.length} restarts on an existing store, spawn to the log line "gateway ready"; max ${Math.max(...st.readyMs)} ms; baseline: node -e "${BARE_NODE_READY}" spawn to its line`
  return [
    metric({
      name: 'footprint.rss.idle',
      value: plain.idle.rssMB,
      unit: 'MB',
      baseline: bare.rssMB,
      baselineName: bareName,
      goal: `< ${RSS_GOAL_MB} MB`,
      meets: under(RSS_GOAL_MB),
      note: `mean VmRSS while idle (peak ${plain.idle.peakMB} MB as the young generation fills before a scavenge), ${NORMAL_LOAD.terminals} terminals heartbeating; at the end ${plain.idleResident.anonMB} MB private (V8 heap, malloc) and ${plain.idleResident.fileMB} MB file-backed (node binary, libraries; bare node: ${bareResident.fileMB} MB)`,
    }),
    metric({
      name: 'footprint.rss.idle.anon',
      value: plain.idleResident.anonMB,
      unit: 'MB',
      baseline: bareResident.anonMB,
      baselineName: bareName,
      note: 'RssAnon at the end of the idle window: memory only this process can free',
    }),
    metric({
      name: 'footprint.rss.idle.file',
      value: plain.idleResident.fileMB,
      unit: 'MB',
      baseline: bareResident.fileMB,
      baselineName: bareName,
      note: 'RssFile: pages of the node binary and shared libraries in use, shared and reclaimable',
    }),
    metric({
      name: 'footprint.rss.burst.peak',
      value: plain.burst.peakMB,
      unit: 'MB',
      baseline: bare.peakMB,
      baselineName: bareName,
      goal: `< ${RSS_GOAL_MB} MB`,
      meets: under(RSS_GOAL_MB),
      note: `peak VmRSS from the first of ${BURST} presses to 1 s after the last receipt at the terminals (${plain.burst.ms} ms)`,
    }),
    metric({
      name: 'footprint.rss.startup.peak',
      value: plain.idleResident.hwmMB,
      unit: 'MB',
      baseline: bareResident.hwmMB,
      baselineName: bareName,
      goal: `< ${RSS_GOAL_MB} MB`,
      meets: under(RSS_GOAL_MB),
      note: 'VmHWM at the end of the idle window: the peak of the whole life of the process, start-up (config checks, schema compilation, store opening) included',
    }),
    metric({
      name: 'footprint.cpu.idle',
      value: plain.idle.cpuPct,
      unit: '% of a core',
      baseline: bare.cpuPct,
      baselineName: bareName,
      goal: `< ${CPU_IDLE_GOAL_PCT} %`,
      meets: under(CPU_IDLE_GOAL_PCT),
      note: `user+system CPU over ${round(plain.idle.ms / 1000, 1)} s idle with ${NORMAL_LOAD.terminals} terminals heartbeating every ${NORMAL_LOAD.heartbeatS} s (each heartbeat: a frame, an ACK and a store write); /proc ticks are 10 ms`,
    }),
    metric({
      name: 'footprint.cpu.burst',
      value: plain.burst.cpuPct,
      unit: '% of a core',
      baseline: null,
      note: `${plain.burst.cpuMs} ms CPU for ${BURST} presses (${round(plain.burst.cpuMs / BURST, 1)} ms each) over ${plain.burst.ms} ms; the 9600 baud line sets the pace`,
    }),
    metric({
      name: 'footprint.startup.ready',
      value: median(plain.startups.readyMs),
      unit: 'ms',
      baseline: median(bareReadyMs),
      baselineName: 'bare node start',
      goal: `< ${READY_GOAL_MS} ms (median)`,
      meets: under(READY_GOAL_MS),
      note: startupNote(plain.startups),
    }),
    metric({
      name: 'footprint.startup.birth',
      value: median(plain.startups.birthMs),
      unit: 'ms',
      baseline: median(plain.startups.readyMs),
      baselineName: 'ready',
      note: `spawn to the birth message of the new session at the console (through mosquitto on 127.0.0.1); max ${Math.max(...plain.startups.birthMs)} ms`,
    }),
    // The recommended deployment, against the default side by side.
    metric({
      name: 'footprint.lite-mode.rss.idle',
      value: lite.idle.rssMB,
      unit: 'MB',
      baseline: plain.idle.rssMB,
      baselineName: defaultName,
      goal: `< ${RSS_GOAL_MB} MB`,
      meets: under(RSS_GOAL_MB),
      note: `the gateway under node ${LITE_FLAGS.join(' ')} (no optimizing compiler; V8 favours memory), same load; ${lite.idleResident.anonMB} MB private, ${lite.idleResident.fileMB} MB file-backed`,
    }),
    metric({
      name: 'footprint.lite-mode.rss.burst.peak',
      value: lite.burst.peakMB,
      unit: 'MB',
      baseline: plain.burst.peakMB,
      baselineName: defaultName,
      goal: `< ${RSS_GOAL_MB} MB`,
      meets: under(RSS_GOAL_MB),
    }),
    metric({
      name: 'footprint.lite-mode.rss.startup.peak',
      value: lite.idleResident.hwmMB,
      unit: 'MB',
      baseline: plain.idleResident.hwmMB,
      baselineName: defaultName,
      goal: `< ${RSS_GOAL_MB} MB`,
      meets: under(RSS_GOAL_MB),
    }),
    metric({
      name: 'footprint.lite-mode.cpu.idle',
      value: lite.idle.cpuPct,
      unit: '% of a core',
      baseline: plain.idle.cpuPct,
      baselineName: defaultName,
      goal: `< ${CPU_IDLE_GOAL_PCT} %`,
      meets: under(CPU_IDLE_GOAL_PCT),
    }),
    metric({
      name: 'footprint.lite-mode.cpu.burst',
      value: lite.burst.cpuPct,
      unit: '% of a core',
      baseline: plain.burst.cpuPct,
      baselineName: defaultName,
      note: `${lite.burst.cpuMs} ms CPU for the ${BURST} presses over ${lite.burst.ms} ms (interpreter and baseline code only, but no optimizing compilation either)`,
    }),
    metric({
      name: 'footprint.lite-mode.startup.ready',
      value: median(lite.startups.readyMs),
      unit: 'ms',
      baseline: median(plain.startups.readyMs),
      baselineName: defaultName,
      goal: `< ${READY_GOAL_MS} ms (median)`,
      meets: under(READY_GOAL_MS),
      note: `max ${Math.max(...lite.startups.readyMs)} ms`,
    }),
  ]
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
