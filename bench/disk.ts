/**
 * Bytes the gateway writes to storage per simulated day at normal load: SD cards wear
 * out, and nothing writes to a board's card as steadily as the gateway.
 *
 * The real gateway (defaults) serves a household at normal load (NORMAL_LOAD: 4 terminals
 * heartbeating every 10 s, status published every 300 s, a day's events of every class the
 * terminals send), and /proc/PID/io write_bytes of its process is read at the edges of
 * windows, with the WAL's frames and commits, the process's fsync and fdatasync calls
 * (perf, bench/lib/fsyncs.ts) and the store's own count of durable and lazy commits (the
 * gateway status, [MQTT-3.7] `store.writes`, read by a status-request at each edge):
 *
 * - status publications: the platform's status-request triggers the same publication the
 *   status interval does (the statuses folded since the last one, 4 once every terminal
 *   has heartbeated), measured one by one and scaled to 86,400 / 300 a day. One
 *   publication before them is not measured: the first batch reserves a block of 1,000
 *   batch ids (one durable commit), which a day's 288 publications need once in 3.5 days.
 * - heartbeats, in real time: they come per second and cannot be sped up; the window is
 *   whole heartbeat intervals long, from midway between two heartbeats, so it holds an
 *   exact count of them, and is scaled by that count to a day's. The status-request
 *   that reads the store's count at its start publishes the folds of the heartbeats
 *   before it: one status publication, taken out at its measured cost.
 * - the day's events, class by class (alarms; call-back requests; trouble: power cuts and
 *   a low battery; test reports), each class's day in one window, time-compressed but one
 *   event at a time as over a day (an alarm or request through its whole case before the
 *   next), except that a power cut reaches every terminal at once, as it does. Counted
 *   once; the heartbeats' share over each window is taken out, and so are the status
 *   publications inside it (a status-request publishes the folds it finds, or the next
 *   heartbeat's if it finds none), at their measured cost.
 * SQLite's checkpoints (one each 1,000 WAL frames, wal_autocheckpoint) copy the pages
 * changed since the last one into the database file: measured at the end by stopping the
 * gateway (SIGKILL: its store holds an exclusive lock while it runs, and a clean stop
 * would checkpoint by itself), checkpointing the run's WAL from this process and reading
 * this process's own write_bytes, and scaled by the WAL frames of a day. write_bytes
 * counts a page when it is dirtied in the page cache (again after each writeback, so an
 * fsync'd commit that ends mid-page pays for that page again at the next commit), so the
 * real cadence of the heartbeats matters, and is kept.
 */

import { closeSync, mkdtempSync, openSync, readSync, rmSync, statfsSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { waitUntil } from '../device-sim/wait.js'
import type { WriteStats } from '../gateway/store.js'
import { CLASS_OF } from '../protocol/mqtt.js'
import type { EventKind } from '../protocol/messages.js'
import { countFsyncs, type FsyncCounter } from './lib/fsyncs.js'
import { NORMAL_LOAD, SECONDS_PER_DAY, startHousehold, type Household, type Pressed } from './lib/household-rig.js'
import { sampleProc, type ProcSample } from './lib/proc.js'
import { metric, round, type Benchmark, type BenchContext, type Metric } from './lib/report.js'

const GOAL_MB_PER_DAY = 20
const MB = 2 ** 20
/** SQLite's default, which gateway/sqlite-db.ts sets explicitly: a checkpoint each this many WAL frames. */
const WAL_AUTOCHECKPOINT = 1000
const WAL_HEADER = 32
const WAL_FRAME_HEADER = 24
/** Quiet time after an event (and before a mark): its last commits done, perf's count in. */
const SETTLE_MS = 300

/**
 * The last full run before issue 10 (bench/results/latest.json, 2026-11-21T23:34Z): only
 * alarms synchronous=FULL, requests deleted at PUBACK, no replay window; 4 alarms, 12
 * requests and 4 trouble events, requests not waited for to their resolution, no test
 * reports. Quoted, not measured here.
 */
const BEFORE_ISSUE_10 = { perDayMB: 3.44, eventsMB: 0.95, statusMB: 2.48, events: '4 alarms, 12 call-back requests, 4 trouble events (202 WAL frames in 55 commits)' }

interface Settings {
  /** The heartbeat window, in heartbeat intervals. */
  intervals: number
  /** Status publications measured. */
  publications: number
}

const QUICK: Settings = { intervals: 2, publications: 2 }
const FULL: Settings = { intervals: 18, publications: 5 }

// ------------------------------------------------------------------ the day's events

/** The classes the terminals send ([MQTT-3.3]); `test` is the status class's event (periodic test report). */
type EventClass = 'alarm' | 'request' | 'trouble' | 'test'

interface ClassDay {
  name: EventClass
  /** Events of the class in a day. */
  events: number
  /** What the day holds, for the notes. */
  what: string
  run(h: Household): Promise<void>
}

/** One simulated day of what the terminals send (NORMAL_LOAD), class by class. */
function dayByClass(): ClassDay[] {
  const L = NORMAL_LOAD
  const alarmKinds: EventKind[] = ['emergency', 'fire', 'medical', 'panic']
  return [
    {
      name: 'alarm',
      events: L.alarmsPerDay,
      what: `${L.alarmsPerDay} alarms, each stored, sent, received, acknowledged, dispatched and resolved`,
      run: (h) =>
        oneAtATime(
          h,
          Array.from({ length: L.alarmsPerDay }, (_, i) => ({ terminal: i % L.terminals, kind: alarmKinds[i % alarmKinds.length]! })),
        ),
    },
    {
      name: 'request',
      events: L.requestsPerDay,
      what: `${L.requestsPerDay} call-back requests, each stored, sent, received, acknowledged and resolved`,
      run: (h) =>
        oneAtATime(
          h,
          Array.from({ length: L.requestsPerDay }, (_, i) => ({ terminal: i % L.terminals, kind: 'callback' as const })),
        ),
    },
    {
      name: 'trouble',
      events: L.powerCutsPerDay * 2 * L.terminals + L.batteryLowPerDay * 2,
      what:
        `${L.powerCutsPerDay} power cuts, each a mains-lost from all ${L.terminals} terminals at once and a mains-restored from all when it ends, ` +
        `and ${L.batteryLowPerDay} battery-low and battery-restored from one terminal`,
      run: async (h) => {
        for (let cut = 0; cut < L.powerCutsPerDay; cut++) {
          for (const [mains, kind] of [
            [false, 'mains-lost'],
            [true, 'mains-restored'],
          ] as const) {
            for (const t of h.terminals) t.setPower(mains, mains ? 100 : 80)
            await settled(
              h,
              h.terminals.map((_, i) => h.press(i, kind)),
            )
          }
        }
        for (let i = 0; i < L.batteryLowPerDay; i++) {
          const t = 1 % L.terminals
          h.terminals[t]!.setPower(true, 15)
          await settled(h, [h.press(t, 'battery-low')])
          h.terminals[t]!.setPower(true, 100)
          await settled(h, [h.press(t, 'battery-restored')])
        }
      },
    },
    {
      name: 'test',
      events: L.testsPerTerminalPerDay * L.terminals,
      what: `${L.testsPerTerminalPerDay} test report a terminal (${L.terminals} terminals)`,
      run: (h) =>
        oneAtATime(
          h,
          Array.from({ length: L.testsPerTerminalPerDay * L.terminals }, (_, i) => ({ terminal: i % L.terminals, kind: 'test' as const })),
        ),
    },
  ]
}

async function oneAtATime(h: Household, presses: { terminal: number; kind: EventKind }[]): Promise<void> {
  for (const p of presses) await settled(h, [h.press(p.terminal, p.kind)])
}

/**
 * Waits until every pressed event is at the console, every alarm and request is shown
 * `resolved` on its terminal (its last stage stored, sent and acknowledged on the line),
 * and no terminal holds an event; then SETTLE_MS.
 */
async function settled(h: Household, pressed: readonly Pressed[]): Promise<void> {
  const isCase = (p: Pressed) => CLASS_OF[p.kind] === 'alarm' || CLASS_OF[p.kind] === 'request'
  const atConsole = () => new Set(h.events.filter((e) => e.type === 'alert' || e.type === 'event').map((e) => e.id))
  await waitUntil(
    () => {
      const seen = atConsole()
      return pressed.every((p) => seen.has(p.id) && (!isCase(p) || h.terminals[p.terminal]!.stages.get(p.number) === 'resolved')) && h.terminals.every((t) => t.pending.length === 0)
    },
    {
      timeoutMs: 30_000,
      intervalMs: 10,
      what: () => `${pressed.map((p) => `${p.id} (${p.kind}, shown ${h.terminals[p.terminal]!.stages.get(p.number) ?? '-'})`).join(', ')} at the console and closed`,
    },
  )
  await sleep(SETTLE_MS)
}

// ------------------------------------------------------------------ where the store goes

/** File systems whose writes never reach a device, so write_bytes stays 0 (statfs f_type). */
const NOT_A_DISK = new Map([
  [0x01021994, 'tmpfs'],
  [0x858458f6, 'ramfs'],
  [0x794c7630, 'overlayfs'],
])

/**
 * A directory on a real disk for the store: the scratch dir unless it is on tmpfs (or
 * overlay), then /var/tmp, then the current directory. Returns it with its cleanup.
 */
function storageDir(scratch: string): { dir: string; note: string; remove(): void } {
  const kind = (d: string) => NOT_A_DISK.get(Number(statfsSync(d).type))
  if (kind(scratch) === undefined) return { dir: scratch, note: `store in ${scratch}`, remove: () => {} }
  for (const parent of ['/var/tmp', process.cwd()]) {
    if (kind(parent) !== undefined) continue
    const dir = mkdtempSync(join(parent, 'steppelink-bench-disk-'))
    return { dir, note: `store in ${dir} (the scratch dir is on ${kind(scratch)})`, remove: () => rmSync(dir, { recursive: true, force: true }) }
  }
  throw new Error(`no directory on a real disk: ${scratch}, /var/tmp and ${process.cwd()} are on tmpfs or overlay, where write_bytes stays 0`)
}

// ------------------------------------------------------------------ the WAL, read-only

interface WalState {
  /** The salts of the WAL header: they change when a checkpoint restarts the WAL. */
  generation: string
  /** Committed frames of this generation. */
  frames: number
  commits: number
  pageSize: number
}

/**
 * Counts the committed frames of the WAL's current generation (frames whose salts match
 * the header's, up to the last commit frame). Checksums are not verified: the gateway is
 * alive and SQLite's own readers will. Null when there is no WAL yet.
 */
function readWal(path: string): WalState | null {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch {
    return null
  }
  try {
    const header = Buffer.alloc(WAL_HEADER)
    if (readSync(fd, header, 0, WAL_HEADER, 0) < WAL_HEADER) return null
    const pageSize = header.readUInt32BE(8)
    const salt = [header.readUInt32BE(16), header.readUInt32BE(20)] as const
    const frameHeader = Buffer.alloc(WAL_FRAME_HEADER)
    let frames = 0
    let committed = 0
    let commits = 0
    for (let at = WAL_HEADER; readSync(fd, frameHeader, 0, WAL_FRAME_HEADER, at) === WAL_FRAME_HEADER; at += WAL_FRAME_HEADER + pageSize) {
      if (frameHeader.readUInt32BE(8) !== salt[0] || frameHeader.readUInt32BE(12) !== salt[1]) break
      frames++
      // A commit frame holds the database size after the commit; the others hold 0.
      if (frameHeader.readUInt32BE(4) !== 0) {
        committed = frames
        commits++
      }
    }
    return { generation: `${salt[0]}:${salt[1]}`, frames: committed, commits, pageSize }
  } finally {
    closeSync(fd)
  }
}

// ------------------------------------------------------------------ measuring

/** write_bytes, wchar, WAL frames and commits, fsyncs, and the store's count of commits, at one instant. */
interface Mark {
  proc: ProcSample
  wal: WalState
  /** fsync + fdatasync calls of the gateway so far (null: not counted, see `fsyncNote`). */
  fsyncs: number | null
  /** The store's commits since the gateway started (null: not read at this mark). */
  writes: WriteStats | null
}

/** What happened between two marks; every field but `seconds` adds up. */
interface Cost {
  seconds: number
  writeBytes: number
  wchar: number
  /** WAL frames appended. */
  frames: number
  /** WAL commits (transactions that changed a page). */
  commits: number
  fsyncs: number | null
  /** Commits the store made with synchronous=FULL / NORMAL, empty ones included (store.writes). */
  durable: number | null
  lazy: number | null
}

class Meter {
  constructor(
    readonly h: Household,
    readonly pid: number,
    readonly walPath: string,
    readonly fsyncs: FsyncCounter | null,
  ) {}

  /** A mark; with the store's count when `read` (a status-request, whose reply comes after the mark). */
  async mark(read: boolean): Promise<Mark> {
    const proc = sampleProc(this.pid)
    if (proc === null) throw new Error(`the gateway (pid ${this.pid}) has exited`)
    if (proc.writeBytes === null || proc.wchar === null) throw new Error(`/proc/${this.pid}/io is not readable here (another user's process, no CAP_SYS_PTRACE)`)
    const wal = readWal(this.walPath)
    if (wal === null) throw new Error(`no WAL at ${this.walPath}: is the store in WAL mode?`)
    const fsyncs = this.fsyncs?.total() ?? null
    const writes = read ? (await this.h.gatewayStatus()).writes : null
    return { proc, wal, fsyncs, writes }
  }

  span(a: Mark, b: Mark): Cost {
    // A checkpoint inside a window would mix its writes into the window's and restart the WAL.
    if (a.wal.generation !== b.wal.generation) throw new Error(`a WAL checkpoint happened inside a measured window (${a.wal.frames} frames before); lower the windows`)
    return {
      seconds: (b.proc.at - a.proc.at) / 1000,
      writeBytes: b.proc.writeBytes! - a.proc.writeBytes!,
      wchar: b.proc.wchar! - a.proc.wchar!,
      frames: b.wal.frames - a.wal.frames,
      commits: b.wal.commits - a.wal.commits,
      fsyncs: a.fsyncs === null || b.fsyncs === null ? null : b.fsyncs - a.fsyncs,
      durable: a.writes === null || b.writes === null ? null : b.writes.durable - a.writes.durable,
      lazy: a.writes === null || b.writes === null ? null : b.writes.lazy - a.writes.lazy,
    }
  }
}

const ADDITIVE = ['writeBytes', 'wchar', 'frames', 'commits', 'fsyncs', 'durable', 'lazy'] as const

/** A cost made field by field from `f` (null where it gives null); `seconds` given. */
function build(seconds: number, f: (field: (typeof ADDITIVE)[number]) => number | null): Cost {
  const out: Record<string, number | null> = { seconds }
  for (const k of ADDITIVE) out[k] = f(k)
  return out as unknown as Cost
}

/** a − k × b, field by field (null stays null); a's duration. */
function minus(a: Cost, b: Cost, k: number): Cost {
  return build(a.seconds, (f) => (a[f] === null || b[f] === null ? null : a[f]! - k * b[f]!))
}

/** k × a. */
function times(a: Cost, k: number): Cost {
  return build(a.seconds * k, (f) => (a[f] === null ? null : a[f]! * k))
}

function sum(costs: readonly Cost[]): Cost {
  const zero: Cost = { seconds: 0, writeBytes: 0, wchar: 0, frames: 0, commits: 0, fsyncs: 0, durable: 0, lazy: 0 }
  return costs.reduce((acc, c) => build(acc.seconds + c.seconds, (f) => (acc[f] === null || c[f] === null ? null : acc[f]! + c[f]!)), zero)
}

/**
 * One status publication's cost, from its own short windows, with the heartbeats' share
 * over them taken out (the heartbeat window `hb` holds `hbPubs` publications: their own
 * cost is taken out of it at the first estimate). No reading of the store's count ends
 * these windows (a status-request then would make the next heartbeat's fold due at once),
 * so its commits are counted from the WAL and the fsyncs: durable ones are the fsync'd
 * commits, lazy ones the rest.
 */
function perPublication(own: readonly Cost[], hb: Cost, hbPubs: number): Cost {
  const raw = times(sum(own), 1 / own.length)
  const c = minus(raw, minus(hb, raw, hbPubs), raw.seconds / hb.seconds)
  return { ...c, durable: c.fsyncs, lazy: c.fsyncs === null ? null : c.commits - c.fsyncs }
}

/** Terminal status publications that reached the console between two marks (a batch counts once). */
function statusPublications(h: Household, a: Mark, b: Mark): number {
  const ids = new Set<string>()
  for (const e of h.events) {
    if (e.type === 'status' && e.scope === 'terminal' && e.receivedAt > a.proc.at && e.receivedAt <= b.proc.at) ids.add(e.batch ?? e.id ?? '')
  }
  return ids.size
}

/** Checkpoints the WAL from this process (as autocheckpoint would in the gateway); bytes this process wrote doing it. */
function checkpointBytes(dbPath: string): { bytes: number; pages: number } {
  const db = new Database(dbPath, { fileMustExist: true })
  try {
    // As the gateway opens it: the WAL index in memory, no -shm file written.
    db.pragma('locking_mode = EXCLUSIVE')
    const before = sampleProc(process.pid)!.writeBytes
    const [result] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[]
    const after = sampleProc(process.pid)!.writeBytes
    if (before === null || after === null || result === undefined) throw new Error("cannot read this process's write_bytes or the checkpoint result")
    if (result.busy !== 0 || result.checkpointed !== result.log) throw new Error(`the checkpoint did not complete: ${JSON.stringify(result)}`)
    return { bytes: after - before, pages: result.checkpointed }
  } finally {
    db.close()
  }
}

// ------------------------------------------------------------------ the benchmark

export const benchmark: Benchmark = {
  name: 'disk',
  title: 'Disk writes of the gateway per simulated day',
  async run(ctx: BenchContext): Promise<Metric[]> {
    const s = ctx.quick ? QUICK : FULL
    const storage = storageDir(ctx.dir)
    let household: Household | null = null
    let counter: FsyncCounter | null = null
    try {
      ctx.log(`${storage.note}; normal load: ${JSON.stringify(NORMAL_LOAD)}`)
      const started = await startHousehold({ dir: storage.dir, ack: 'auto', dispatchAfterS: 0.2, resolveAfterS: 0.4 })
      household = started.household
      const h = household
      const dbPath = join(h.dataDir, 'gateway.db')
      const perf = await countFsyncs(started.start.pid)
      counter = 'error' in perf ? null : perf
      const fsyncNote = 'error' in perf ? `fsyncs not counted: ${perf.error}` : 'fsync and fdatasync calls counted by perf stat on the syscall tracepoints'
      ctx.log(fsyncNote)
      const meter = new Meter(h, started.start.pid, `${dbPath}-wal`, counter)
      // Before the terminals' first heartbeat: nothing folded, the request publishes nothing else.
      const boot = await meter.mark(true)
      if (boot.proc.writeBytes === 0) throw new Error(`write_bytes stayed 0 while the gateway created its store in ${h.dataDir}: this file system does not account writes`)
      ctx.log(`boot: ${boot.proc.writeBytes} B, store writes ${JSON.stringify(boot.writes)}`)
      const period = NORMAL_LOAD.heartbeatS * 1000

      // The first heartbeats go out at once (no status published yet). One more publication,
      // not measured, once every terminal has heartbeated again: the first batch and its
      // block of batch ids.
      await waitForFirstStatus(h, h.terminalsOnAt + 2 * period)
      await sleep(h.terminalsOnAt + 2.5 * period - Date.now())
      await h.requestStatus(h.terminals.length)
      await sleep(500)
      let last = Date.now()

      // Status publications: the status-request at each one's start makes the terminal
      // statuses due; measured until 500 ms later.
      const pubs: Cost[] = []
      for (let i = 0; i < s.publications; i++) {
        // Every terminal has heartbeated since the last publication: it carries 4 statuses,
        // as the periodic one does.
        await sleep(Math.max(0, last + (NORMAL_LOAD.heartbeatS + 0.5) * 1000 - Date.now()))
        const a = await meter.mark(false)
        await h.requestStatus(h.terminals.length)
        // The folds start afresh after the broker's PUBACK; give the store that moment.
        await sleep(500)
        const b = await meter.mark(false)
        last = Date.now()
        pubs.push(meter.span(a, b))
        ctx.log(`status publication ${i + 1}: ${JSON.stringify(pubs.at(-1))}`)
      }

      // Heartbeats: whole intervals from midway between two heartbeats of every terminal.
      await sleep(h.terminalsOnAt + (Math.ceil((Date.now() - h.terminalsOnAt) / period - 0.5) + 0.5) * period - Date.now())
      ctx.log(`heartbeats for ${s.intervals} intervals of ${NORMAL_LOAD.heartbeatS} s`)
      const a0 = await meter.mark(true)
      await sleep(a0.proc.at + s.intervals * period - Date.now())
      const a1 = await meter.mark(true)
      const hbRaw = meter.span(a0, a1)
      const hbPubs = statusPublications(h, a0, a1)
      ctx.log(`heartbeats: ${JSON.stringify(hbRaw)}, ${hbPubs} status publication(s) inside`)
      const perPub = perPublication(pubs, hbRaw, hbPubs)
      const heartbeats = minus(hbRaw, perPub, hbPubs)

      // The day's events, class by class; each window ends where the next begins.
      await sleep(1_000)
      const classes: { day: ClassDay; cost: Cost; raw: Cost; pubs: number }[] = []
      let edge = await meter.mark(true)
      for (const day of dayByClass()) {
        ctx.log(`${day.name}: ${day.what}`)
        await day.run(h)
        const end = await meter.mark(true)
        const raw = meter.span(edge, end)
        const inside = statusPublications(h, edge, end)
        const cost = minus(minus(raw, heartbeats, raw.seconds / heartbeats.seconds), perPub, inside)
        classes.push({ day, cost, raw, pubs: inside })
        ctx.log(`${day.name}: ${JSON.stringify(raw)}, ${inside} status publication(s) inside`)
        edge = end
      }
      const final = edge

      // The store holds an exclusive lock while the gateway runs; SIGKILL leaves the WAL as
      // it is (a clean stop would checkpoint it).
      counter?.stop()
      counter = null
      await h.gateway?.kill('SIGKILL')
      const checkpoint = checkpointBytes(dbPath)
      ctx.log(`checkpoint of ${checkpoint.pages} frames: ${checkpoint.bytes} B written`)
      return metrics({
        boot,
        final,
        heartbeats,
        heartbeatsIn: s.intervals * h.terminals.length,
        perPub,
        pubs: pubs.length,
        classes,
        checkpoint,
        pageSize: boot.wal.pageSize,
        storage: storage.note,
        fsyncNote,
      })
    } finally {
      counter?.stop()
      await household?.close()
      storage.remove()
    }
  },
}

async function waitForFirstStatus(h: Household, deadline: number): Promise<void> {
  while (h.terminalStatuses() === 0) {
    if (Date.now() > deadline) throw new Error('no terminal status reached the console after the first heartbeats')
    await sleep(50)
  }
}

interface Measured {
  boot: Mark
  final: Mark
  heartbeats: Cost
  /** Heartbeats in the heartbeat window: whole intervals times terminals. */
  heartbeatsIn: number
  perPub: Cost
  pubs: number
  classes: { day: ClassDay; cost: Cost; raw: Cost; pubs: number }[]
  checkpoint: { bytes: number; pages: number }
  pageSize: number
  storage: string
  fsyncNote: string
}

function metrics(m: Measured): Metric[] {
  const heartbeatsPerDay = (NORMAL_LOAD.terminals * SECONDS_PER_DAY) / NORMAL_LOAD.heartbeatS
  const hbScale = heartbeatsPerDay / m.heartbeatsIn
  const pubsPerDay = SECONDS_PER_DAY / NORMAL_LOAD.statusIntervalS
  const events = sum(m.classes.map((c) => c.cost))
  const eventCount = m.classes.reduce((n, c) => n + c.day.events, 0)
  const dayParts = { heartbeats: times(m.heartbeats, hbScale), status: times(m.perPub, pubsPerDay), events }
  const day = sum([dayParts.heartbeats, dayParts.status, dayParts.events])
  const checkpointsPerDay = day.frames / WAL_AUTOCHECKPOINT
  const checkpoints = m.checkpoint.bytes * checkpointsPerDay
  const total = day.writeBytes + checkpoints
  const walBytes = day.frames * (m.pageSize + WAL_FRAME_HEADER)
  const mb = (x: number) => round(x / MB, 2)
  const share = (x: number) => `${Math.round((100 * x) / total)} % of the day`
  const n = (x: number | null, places = 1) => (x === null ? 'n/a' : String(round(x, places)))
  const run = m.final.writes!
  const ranS = round((m.final.proc.at - m.boot.proc.at) / 1000, 0)

  const perClass = m.classes.flatMap(({ day: d, cost: c, raw, pubs }) => {
    const per = times(c, 1 / d.events)
    const how =
      `${d.events} a day (${d.what}); per event ${Math.round(per.writeBytes)} B written, ${n(per.fsyncs, 2)} fsyncs, ${n(per.frames, 1)} WAL frames in ${n(per.commits, 2)} commits, ` +
      `store.writes ${n(per.durable, 2)} durable + ${n(per.lazy, 2)} lazy; the day's ${mb(c.writeBytes)} MB (${share(c.writeBytes)}). ` +
      `Window of ${round(raw.seconds, 1)} s: ${raw.writeBytes} B, ${raw.frames} frames, ${raw.commits} commits, ${raw.fsyncs ?? 'n/a'} fsyncs, ${raw.durable ?? 'n/a'} durable + ${raw.lazy ?? 'n/a'} lazy, ` +
      `less the heartbeats' share and ${pubs} status publication(s) the readings made due`
    return [
      metric({ name: `disk.event.${d.name}.bytes`, value: round(per.writeBytes / 1024, 1), unit: 'kB/event', baseline: null, note: how }),
      ...(per.fsyncs === null
        ? []
        : [
            metric({
              name: `disk.event.${d.name}.fsyncs`,
              value: round(per.fsyncs, 2),
              unit: 'fsyncs/event',
              baseline: null,
              note: `fsync + fdatasync calls of the gateway per ${d.name} event, ${m.fsyncNote}; one per commit with synchronous=FULL that changed a page (SQLite syncs the WAL at each), none for NORMAL`,
            }),
          ]),
    ]
  })

  return [
    metric({
      name: 'disk.write.per_day',
      value: mb(total),
      unit: 'MB/day',
      baseline: null,
      goal: `< ${GOAL_MB_PER_DAY} MB per simulated day`,
      meets: (v) => v < GOAL_MB_PER_DAY,
      note:
        `/proc/PID/io write_bytes of the gateway: heartbeats ${mb(dayParts.heartbeats.writeBytes)} + status publications ${mb(dayParts.status.writeBytes)} + the day's ${eventCount} events ${mb(events.writeBytes)} + checkpoints ${mb(checkpoints)} MB; ` +
        `${NORMAL_LOAD.terminals} terminals, heartbeat ${NORMAL_LOAD.heartbeatS} s, status every ${NORMAL_LOAD.statusIntervalS} s; every event a terminal sends is committed with synchronous=FULL before its ACK (issue 10, item 3). ` +
        `Before issue 10: ${BEFORE_ISSUE_10.perDayMB} MB/day (2026-11-21 run; ${BEFORE_ISSUE_10.events}: ${BEFORE_ISSUE_10.eventsMB} MB, status publications ${BEFORE_ISSUE_10.statusMB} MB: 0.4 WAL frames a publication, as one commit of 2 frames in the 5 measured, most likely the first batch's block of batch ids, now reserved before the measurement as it is once in 1,000 batches). ` +
        `${m.storage}; the file system's own journal is not in write_bytes`,
    }),
    metric({
      name: 'disk.write.heartbeats.per_day',
      value: mb(dayParts.heartbeats.writeBytes),
      unit: 'MB/day',
      baseline: null,
      note: `${share(dayParts.heartbeats.writeBytes)}: ${Math.round(m.heartbeats.writeBytes)} B and ${n(m.heartbeats.commits, 1)} WAL commits for ${m.heartbeatsIn} heartbeats in ${round(m.heartbeats.seconds, 1)} s of real time (the product folds each into its terminal's status in memory; the fold reaches the disk after two status intervals unpublished), × ${heartbeatsPerDay} heartbeats a day`,
    }),
    metric({
      name: 'disk.write.status.per_day',
      value: mb(dayParts.status.writeBytes),
      unit: 'MB/day',
      baseline: null,
      note: `${share(dayParts.status.writeBytes)}: ${Math.round(m.perPub.writeBytes)} B, ${n(m.perPub.frames, 1)} WAL frames and ${n(m.perPub.fsyncs, 1)} fsyncs per publication of ${NORMAL_LOAD.terminals} statuses (mean of ${m.pubs}, heartbeats' share taken out), ${pubsPerDay} a day; the first batch's block of 1,000 batch ids (one durable commit) was reserved before, unmeasured`,
    }),
    metric({
      name: 'disk.write.events.per_day',
      value: mb(events.writeBytes),
      unit: 'MB/day',
      baseline: null,
      note: `${share(events.writeBytes)}: ${m.classes.map((c) => `${c.day.name} ${mb(c.cost.writeBytes)}`).join(', ')} MB (${eventCount} events: ${m.classes.map((c) => c.day.what).join('; ')}); ${Math.round(events.frames)} WAL frames in ${Math.round(events.commits)} commits, ${n(events.fsyncs, 0)} fsyncs. Before issue 10: ${BEFORE_ISSUE_10.eventsMB} MB for ${BEFORE_ISSUE_10.events}`,
    }),
    ...perClass,
    ...(day.fsyncs === null
      ? []
      : [
          metric({
            name: 'disk.fsyncs.per_day',
            value: Math.round(day.fsyncs + 2 * checkpointsPerDay),
            unit: 'fsyncs/day',
            baseline: null,
            note: `heartbeats ${n(dayParts.heartbeats.fsyncs, 0)} + status publications ${n(dayParts.status.fsyncs, 0)} + events ${n(events.fsyncs, 0)} + checkpoints (2 each: WAL and database) ${n(2 * checkpointsPerDay, 1)}; ${m.fsyncNote}. Each costs the SD card a flush of its write cache, and ext4 a journal commit when metadata changed (the WAL growing), neither in write_bytes`,
          }),
        ]),
    ...(day.durable === null || day.lazy === null
      ? []
      : [
          metric({
            name: 'disk.commits.durable.per_day',
            value: Math.round(day.durable),
            unit: 'commits/day',
            baseline: null,
            note:
              `the store's own count (gateway status [MQTT-3.7] store.writes, read by a status-request at each window's edges): transactions committed with synchronous=FULL, heartbeats and the periodic work ${n(dayParts.heartbeats.durable, 0)} + status publications ${n(dayParts.status.durable, 0)} (their fsync'd commits: no reading ends their windows) + events ${n(events.durable, 0)}. ` +
              `Empty ones count too and write nothing (the store bounds check every 60 s, 1,440 a day): compare disk.fsyncs.per_day. This run, boot to the last reading (${ranS} s): ${run.durable} durable and ${run.lazy} lazy commits, ${boot(m).durable} and ${boot(m).lazy} of them before the first heartbeat`,
          }),
          metric({
            name: 'disk.commits.lazy.per_day',
            value: Math.round(day.lazy),
            unit: 'commits/day',
            baseline: null,
            note: `transactions committed with synchronous=NORMAL (no fsync; a power cut may lose them): heartbeats ${n(dayParts.heartbeats.lazy, 0)} + status publications ${n(dayParts.status.lazy, 0)} (WAL commits not fsync'd) + events ${n(events.lazy, 0)} (trouble and test reports deleted at the broker's PUBACK: a power cut then publishes one again, which the platform's deduplication absorbs)`,
          }),
        ]),
    metric({
      name: 'disk.write.checkpoints.per_day',
      value: mb(checkpoints),
      unit: 'MB/day',
      baseline: null,
      note: `${share(checkpoints)}: a checkpoint of this run's WAL (${m.checkpoint.pages} frames) wrote ${m.checkpoint.bytes} B; ${round(checkpointsPerDay, 1)} checkpoints a day at ${WAL_AUTOCHECKPOINT} frames each (an upper bound: this one copied every page the run changed)`,
    }),
    metric({
      name: 'disk.wal.per_day',
      value: mb(walBytes),
      unit: 'MB/day',
      baseline: mb(total),
      baselineName: 'write_bytes',
      note: `what SQLite appended to the WAL: ${Math.round(day.frames)} frames of ${m.pageSize + WAL_FRAME_HEADER} B a day (write_bytes is higher: a frame is not page-aligned, and each fsync'd commit leaves a page that the next commit dirties and pays for again)`,
    }),
    metric({
      name: 'disk.wchar.per_day',
      value: mb(day.wchar),
      unit: 'MB/day',
      baseline: mb(total),
      baselineName: 'write_bytes',
      note: 'bytes passed to write(2), cached or not, log lines to stdout included (context only)',
    }),
    metric({
      name: 'disk.write.boot',
      value: round(m.boot.proc.writeBytes! / 1024, 1),
      unit: 'kB',
      baseline: null,
      note: 'the first start: store created, sessions opened (once per installation; a restart writes less)',
    }),
  ]
}

function boot(m: Measured): WriteStats {
  return m.boot.writes!
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
}
