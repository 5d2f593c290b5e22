/**
 * The soak run (`npm run soak`): the whole alarm loop on this machine for hours, with
 * faults, checking the product's promise all along. It is the one loop harness
 * (loop/loop.ts) run long: a broker (mosquitto as a child process, or aedes in this
 * process), an optional weak link in front of it, the gateway as a real child process on
 * one end of a socat pseudo-terminal pair, simulated terminals on the other end, and the
 * operator console as the platform. Everything listens on 127.0.0.1 only.
 *
 * It presses alarms and lower-class events at random (a Poisson process), SIGKILLs the
 * gateway every so often and starts it again at once, and reports a broken promise
 * (loop/delivery.ts) the moment an arrival breaks it: an alarm twice after deduplication,
 * out of its terminal's order, or never pressed. At the end (after a drain) the same
 * ledger gives the verdict: every alarm arrived, every terminal shows it `received` (or
 * later), nothing left in a terminal's memory. Exit 0 if the promise held, 1 otherwise
 * (with the alarm ids that failed), 2 for a usage error.
 */

import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { requireTool } from '../device-sim/system-tools.js'
import { holdsWithin } from '../device-sim/wait.js'
import type { ConsoleEvent } from '../platform/index.js'
import { reached } from '../protocol/lifecycle.js'
import type { EventKind } from '../protocol/messages.js'
import { seededRandom } from '../protocol/random.js'
import { ARRIVAL_RULES, alertId, type Rule } from './delivery.js'
import { Loop, sleep } from './loop.js'
import { HELP, parseSoakOptions, type SoakOptions } from './soak-options.js'

const ALARM_WEIGHTS: readonly (readonly [EventKind, number])[] = [
  ['emergency', 50],
  ['fire', 15],
  ['medical', 15],
  ['panic', 10],
  ['cancel', 10],
]
const LOWER_KINDS: readonly EventKind[] = ['callback', 'mains-lost', 'mains-restored', 'battery-low', 'battery-restored', 'tamper', 'tamper-restored', 'test']

/** How often the gateway's resident memory is sampled, ms. */
const RSS_EVERY_MS = 5000
/** Gateway log lines kept in memory (all of them go to gateway.log). */
const LOG_LINES_KEPT = 1000

interface Alarm {
  id: string
  terminal: string
  number: number
  kind: EventKind
  pressedAt: number
  arrivedAt: number | null
  receivedAt: number | null
  late: boolean
  unconfirmed: boolean
}

/** A broken promise (`rule` from delivery.ts), or something else that went wrong (no rule). */
interface Violation {
  id: string | null
  what: string
  rule?: Rule
}

// ---------------------------------------------------------------------------------------
// Small helpers

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

const ms = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`)
const mb = (kb: number | null): string => (kb === null ? '-' : `${(kb / 1024).toFixed(1)} MB`)
function clock(msElapsed: number): string {
  const s = Math.floor(msElapsed / 1000)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  return `${h > 0 ? `${h}h` : ''}${String(m).padStart(h > 0 ? 2 : 1, '0')}m${String(s % 60).padStart(2, '0')}s`
}

/** Resident set size of a process, kB, from /proc (Linux); null where unknown. */
function rssKb(pid: number | undefined): number | null {
  if (pid === undefined) return null
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

// ---------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const request = parseSoakOptions(process.argv.slice(2))
  if (request.kind === 'help') {
    console.log(HELP)
    return 0
  }
  if (request.kind === 'usage') {
    console.error(`soak: ${request.message}\n\n${HELP}`)
    return 2
  }
  const o = request.options
  try {
    requireTool('socat')
    if (o.broker === 'mosquitto') requireTool('mosquitto')
  } catch (e) {
    console.error(`soak: a tool is missing. Run:\n  sudo ${(e as Error).message}`)
    return 2
  }
  const dir = mkdtempSync(join(tmpdir(), 'steppelink-soak-'))
  let held = false
  try {
    held = await soak(o, dir)
    return held ? 0 : 1
  } finally {
    if (held && !o.keep) rmSync(dir, { recursive: true, force: true })
    else console.log(`the run's directory (gateway.log, the store, report.json): ${dir}`)
  }
}

/** Runs the soak in `dir`; resolves with whether the promise held. */
async function soak(o: SoakOptions, dir: string): Promise<boolean> {
  const random = seededRandom(o.seed)
  const say = (line: string) => console.log(line)
  const t0 = Date.now()
  const elapsed = () => clock(Date.now() - t0)

  // -- state of the run ---------------------------------------------------------------------
  /** Every alarm pressed, by id. */
  const alarms = new Map<string, Alarm>()
  /** Lower-class events pressed, by id. */
  const lower = new Map<string, { kind: EventKind; pressedAt: number; arrivedAt: number | null }>()
  const violations: Violation[] = []
  const failedIds = new Set<string>()
  const rss = { samples: 0, maxKb: null as number | null, lastKb: null as number | null }
  let restarts = 0
  let unexpectedExits = 0
  let lateCount = 0
  let consoleErrors = 0
  let otherEvents = 0
  let stopping = false

  const violate = (v: Violation) => {
    violations.push(v)
    if (v.id !== null && (alarms.has(v.id) || v.rule === 'pressed')) failedIds.add(v.id)
    say(`[${elapsed()}] PROMISE BROKEN: ${v.id !== null ? `${v.id}: ` : ''}${v.what}`)
  }

  const onConsole = (e: ConsoleEvent) => {
    if (e.type === 'error') consoleErrors++
    if (e.type === 'event' || (e.type === 'status' && e.scope === 'terminal')) {
      const l = e.id !== null ? lower.get(e.id) : undefined
      if (l && l.arrivedAt === null) l.arrivedAt = Date.now()
      else if (!l) otherEvents++
      return
    }
    if (e.type !== 'alert' || e.duplicate) return
    const a = alarms.get(e.id)
    if (a && a.arrivedAt === null) a.arrivedAt = Date.now()
  }

  // -- the loop: broker, weak link, serial line, console, gateway, terminals -----------------
  const logFile = createWriteStream(join(dir, 'gateway.log'), { flags: 'a' })
  let restarting: Promise<void> | null = null
  const loop = new Loop({
    dir,
    broker: o.broker,
    persistence: true,
    onBrokerCrash: (how, stderr) => {
      if (!stopping) violate({ id: null, what: `mosquitto exited by itself (${how}): ${stderr}` })
    },
    ...(o.link !== null ? { link: { profile: o.link, seed: o.seed } } : {}),
    console: { ack: o.ack, id: `soak-${process.pid}`, onEvent: onConsole },
    keepEvents: false,
    gatewayId: 'gw-soak',
    logLevel: 'info',
    gatewayOutput: { onOutput: (text) => logFile.write(text), keepLines: LOG_LINES_KEPT },
    onGatewayExit: (g, how) => {
      if (stopping) return
      unexpectedExits++
      violate({ id: null, what: `the gateway exited by itself (${how}); stderr: ${g.stderr.trim() || '(none)'}; restarting it` })
      if (loop.gateway === g) restart().catch((e: Error) => violate({ id: null, what: `restart failed: ${e.message}` }))
    },
    terminals: o.terminals,
    terminalId: (address) => `SL-T-SOAK${address}`,
    // One terminal: bytes paced at 9600 baud, as a real UART. Several on one line: whole
    // frames (as in the fault suite), so that two terminals' bytes never interleave.
    serial: { pace: o.terminals === 1 },
    onTerminalUpdate: (terminal, u) => {
      if (u.kind !== 'stage') return
      const a = alarms.get(alertId(terminal, u.event))
      if (!a) return
      if (u.stage === 'unconfirmed') a.unconfirmed = true
      if (reached(u.stage, 'received') && a.receivedAt === null) a.receivedAt = Date.now()
    },
    onBroken: (b) => violate(b),
  })
  const restart = () =>
    (restarting ??= (async () => {
      try {
        await loop.restartGateway('SIGKILL')
      } finally {
        restarting = null
      }
    })())
  const timers = new Set<NodeJS.Timeout>()
  const intervals: NodeJS.Timeout[] = []
  try {
    await loop.start()
    intervals.push(
      setInterval(() => {
        const kb = rssKb(loop.gateway.child.pid)
        if (kb === null) return
        rss.samples++
        rss.lastKb = kb
        rss.maxKb = Math.max(rss.maxKb ?? 0, kb)
      }, RSS_EVERY_MS),
    )

    const pressAlarm = (index: number, kind: EventKind) => {
      const t = loop.terminals[index]!
      const pressedAt = Date.now()
      const number = loop.press(index, kind)
      const id = alertId(t.id, number)
      alarms.set(id, { id, terminal: t.id, number, kind, pressedAt, arrivedAt: null, receivedAt: null, late: false, unconfirmed: false })
    }
    const pressLower = (index: number, kind: EventKind) => {
      const pressedAt = Date.now()
      const number = loop.press(index, kind)
      lower.set(alertId(loop.terminals[index]!.id, number), { kind, pressedAt, arrivedAt: null })
    }
    const pick = (weights: readonly (readonly [EventKind, number])[]): EventKind => {
      let u = random() * weights.reduce((s, [, w]) => s + w, 0)
      for (const [k, w] of weights) {
        u -= w
        if (u < 0) return k
      }
      return weights[0]![0]
    }
    const anyTerminal = () => Math.floor(random() * loop.terminals.length)
    const pressRandom = () => {
      const t = anyTerminal()
      if (random() < 0.7) pressAlarm(t, pick(ALARM_WEIGHTS))
      else pressLower(t, LOWER_KINDS[Math.floor(random() * LOWER_KINDS.length)]!)
    }

    say(`Steppelink soak: ${o.hours} h (${clock(o.hours * 3_600_000)}), seed ${o.seed} (--seed ${o.seed} repeats the schedule)`)
    say(`  broker    ${o.broker} on ${loop.brokerUrl}${loop.weak ? `; the gateway reaches it through a ${o.link} link (${loop.gatewayBrokerUrl})` : ''}`)
    say(`  gateway   node dist/cli/main.js gateway, pid ${loop.gateway.child.pid}, SIGKILLed ${o.killEveryS > 0 ? `about every ${o.killEveryS} s` : 'never'}; log and store in ${dir}`)
    say(`  terminals ${loop.terminals.map((t) => t.id).join(', ')} on ${loop.pty.b}; ${o.pressesPerMinute} presses a minute, 70 % alarms; console --ack ${o.ack}`)
    say(`  deadline  an alarm not received at the terminal within ${o.deadlineS} s is reported late`)
    say('')

    // -- the schedule: presses, kills, checks, progress ---------------------------------------------
    const runUntil = t0 + o.hours * 3_600_000
    const later = (fn: () => void, delayMs: number) => {
      const h = setTimeout(() => {
        timers.delete(h)
        fn()
      }, delayMs)
      timers.add(h)
    }
    const meanGapMs = 60_000 / o.pressesPerMinute
    const schedulePress = (): void =>
      later(
        () => {
          if (Date.now() >= runUntil || stopping) return
          pressRandom()
          schedulePress()
        },
        -Math.log(1 - random()) * meanGapMs,
      )
    schedulePress()
    const scheduleKill = (): void =>
      later(
        () => {
          void (async () => {
            if (Date.now() >= runUntil || stopping) return
            // Half of the kills land while an alarm is on its way (between press, store and publish).
            if (random() < 0.5) {
              pressAlarm(anyTerminal(), 'emergency')
              await sleep(random() * 150)
            }
            try {
              await restart()
              restarts++
            } catch (e) {
              violate({ id: null, what: `the gateway did not come back after a SIGKILL: ${(e as Error).message}` })
            }
            scheduleKill()
          })()
        },
        o.killEveryS * 1000 * (0.5 + random()),
      )
    if (o.killEveryS > 0) scheduleKill()

    const deadlineMs = o.deadlineS * 1000
    intervals.push(
      setInterval(() => {
        const now = Date.now()
        for (const a of alarms.values()) {
          if (a.late || a.receivedAt !== null || now - a.pressedAt < deadlineMs) continue
          a.late = true
          lateCount++
          const shown = loop.terminals.find((t) => t.id === a.terminal)?.device.stages.get(a.number)
          say(`[${elapsed()}] LATE: ${a.id} (${a.kind}) pressed ${ms(now - a.pressedAt)} ago; at the console: ${a.arrivedAt !== null ? 'yes' : 'no'}; the terminal shows ${shown}`)
        }
      }, 1000),
    )

    const latencies = () => {
      const list = [...alarms.values()]
      return {
        receipt: list.flatMap((a) => (a.receivedAt !== null ? [a.receivedAt - a.pressedAt] : [])).sort((x, y) => x - y),
        arrival: list.flatMap((a) => (a.arrivedAt !== null ? [a.arrivedAt - a.pressedAt] : [])).sort((x, y) => x - y),
      }
    }
    const progress = () => {
      const list = [...alarms.values()]
      const at = list.filter((a) => a.arrivedAt !== null).length
      const rec = list.filter((a) => a.receivedAt !== null).length
      const { receipt } = latencies()
      const lowerDone = [...lower.values()].filter((l) => l.arrivedAt !== null).length
      say(
        `[${elapsed()}] alarms ${list.length} pressed, ${at} at the console, ${rec} received at the terminal; ` +
          `events ${lowerDone}/${lower.size}; duplicates on the wire ${loop.duplicatesOnWire()}; restarts ${restarts}; ` +
          `press-to-receipt p99 ${ms(percentile(receipt, 99))}, max ${ms(receipt.at(-1))}; gateway RSS ${mb(rss.lastKb)} (max ${mb(rss.maxKb)}); ` +
          `late ${lateCount}; broken ${violations.length}`,
      )
    }
    intervals.push(setInterval(progress, 60_000))

    // Ctrl-C ends the pressing early and goes to the drain and the report; a second one aborts.
    let interrupted = false
    const endEarly = new Promise<void>((resolve) =>
      process.on('SIGINT', () => {
        if (interrupted) process.exit(130)
        interrupted = true
        say(`[${elapsed()}] interrupted: no more presses or kills; draining, then the report (Ctrl-C again to abort)`)
        resolve()
      }),
    )

    await Promise.race([sleep(Math.max(0, runUntil - Date.now())), endEarly])
    const pressingEnded = Date.now()
    timers.forEach(clearTimeout)
    timers.clear()
    if (restarting) await (restarting as Promise<void>).catch(() => {})

    // -- drain: everything pressed gets its chance to arrive ------------------------------------------
    const settled = () => {
      const out = loop.delivery.outstanding(loop.terminals)
      return out.arrive.length === 0 && out.show.length === 0 && out.memory.length === 0 && [...lower.values()].every((l) => l.arrivedAt !== null)
    }
    await holdsWithin(settled, { timeoutMs: deadlineMs, intervalMs: 100 })
    const drainMs = Date.now() - pressingEnded
    progress()

    // -- the verdict: what the arrivals broke was said as it happened; now what only the end tells ------
    for (const b of loop.delivery.verdict(loop.terminals)) if (!ARRIVAL_RULES.has(b.rule)) violate(b)
    const { receipt, arrival } = latencies()
    const list = [...alarms.values()]
    const lowerMissing = [...lower.entries()].filter(([, l]) => l.arrivedAt === null).map(([id]) => id)
    const report = {
      ranFor: clock(pressingEnded - t0),
      drain: clock(drainMs),
      broker: o.broker,
      link: o.link ?? 'none',
      killEveryS: o.killEveryS,
      pressesPerMinute: o.pressesPerMinute,
      terminals: o.terminals,
      seed: o.seed,
      alarms: list.length,
      atConsole: list.filter((a) => a.arrivedAt !== null).length,
      receivedAtTerminal: list.filter((a) => a.receivedAt !== null).length,
      duplicatesOnWire: loop.duplicatesOnWire(),
      lowerClassPressed: lower.size,
      lowerClassDelivered: lower.size - lowerMissing.length,
      pressToArrivalMs: { p50: percentile(arrival, 50), p99: percentile(arrival, 99), max: arrival.at(-1) ?? null },
      pressToReceiptMs: { p50: percentile(receipt, 50), p99: percentile(receipt, 99), max: receipt.at(-1) ?? null },
      late: list.filter((a) => a.late).map((a) => a.id),
      unconfirmedShown: list.filter((a) => a.unconfirmed).length,
      gatewayRestarts: restarts,
      gatewayUnexpectedExits: unexpectedExits,
      gatewayRssKb: { max: rss.maxKb, last: rss.lastKb, samples: rss.samples },
      consoleErrors,
      otherItemsAtConsole: otherEvents,
      violations,
      failedAlarms: [...failedIds],
      held: violations.length === 0,
    }
    writeFileSync(join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`)

    const arrivalsBroken = violations.some((v) => v.rule !== undefined && ARRIVAL_RULES.has(v.rule))
    say('')
    say(`Soak report (${report.ranFor} of presses and kills, then ${report.drain} of drain; seed ${o.seed})`)
    say(`  broker / link             ${report.broker} / ${report.link}; ${o.terminals} terminal(s); console --ack ${o.ack}`)
    say(`  alarms pressed            ${report.alarms}`)
    say(`  at the console            ${report.atConsole}, each once after deduplication, in each terminal's order: ${arrivalsBroken ? 'NO' : 'yes'}`)
    say(`  received at the terminal  ${report.receivedAtTerminal}; ${report.unconfirmedShown} showed "unconfirmed" on the way; late (over ${o.deadlineS} s): ${report.late.length}`)
    say(`  duplicates on the wire    ${report.duplicatesOnWire} (copies beyond the first of each alarm id)`)
    say(`  press to console          p50 ${ms(report.pressToArrivalMs.p50)}, p99 ${ms(report.pressToArrivalMs.p99)}, max ${ms(report.pressToArrivalMs.max)}`)
    say(`  press to receipt          p50 ${ms(report.pressToReceiptMs.p50)}, p99 ${ms(report.pressToReceiptMs.p99)}, max ${ms(report.pressToReceiptMs.max)} (the terminal shows received)`)
    say(
      `  lower-class events        ${report.lowerClassDelivered}/${report.lowerClassPressed} delivered${lowerMissing.length ? ` (missing: ${lowerMissing.slice(0, 20).join(', ')}${lowerMissing.length > 20 ? ', ...' : ''})` : ''}`,
    )
    say(`  gateway restarts          ${restarts} by SIGKILL; ${unexpectedExits} exits by itself`)
    say(`  gateway RSS               max ${mb(rss.maxKb)}, last ${mb(rss.lastKb)} (${rss.samples} samples, every ${RSS_EVERY_MS / 1000} s)`)
    say(`  console payload errors    ${consoleErrors}`)
    if (report.held) {
      say(`\nPROMISE HELD: every one of ${report.alarms} alarms reached the console once, in order, and its terminal shows it received.`)
    } else {
      say(`\nPROMISE BROKEN (${violations.length}):`)
      for (const v of violations.slice(0, 50)) say(`  ${v.id ?? '-'}: ${v.what}`)
      if (violations.length > 50) say(`  ... ${violations.length - 50} more in ${join(dir, 'report.json')}`)
      say(`alarms that failed: ${report.failedAlarms.join(' ') || '(none: see above)'}`)
    }
    return report.held
  } finally {
    stopping = true
    timers.forEach(clearTimeout)
    for (const i of intervals) clearInterval(i)
    // A clean stop at the end (the store closed), as systemd stops it; then the rest.
    await loop.stopGateway('SIGTERM').catch(() => {})
    await loop.close()
    await new Promise<void>((resolve) => logFile.end(resolve))
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`soak: ${(e as Error)?.stack ?? String(e)}`)
    process.exit(1)
  },
)
