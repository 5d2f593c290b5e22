#!/usr/bin/env node
// The soak run: the whole alarm loop on this machine for hours, with faults, checking the
// product's promise all along. Built from the compiled modules in dist/ (npm run soak
// builds first): a broker (mosquitto as a child process, or aedes in this process), an
// optional weak link in front of it, the gateway as a real child process
// (`node dist/cli/main.js gateway`) on one end of a socat pseudo-terminal pair, simulated
// terminals on the other end, and the operator console as the platform. Everything
// listens on 127.0.0.1 only.
//
// It presses alarms and lower-class events at random (a Poisson process), SIGKILLs the
// gateway every so often and starts it again at once, and checks as it goes that every
// alarm reaches the console once after deduplication and in each terminal's order; at the
// end (after a drain) that every alarm arrived and every terminal shows it `received` (or
// later) with nothing left in its memory. Exit 0 if the promise held, 1 otherwise (with
// the alarm ids that failed), 2 for a usage error.

import { spawn } from 'node:child_process'
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const ROOT = join(import.meta.dirname, '..')
const DIST = join(ROOT, 'dist')
const BIN = join(DIST, 'cli', 'main.js')

const HELP = `Usage: npm run soak -- --hours N [options]
       node scripts/soak.mjs --hours N [options]      (after npm run build)

Runs the whole alarm loop on 127.0.0.1 for N hours: broker, weak link, the gateway as a
real process, terminals on a pseudo-terminal pair, the operator console. Presses alarms
and lower-class events at random, kills the gateway with SIGKILL every so often, and
checks the promise: every alarm reaches the console, once after deduplication, in each
terminal's order, and the terminal ends showing it received. A progress line every
minute, a report at the end. Exit 0 if the promise held, 1 if not (naming the alarms).

Options:
  --hours N                 how long to press and kill, hours; fractions allowed (0.05 = 3 min) (required)
  --broker aedes|mosquitto  the platform's broker (default mosquitto, with persistence)
  --link PROFILE            a weak link between gateway and broker: gprs, storm, edge,
                            satellite or perfect (default: none)
  --kill-every S            SIGKILL the gateway about every S seconds (uniform 0.5 S to 1.5 S),
                            half of the time 0-150 ms after a press; 0: never (default 45)
  --presses-per-minute N    presses per minute over all terminals, 70 % alarms (default 10)
  --terminals N             terminals sharing the serial line, addresses 1..N (default 1)
  --ack none|auto           the console sends receipts only, or also acknowledges (default none)
  --deadline S              an alarm not received at the terminal within S s of its press is
                            reported late at once; also the longest drain at the end
                            (default 60; gprs 120; storm 300)
  --seed N                  seed of the schedule of presses and kills (default: random, printed)
  --keep                    keep the run's directory (gateway log, store) even if it passed
  --help                    this help

Needs socat (and mosquitto for --broker mosquitto): apt-get install -y socat mosquitto.`

// ---------------------------------------------------------------------------------------
// Options

function usage(message) {
  console.error(`soak: ${message}\n\n${HELP}`)
  process.exit(2)
}

function parseOptions(argv) {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        hours: { type: 'string' },
        broker: { type: 'string', default: 'mosquitto' },
        link: { type: 'string' },
        'kill-every': { type: 'string', default: '45' },
        'presses-per-minute': { type: 'string', default: '10' },
        terminals: { type: 'string', default: '1' },
        ack: { type: 'string', default: 'none' },
        deadline: { type: 'string' },
        seed: { type: 'string' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }))
  } catch (e) {
    usage(e.message)
  }
  if (values.help) {
    console.log(HELP)
    process.exit(0)
  }
  const number = (name, { min, max, integer = false }) => {
    const raw = values[name]
    const n = Number(raw)
    if (raw === undefined || raw.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      usage(`--${name}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${raw === undefined ? 'nothing' : JSON.stringify(raw)}`)
    }
    return n
  }
  if (values.hours === undefined) usage('--hours is required (how long to run; 0.05 is 3 minutes)')
  const o = {
    hours: number('hours', { min: 0.001, max: 24 * 14 }),
    broker: values.broker,
    link: values.link ?? null,
    killEveryS: number('kill-every', { min: 0, max: 86_400 }),
    pressesPerMinute: number('presses-per-minute', { min: 0.1, max: 600 }),
    terminals: number('terminals', { min: 1, max: 32, integer: true }),
    ack: values.ack,
    deadlineS: 0,
    seed: values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : number('seed', { min: 0, max: 2 ** 32 - 1, integer: true }),
    keep: values.keep,
  }
  if (!['aedes', 'mosquitto'].includes(o.broker)) usage(`--broker: expected aedes or mosquitto, got ${JSON.stringify(o.broker)}`)
  if (!['none', 'auto'].includes(o.ack)) usage(`--ack: expected none or auto, got ${JSON.stringify(o.ack)}`)
  if (o.killEveryS > 0 && o.killEveryS < 2) usage('--kill-every: at least 2 s (the gateway needs a moment to start), or 0 for never')
  o.deadlineS = values.deadline === undefined ? ({ gprs: 120, storm: 300 }[o.link] ?? 60) : number('deadline', { min: 5, max: 86_400 })
  return o
}

// ---------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function percentile(sorted, p) {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

const ms = (v) => (v === null || v === undefined ? '-' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`)
const mb = (kb) => (kb === null || kb === undefined ? '-' : `${(kb / 1024).toFixed(1)} MB`)
function clock(msElapsed) {
  const s = Math.floor(msElapsed / 1000)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  return `${h > 0 ? `${h}h` : ''}${String(m).padStart(h > 0 ? 2 : 1, '0')}m${String(s % 60).padStart(2, '0')}s`
}

/** Resident set size of a process, kB, from /proc (Linux); null where unknown. */
function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

/** Children to kill whatever happens, so that nothing outlives the run. */
const children = new Set()
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
})

function exitOf(child) {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()))
}

async function terminate(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = exitOf(child)
  child.kill(signal)
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

// ---------------------------------------------------------------------------------------
// The run

const ALARM_WEIGHTS = [
  ['emergency', 50],
  ['fire', 15],
  ['medical', 15],
  ['panic', 10],
  ['cancel', 10],
]
const LOWER_KINDS = ['callback', 'mains-lost', 'mains-restored', 'battery-low', 'battery-restored', 'tamper', 'tamper-restored', 'test']

async function main() {
  const o = parseOptions(process.argv.slice(2))
  if (!existsSync(BIN)) {
    console.error('soak: dist/ is missing; run `npm run build` first (npm run soak does it for you)')
    return 2
  }
  const [{ startAedes }, { startMosquitto }, { openPtyPair }, { startConsole }, { TerminalDevice, ramMemory, ALARM_KINDS }, { runOnSerial }, { startWeakLink, PROFILE_NAMES }, { requireTool }, { seededRandom }, { reached }] =
    await Promise.all([
      import(join(DIST, 'device-sim', 'broker.js')),
      import(join(DIST, 'device-sim', 'mosquitto.js')),
      import(join(DIST, 'device-sim', 'pty.js')),
      import(join(DIST, 'platform', 'index.js')),
      import(join(DIST, 'device-sim', 'terminal.js')),
      import(join(DIST, 'device-sim', 'serial-runner.js')),
      import(join(DIST, 'device-sim', 'weak-link.js')),
      import(join(DIST, 'device-sim', 'system-tools.js')),
      import(join(DIST, 'protocol', 'random.js')),
      import(join(DIST, 'protocol', 'lifecycle.js')),
    ])
  if (o.link !== null && !PROFILE_NAMES.includes(o.link)) usage(`--link: expected one of ${PROFILE_NAMES.join(', ')}, got ${JSON.stringify(o.link)}`)
  try {
    requireTool('socat')
    if (o.broker === 'mosquitto') requireTool('mosquitto')
  } catch (e) {
    console.error(`soak: a tool is missing. Run:\n  sudo ${e.message}`)
    return 2
  }

  const dir = mkdtempSync(join(tmpdir(), 'steppelink-soak-'))
  const cleanups = []
  const run = { stopping: false, held: false }
  try {
    return await soak(o, { startAedes, startMosquitto, openPtyPair, startConsole, TerminalDevice, ramMemory, runOnSerial, startWeakLink, seededRandom }, dir, cleanups, run)
  } finally {
    run.stopping = true
    for (const c of cleanups.reverse()) {
      try {
        await c()
      } catch {
        // Tear-down is best effort; the verdict is already written.
      }
    }
    if (run.held && !o.keep) rmSync(dir, { recursive: true, force: true })
    else console.log(`the run's directory (gateway.log, the store, report.json): ${dir}`)
  }
}

async function soak(o, lib, dir, cleanups, run) {
  const { startAedes, startMosquitto, openPtyPair, startConsole, TerminalDevice, ramMemory, runOnSerial, startWeakLink, seededRandom } = lib
  const random = seededRandom(o.seed)
  const say = (line) => console.log(line)
  const t0 = Date.now()
  const elapsed = () => clock(Date.now() - t0)

  // -- state of the run ---------------------------------------------------------------------
  /** Every alarm pressed, by id: { id, terminal, number, kind, pressedAt, arrivedAt, receivedAt, late, unconfirmed }. */
  const alarms = new Map()
  /** Per terminal id: the alarm ids in the order pressed, and how far they have arrived in order. */
  const perTerminal = new Map()
  /** Lower-class events pressed, by id: { pressedAt, arrivedAt }. */
  const lower = new Map()
  const copies = new Map()
  const violations = [] // { id, what }
  const failedIds = new Set()
  const rss = { samples: 0, maxKb: null, lastKb: null }
  let restarts = 0
  let unexpectedExits = 0
  let lateCount = 0
  let consoleErrors = 0
  let otherEvents = 0

  const violate = (id, what) => {
    violations.push({ id, what })
    if (id) failedIds.add(id)
    say(`[${elapsed()}] PROMISE BROKEN: ${id ? `${id}: ` : ''}${what}`)
  }

  // -- broker, weak link, serial line, console ---------------------------------------------
  let broker
  if (o.broker === 'mosquitto') {
    broker = await startMosquitto({
      dir,
      persistence: true,
      // [MQTT-2.6]: the default of 1000 queued messages per client is too small for a day.
      conf: ['max_queued_messages 100000'],
      onCrash: (how, stderr) => {
        if (!run.stopping) violate(null, `mosquitto exited by itself (${how}): ${stderr}`)
      },
    })
  } else {
    broker = await startAedes()
  }
  cleanups.push(() => broker.close())
  let weak = null
  let gatewayBroker = broker.url
  if (o.link !== null) {
    weak = await startWeakLink({ target: { port: broker.port }, profile: o.link, seed: o.seed })
    cleanups.push(() => weak.stop())
    gatewayBroker = `mqtt://127.0.0.1:${weak.port}`
  }
  const pty = await openPtyPair()
  cleanups.push(() => pty.close())

  const onConsole = (e) => {
    if (e.type === 'error') consoleErrors++
    if (e.type === 'event' || (e.type === 'status' && e.scope === 'terminal')) {
      const l = e.id !== null ? lower.get(e.id) : undefined
      if (l && l.arrivedAt === null) l.arrivedAt = Date.now()
      else if (!l) otherEvents++
      return
    }
    if (e.type !== 'alert') return
    copies.set(e.id, (copies.get(e.id) ?? 0) + 1)
    const a = alarms.get(e.id)
    if (!a) {
      if (!e.duplicate) violate(e.id, 'arrived at the console but was never pressed')
      return
    }
    if (e.duplicate) return
    if (a.arrivedAt !== null) return violate(e.id, 'arrived twice after deduplication')
    a.arrivedAt = Date.now()
    // In order: the first alarm of this terminal not yet arrived must be this one.
    const t = perTerminal.get(a.terminal)
    while (t.next < t.ids.length && alarms.get(t.ids[t.next]).arrivedAt !== null && t.ids[t.next] !== e.id) t.next++
    const expected = t.ids[t.next]
    if (expected === e.id) t.next++
    else if (!t.overtaken.has(expected)) {
      // Once per alarm overtaken: the later ones that also overtake it say nothing new.
      t.overtaken.add(expected)
      violate(e.id, `arrived before ${expected} of the same terminal, pressed earlier`)
    }
  }
  const consoleApi = await startConsole({ broker: broker.url, id: `soak-${process.pid}`, ack: o.ack, reconnectS: 0.2, onEvent: onConsole })
  cleanups.push(() => consoleApi.close())

  // -- the gateway, a real process, SIGKILLed and restarted -----------------------------------
  const logFile = createWriteStream(join(dir, 'gateway.log'), { flags: 'a' })
  cleanups.push(() => new Promise((resolve) => logFile.end(resolve)))
  let gateway = null
  const startGateway = async () => {
    const args = [BIN, 'gateway', '--serial', pty.a, '--broker', gatewayBroker, '--id', 'gw-soak', '--data', join(dir, 'gateway'), '--log-level', 'info']
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    const g = { child, ready: false, killedByUs: false, stderr: '' }
    gateway = g
    let partial = ''
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      logFile.write(chunk)
      partial += chunk
      const lines = partial.split('\n')
      partial = lines.pop()
      for (const l of lines) if (l.includes('"gateway ready"')) g.ready = true
    })
    child.stderr.setEncoding('utf8').on('data', (s) => {
      g.stderr = (g.stderr + s).slice(-4000)
      logFile.write(s)
    })
    child.once('exit', (code, signal) => {
      children.delete(child)
      if (g.killedByUs || run.stopping) return
      unexpectedExits++
      violate(null, `the gateway exited by itself (${code ?? signal}); stderr: ${g.stderr.trim() || '(none)'}; restarting it`)
      if (gateway === g) restart().catch((e) => violate(null, `restart failed: ${e.message}`))
    })
    const deadline = Date.now() + 30_000
    while (!g.ready) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the gateway exited (${child.exitCode ?? child.signalCode}) before it was ready: ${g.stderr}`)
      if (Date.now() > deadline) throw new Error('the gateway was not ready within 30 s')
      await sleep(10)
    }
    return g
  }
  let restarting = null
  const restart = () =>
    (restarting ??= (async () => {
      try {
        const old = gateway
        if (old && old.child.exitCode === null && old.child.signalCode === null) {
          old.killedByUs = true
          await terminate(old.child, 'SIGKILL')
        }
        if (!run.stopping) await startGateway()
      } finally {
        restarting = null
      }
    })())
  cleanups.push(async () => {
    if (gateway) {
      gateway.killedByUs = true
      await terminate(gateway.child, 'SIGTERM')
    }
  })
  await startGateway()
  const rssTimer = setInterval(() => {
    const kb = gateway ? rssKb(gateway.child.pid) : null
    if (kb === null) return
    rss.samples++
    rss.lastKb = kb
    rss.maxKb = Math.max(rss.maxKb ?? 0, kb)
  }, 5000)
  cleanups.push(() => clearInterval(rssTimer))

  // -- terminals --------------------------------------------------------------------------------
  const terminals = []
  for (let address = 1; address <= o.terminals; address++) {
    const id = `SL-T-SOAK${address}`
    perTerminal.set(id, { ids: [], next: 0, overtaken: new Set() })
    const device = new TerminalDevice({
      address,
      terminal: id,
      memory: ramMemory(),
      now: Date.now(),
      onUpdate: (u) => {
        if (u.kind !== 'stage') return
        const a = alarms.get(`${id}:${u.event}`)
        if (!a) return
        if (u.stage === 'unconfirmed') a.unconfirmed = true
        if (reached(u.stage, 'received') && a.receivedAt === null) a.receivedAt = Date.now()
      },
    })
    // One terminal: bytes paced at 9600 baud, as a real UART. Several on one line: whole
    // frames (as in the fault suite), so that two terminals' bytes never interleave.
    const running = runOnSerial(device, { path: pty.b, pace: o.terminals === 1 })
    cleanups.push(() => running.stop())
    terminals.push({ id, device, running })
  }
  const sessionDeadline = Date.now() + 20_000
  while (!terminals.every((t) => t.device.link.status.state === 'open')) {
    if (Date.now() > sessionDeadline) throw new Error('the terminals did not open their sessions with the gateway within 20 s')
    await sleep(20)
  }

  const pressAlarm = (t, kind) => {
    const pressedAt = Date.now()
    const e = t.device.press(kind)
    t.running.wake()
    const id = `${t.id}:${e.number}`
    alarms.set(id, { id, terminal: t.id, number: e.number, kind, pressedAt, arrivedAt: null, receivedAt: null, late: false, unconfirmed: false })
    perTerminal.get(t.id).ids.push(id)
  }
  const pressLower = (t, kind) => {
    const pressedAt = Date.now()
    const e = t.device.press(kind)
    t.running.wake()
    lower.set(`${t.id}:${e.number}`, { kind, pressedAt, arrivedAt: null })
  }
  const pick = (weights) => {
    let u = random() * weights.reduce((s, [, w]) => s + w, 0)
    for (const [k, w] of weights) if ((u -= w) < 0) return k
    return weights[0][0]
  }
  const pressRandom = () => {
    const t = terminals[Math.floor(random() * terminals.length)]
    if (random() < 0.7) pressAlarm(t, pick(ALARM_WEIGHTS))
    else pressLower(t, LOWER_KINDS[Math.floor(random() * LOWER_KINDS.length)])
  }

  say(`Steppelink soak: ${o.hours} h (${clock(o.hours * 3_600_000)}), seed ${o.seed} (--seed ${o.seed} repeats the schedule)`)
  say(`  broker    ${o.broker} on ${broker.url}${weak ? `; the gateway reaches it through a ${o.link} link (${gatewayBroker})` : ''}`)
  say(`  gateway   node dist/cli/main.js gateway, pid ${gateway.child.pid}, SIGKILLed ${o.killEveryS > 0 ? `about every ${o.killEveryS} s` : 'never'}; log and store in ${dir}`)
  say(`  terminals ${terminals.map((t) => t.id).join(', ')} on ${pty.b}; ${o.pressesPerMinute} presses a minute, 70 % alarms; console --ack ${o.ack}`)
  say(`  deadline  an alarm not received at the terminal within ${o.deadlineS} s is reported late`)
  say('')

  // -- the schedule: presses, kills, checks, progress ---------------------------------------------
  const runUntil = t0 + o.hours * 3_600_000
  const timers = new Set()
  const later = (fn, delayMs) => {
    const h = setTimeout(() => {
      timers.delete(h)
      fn()
    }, delayMs)
    timers.add(h)
  }
  cleanups.push(() => timers.forEach(clearTimeout))
  const meanGapMs = 60_000 / o.pressesPerMinute
  const schedulePress = () =>
    later(() => {
      if (Date.now() >= runUntil || run.stopping) return
      pressRandom()
      schedulePress()
    }, -Math.log(1 - random()) * meanGapMs)
  schedulePress()
  const scheduleKill = () =>
    later(async () => {
      if (Date.now() >= runUntil || run.stopping) return
      // Half of the kills land while an alarm is on its way (between press, store and publish).
      if (random() < 0.5) {
        pressAlarm(terminals[Math.floor(random() * terminals.length)], 'emergency')
        await sleep(random() * 150)
      }
      try {
        await restart()
        restarts++
      } catch (e) {
        violate(null, `the gateway did not come back after a SIGKILL: ${e.message}`)
      }
      scheduleKill()
    }, o.killEveryS * 1000 * (0.5 + random()))
  if (o.killEveryS > 0) scheduleKill()

  const deadlineMs = o.deadlineS * 1000
  const checkTimer = setInterval(() => {
    const now = Date.now()
    for (const a of alarms.values()) {
      if (a.late || a.receivedAt !== null || now - a.pressedAt < deadlineMs) continue
      a.late = true
      lateCount++
      const shown = terminals.find((t) => t.id === a.terminal).device.stages.get(a.number)
      say(`[${elapsed()}] LATE: ${a.id} (${a.kind}) pressed ${ms(now - a.pressedAt)} ago; at the console: ${a.arrivedAt !== null ? 'yes' : 'no'}; the terminal shows ${shown}`)
    }
  }, 1000)
  cleanups.push(() => clearInterval(checkTimer))

  const latencies = () => {
    const list = [...alarms.values()]
    return {
      receipt: list.filter((a) => a.receivedAt !== null).map((a) => a.receivedAt - a.pressedAt).sort((x, y) => x - y),
      arrival: list.filter((a) => a.arrivedAt !== null).map((a) => a.arrivedAt - a.pressedAt).sort((x, y) => x - y),
    }
  }
  const duplicates = () => [...copies.values()].reduce((n, c) => n + c - 1, 0)
  const progress = () => {
    const list = [...alarms.values()]
    const at = list.filter((a) => a.arrivedAt !== null).length
    const rec = list.filter((a) => a.receivedAt !== null).length
    const { receipt } = latencies()
    const lowerDone = [...lower.values()].filter((l) => l.arrivedAt !== null).length
    say(
      `[${elapsed()}] alarms ${list.length} pressed, ${at} at the console, ${rec} received at the terminal; ` +
        `events ${lowerDone}/${lower.size}; duplicates on the wire ${duplicates()}; restarts ${restarts}; ` +
        `press-to-receipt p99 ${ms(percentile(receipt, 99))}, max ${ms(receipt.at(-1))}; gateway RSS ${mb(rss.lastKb)} (max ${mb(rss.maxKb)}); ` +
        `late ${lateCount}; broken ${violations.length}`,
    )
  }
  const progressTimer = setInterval(progress, 60_000)
  cleanups.push(() => clearInterval(progressTimer))

  // Ctrl-C ends the pressing early and goes to the drain and the report; a second one aborts.
  let interrupted = false
  const endEarly = new Promise((resolve) =>
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
  if (restarting) await restarting.catch(() => {})

  // -- drain: everything pressed gets its chance to arrive ------------------------------------------
  const settled = () =>
    [...alarms.values()].every((a) => a.arrivedAt !== null && a.receivedAt !== null) &&
    [...lower.values()].every((l) => l.arrivedAt !== null) &&
    terminals.every((t) => t.device.pending.length === 0)
  const drainUntil = Date.now() + deadlineMs
  while (!settled() && Date.now() < drainUntil) await sleep(100)
  const drainMs = Date.now() - pressingEnded
  progress()

  // -- the verdict -------------------------------------------------------------------------------------
  for (const a of alarms.values()) {
    const t = terminals.find((x) => x.id === a.terminal)
    const shown = t.device.stages.get(a.number)
    if (a.arrivedAt === null) violate(a.id, `never reached the console (the terminal shows ${shown})`)
    if (!reached(shown, 'received')) violate(a.id, `the terminal ends showing ${shown}, not received`)
  }
  for (const t of terminals) {
    for (const e of t.device.pending) {
      const id = `${t.id}:${e.number}`
      violate(alarms.has(id) ? id : null, `${id} (${e.kind}) is still in ${t.id}'s memory, never acknowledged by the gateway`)
    }
  }
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
    duplicatesOnWire: duplicates(),
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

  say('')
  say(`Soak report (${report.ranFor} of presses and kills, then ${report.drain} of drain; seed ${o.seed})`)
  say(`  broker / link             ${report.broker} / ${report.link}; ${o.terminals} terminal(s); console --ack ${o.ack}`)
  say(`  alarms pressed            ${report.alarms}`)
  say(`  at the console            ${report.atConsole}, each once after deduplication, in each terminal's order: ${violations.some((v) => /arrived/.test(v.what)) ? 'NO' : 'yes'}`)
  say(`  received at the terminal  ${report.receivedAtTerminal}; ${report.unconfirmedShown} showed "unconfirmed" on the way; late (over ${o.deadlineS} s): ${report.late.length}`)
  say(`  duplicates on the wire    ${report.duplicatesOnWire} (copies beyond the first of each alarm id)`)
  say(`  press to console          p50 ${ms(report.pressToArrivalMs.p50)}, p99 ${ms(report.pressToArrivalMs.p99)}, max ${ms(report.pressToArrivalMs.max)}`)
  say(`  press to receipt          p50 ${ms(report.pressToReceiptMs.p50)}, p99 ${ms(report.pressToReceiptMs.p99)}, max ${ms(report.pressToReceiptMs.max)} (the terminal shows received)`)
  say(`  lower-class events        ${report.lowerClassDelivered}/${report.lowerClassPressed} delivered${lowerMissing.length ? ` (missing: ${lowerMissing.slice(0, 20).join(', ')}${lowerMissing.length > 20 ? ', ...' : ''})` : ''}`)
  say(`  gateway restarts          ${restarts} by SIGKILL; ${unexpectedExits} exits by itself`)
  say(`  gateway RSS               max ${mb(rss.maxKb)}, last ${mb(rss.lastKb)} (${rss.samples} samples, every 5 s)`)
  say(`  console payload errors    ${consoleErrors}`)
  if (report.held) {
    say(`\nPROMISE HELD: every one of ${report.alarms} alarms reached the console once, in order, and its terminal shows it received.`)
  } else {
    say(`\nPROMISE BROKEN (${violations.length}):`)
    for (const v of violations.slice(0, 50)) say(`  ${v.id ?? '-'}: ${v.what}`)
    if (violations.length > 50) say(`  ... ${violations.length - 50} more in ${join(dir, 'report.json')}`)
    say(`alarms that failed: ${report.failedAlarms.join(' ') || '(none: see above)'}`)
  }
  run.held = report.held
  return report.held ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`soak: ${e?.stack ?? e}`)
    process.exit(1)
  },
)
