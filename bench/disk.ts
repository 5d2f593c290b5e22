/**
 * Bytes the gateway writes to storage per simulated day at normal load: SD cards wear
 * out, and nothing writes to a board's card as steadily as the gateway.
 *
 * The real gateway (defaults) serves a household at normal load (NORMAL_LOAD: 4 terminals
 * heartbeating every 10 s, status published every 300 s, a day's handful of presses),
 * and /proc/PID/io write_bytes of its process is read at the edges of three windows:
 *
 * - the day's presses, time-compressed but one at a time as over a day (so that none
 *   shares a batch or a transaction it would not share on a real day), counted once; they
 *   run before the terminals' first heartbeat, so nothing else writes meanwhile;
 * - heartbeats, in real time: they come per second and cannot be sped up; the window is
 *   whole heartbeat intervals long, from midway between two heartbeats, so it holds an
 *   exact count of them, and is scaled by that count to a day's;
 * - status publications: the platform's status-request triggers the same publication the
 *   status interval does (the statuses folded since the last one, 4 once every terminal
 *   has heartbeated), measured one by one with the heartbeats' rate taken out, and
 *   scaled to 86,400 / 300 a day.
 * SQLite's checkpoints (one each 1,000 WAL frames, wal_autocheckpoint) copy the pages
 * changed since the last one into the database file: measured at the end by checkpointing
 * the run's WAL from this process and reading this process's own write_bytes, and scaled
 * by the WAL frames of a day. write_bytes counts a page when it is first dirtied in the
 * page cache, so the real cadence of the heartbeats matters, and is kept.
 */

import { closeSync, mkdtempSync, openSync, readSync, rmSync, statfsSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { EventKind } from '../protocol/messages.js'
import { NORMAL_LOAD, SECONDS_PER_DAY, startHousehold, type Household } from './lib/household-rig.js'
import { sampleProc, type ProcSample } from './lib/proc.js'
import { metric, round, type Benchmark, type BenchContext, type Metric } from './lib/report.js'
import { mean } from './lib/stats.js'

const GOAL_MB_PER_DAY = 20
const MB = 2 ** 20
/** SQLite's default, which gateway/sqlite-db.ts sets explicitly: a checkpoint each this many WAL frames. */
const WAL_AUTOCHECKPOINT = 1000
const WAL_HEADER = 32
const WAL_FRAME_HEADER = 24

interface Settings {
  /** The heartbeat window, in heartbeat intervals. */
  intervals: number
  /** Status publications measured. */
  publications: number
}

const QUICK: Settings = { intervals: 2, publications: 1 }
const FULL: Settings = { intervals: 18, publications: 5 }

/** One simulated day of presses (NORMAL_LOAD), each kind spread evenly over the day. */
function dayOfPresses(): EventKind[] {
  const alarms: EventKind[] = ['emergency', 'fire', 'medical', 'panic']
  const kinds: EventKind[][] = [
    Array.from({ length: NORMAL_LOAD.requestsPerDay }, (): EventKind => 'callback'),
    Array.from({ length: NORMAL_LOAD.alarmsPerDay }, (_, i) => alarms[i % alarms.length]!),
    Array.from({ length: NORMAL_LOAD.troublePerDay }, (_, i): EventKind => (i % 2 === 0 ? 'mains-lost' : 'mains-restored')),
  ]
  return kinds
    .flatMap((list) => list.map((kind, i) => ({ kind, at: (i + 0.5) / list.length })))
    .sort((a, b) => a.at - b.at)
    .map((x) => x.kind)
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

/** write_bytes, wchar, WAL frames and commits, at one instant. */
interface Mark {
  proc: ProcSample
  wal: WalState
}

/** What happened between two marks. */
interface Span {
  seconds: number
  writeBytes: number
  wchar: number
  frames: number
  commits: number
}

class Meter {
  constructor(
    readonly pid: number,
    readonly walPath: string,
  ) {}

  mark(): Mark {
    const proc = sampleProc(this.pid)
    if (proc === null) throw new Error(`the gateway (pid ${this.pid}) has exited`)
    if (proc.writeBytes === null || proc.wchar === null) throw new Error(`/proc/${this.pid}/io is not readable here (another user's process, no CAP_SYS_PTRACE)`)
    const wal = readWal(this.walPath)
    if (wal === null) throw new Error(`no WAL at ${this.walPath}: is the store in WAL mode?`)
    return { proc, wal }
  }

  span(a: Mark, b: Mark): Span {
    // A checkpoint inside a window would mix its writes into the window's and restart the WAL.
    if (a.wal.generation !== b.wal.generation) throw new Error(`a WAL checkpoint happened inside a measured window (${a.wal.frames} frames before); lower the windows`)
    return {
      seconds: (b.proc.at - a.proc.at) / 1000,
      writeBytes: b.proc.writeBytes! - a.proc.writeBytes!,
      wchar: b.proc.wchar! - a.proc.wchar!,
      frames: b.wal.frames - a.wal.frames,
      commits: b.wal.commits - a.wal.commits,
    }
  }
}

/** A span's bytes with the heartbeats' share over its duration taken out. */
function beyondHeartbeats(s: Span, heartbeats: Span): { writeBytes: number; wchar: number; frames: number } {
  const share = s.seconds / heartbeats.seconds
  return {
    writeBytes: s.writeBytes - heartbeats.writeBytes * share,
    wchar: s.wchar - heartbeats.wchar * share,
    frames: s.frames - heartbeats.frames * share,
  }
}

/** `since`: Date.now() of the last publication before these. */
async function statusPublications(h: Household, meter: Meter, heartbeats: Span, n: number, since: number, log: (l: string) => void): Promise<Span[]> {
  const out: Span[] = []
  let last = since
  for (let i = 0; i < n; i++) {
    // Every terminal has heartbeated since the last publication: it carries 4 statuses, as
    // the periodic one does.
    await sleep(Math.max(0, last + (NORMAL_LOAD.heartbeatS + 0.5) * 1000 - Date.now()))
    const a = meter.mark()
    await h.requestStatus(h.terminals.length)
    // The rows are cleared after the broker's PUBACK; give the store that moment.
    await sleep(500)
    const b = meter.mark()
    last = Date.now()
    out.push(meter.span(a, b))
    log(`status publication ${i + 1}: ${JSON.stringify(out.at(-1))}, heartbeats' share ${round((heartbeats.writeBytes * out.at(-1)!.seconds) / heartbeats.seconds)} B`)
  }
  return out
}

async function dayOfEvents(h: Household): Promise<void> {
  const day = dayOfPresses()
  for (let i = 0; i < day.length; i++) {
    const p = h.press(i % h.terminals.length, day[i]!)
    await h.waitForDelivery([p], 'resolved', 30_000)
  }
}

/** Checkpoints the WAL from this process (as autocheckpoint would in the gateway); bytes this process wrote doing it. */
function checkpointBytes(dbPath: string): { bytes: number; pages: number } {
  const db = new Database(dbPath, { fileMustExist: true })
  try {
    const before = sampleProc(process.pid)!.writeBytes
    const [result] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[]
    const after = sampleProc(process.pid)!.writeBytes
    if (before === null || after === null || result === undefined) throw new Error('cannot read this process\'s write_bytes or the checkpoint result')
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
    try {
      ctx.log(`${storage.note}; normal load: ${JSON.stringify(NORMAL_LOAD)}`)
      const started = await startHousehold({ dir: storage.dir, ack: 'auto', dispatchAfterS: 0.2, resolveAfterS: 0.4 })
      household = started.household
      const h = household
      const dbPath = join(h.dataDir, 'gateway.db')
      const meter = new Meter(started.start.pid, `${dbPath}-wal`)
      const boot = meter.mark()
      if (boot.proc.writeBytes === 0) throw new Error(`write_bytes stayed 0 while the gateway created its store in ${h.dataDir}: this file system does not account writes`)
      const period = NORMAL_LOAD.heartbeatS * 1000
      const firstHeartbeat = h.terminalsOnAt + period

      // The day's presses first: the terminals send their first HEARTBEAT one interval
      // after they are switched on, so this window holds nothing else.
      ctx.log(`one day of presses: ${dayOfPresses().join(' ')}`)
      const c0 = meter.mark()
      await dayOfEvents(h)
      await sleep(300)
      const c1 = meter.mark()
      if (c1.proc.at >= firstHeartbeat) throw new Error(`the day of presses took until ${c1.proc.at - h.terminalsOnAt} ms after the terminals started, past their first heartbeat: too slow a machine for this schedule`)
      const events = meter.span(c0, c1)
      ctx.log(`events: ${JSON.stringify(events)}`)

      // The first heartbeats go out at once (no status published yet); after that the next
      // periodic publication is 300 s away. The window runs from midway between two
      // heartbeats of every terminal for whole intervals: it holds exactly `intervals`
      // heartbeats of each, so scaling it by time is scaling by the heartbeats' count.
      await waitForFirstStatus(h, firstHeartbeat + period)
      const firstStatusAt = Date.now()
      await sleep(h.terminalsOnAt + (Math.ceil((Date.now() - h.terminalsOnAt) / period - 0.5) + 0.5) * period - Date.now())
      const a0 = meter.mark()
      ctx.log(`heartbeats for ${s.intervals} intervals of ${NORMAL_LOAD.heartbeatS} s`)
      await sleep(s.intervals * period)
      const heartbeats = meter.span(a0, meter.mark())
      ctx.log(`heartbeats: ${JSON.stringify(heartbeats)}`)

      const pubs = await statusPublications(h, meter, heartbeats, s.publications, firstStatusAt, ctx.log)

      const checkpoint = checkpointBytes(dbPath)
      ctx.log(`checkpoint of ${checkpoint.pages} frames: ${checkpoint.bytes} B written`)
      return metrics({ boot, heartbeats, heartbeatsIn: s.intervals * h.terminals.length, pubs, events, checkpoint, pageSize: boot.wal.pageSize, storage: storage.note })
    } finally {
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
  heartbeats: Span
  /** Heartbeats in the heartbeat window: whole intervals times terminals. */
  heartbeatsIn: number
  pubs: Span[]
  events: Span
  checkpoint: { bytes: number; pages: number }
  pageSize: number
  storage: string
}

function metrics(m: Measured): Metric[] {
  const heartbeatsPerDay = (NORMAL_LOAD.terminals * SECONDS_PER_DAY) / NORMAL_LOAD.heartbeatS
  const hbScale = heartbeatsPerDay / m.heartbeatsIn
  const pubsPerDay = SECONDS_PER_DAY / NORMAL_LOAD.statusIntervalS
  const pub = m.pubs.map((p) => beyondHeartbeats(p, m.heartbeats))
  // The presses ran before the first heartbeat: nothing to take out.
  const ev = m.events
  const perPub = { writeBytes: mean(pub.map((p) => p.writeBytes)), wchar: mean(pub.map((p) => p.wchar)), frames: mean(pub.map((p) => p.frames)) }

  const day = {
    heartbeats: m.heartbeats.writeBytes * hbScale,
    status: perPub.writeBytes * pubsPerDay,
    events: ev.writeBytes,
  }
  const framesPerDay = m.heartbeats.frames * hbScale + perPub.frames * pubsPerDay + ev.frames
  const checkpointsPerDay = framesPerDay / WAL_AUTOCHECKPOINT
  const checkpoints = m.checkpoint.bytes * checkpointsPerDay
  const total = day.heartbeats + day.status + day.events + checkpoints
  const wchar = m.heartbeats.wchar * hbScale + perPub.wchar * pubsPerDay + ev.wchar
  const walBytes = framesPerDay * (m.pageSize + WAL_FRAME_HEADER)
  const mb = (x: number) => round(x / MB, 2)
  const share = (x: number) => `${Math.round((100 * x) / total)} % of the day`

  return [
    metric({
      name: 'disk.write.per_day',
      value: mb(total),
      unit: 'MB/day',
      baseline: null,
      goal: `< ${GOAL_MB_PER_DAY} MB per simulated day`,
      meets: (v) => v < GOAL_MB_PER_DAY,
      note:
        `/proc/PID/io write_bytes of the gateway: heartbeats ${mb(day.heartbeats)} + status publications ${mb(day.status)} + the day's presses ${mb(day.events)} + checkpoints ${mb(checkpoints)} MB; ` +
        `${NORMAL_LOAD.terminals} terminals, heartbeat ${NORMAL_LOAD.heartbeatS} s, status every ${NORMAL_LOAD.statusIntervalS} s; ${m.storage}; the file system's own journal is not in write_bytes`,
    }),
    metric({
      name: 'disk.write.heartbeats.per_day',
      value: mb(day.heartbeats),
      unit: 'MB/day',
      baseline: null,
      note: `${share(day.heartbeats)}: ${m.heartbeats.writeBytes} B for ${m.heartbeatsIn} heartbeats in ${round(m.heartbeats.seconds, 1)} s of real time, ${m.heartbeats.commits} commits (the product folds each into its terminal's status in memory; the fold reaches the disk after two status intervals unpublished): ${Math.round(m.heartbeats.writeBytes / m.heartbeatsIn)} B and ${round(m.heartbeats.frames / m.heartbeatsIn, 2)} WAL frames of ${m.pageSize} B per heartbeat, × ${heartbeatsPerDay} heartbeats a day`,
    }),
    metric({
      name: 'disk.write.status.per_day',
      value: mb(day.status),
      unit: 'MB/day',
      baseline: null,
      note: `${share(day.status)}: ${Math.round(perPub.writeBytes)} B and ${round(perPub.frames, 1)} WAL frames per publication of ${NORMAL_LOAD.terminals} statuses (mean of ${m.pubs.length}, heartbeats' share taken out), ${pubsPerDay} a day`,
    }),
    metric({
      name: 'disk.write.events.per_day',
      value: mb(day.events),
      unit: 'MB/day',
      baseline: null,
      note: `${share(day.events)}: ${NORMAL_LOAD.alarmsPerDay} alarms (stored, sent, received, acknowledged, dispatched, resolved), ${NORMAL_LOAD.requestsPerDay} call-back requests and ${NORMAL_LOAD.troublePerDay} trouble events, one at a time, before the first heartbeat; ${Math.round(ev.frames)} WAL frames in ${m.events.commits} commits`,
    }),
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
      note: `what SQLite appended to the WAL: ${Math.round(framesPerDay)} frames of ${m.pageSize + WAL_FRAME_HEADER} B a day`,
    }),
    metric({
      name: 'disk.wchar.per_day',
      value: mb(wchar),
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
