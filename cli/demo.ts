/**
 * The whole alarm loop on one machine, for `npm start` and `steppelink demo`: an embedded
 * MQTT broker (aedes) on a free loopback port, the gateway (the real one, in this process),
 * a simulated terminal on one end of a socat pseudo-terminal pair with the gateway on the
 * other, the operator console, and optionally a weak link between gateway and broker.
 *
 * It prints a timeline of an alarm, with milliseconds since the press: pressed, stored,
 * sent, received by the platform, acknowledged, dispatched, resolved; and stays
 * interactive, or with `once` returns 0 at `resolved` (1 with the reason if a stage is
 * not reached in time).
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, PASSWORD_ENV } from '../gateway/config.js'
import { pinPath } from '../gateway/household/web/secrets.js'
import { createLogger } from '../gateway/log.js'
import type { Gateway } from '../gateway/gateway.js'
import { runGateway } from '../gateway/main.js'
import { writeKeyPair } from './keygen-command.js'
import type { OpenPort } from '../io/serial-line.js'
import { startConsole, type ConsoleEvent, type OperatorConsole } from '../platform/index.js'
import { PROGRESS } from '../protocol/lifecycle.js'
import { DEFAULT_TOPIC_PREFIX } from '../protocol/mqtt.js'
import { contactIdOf, type EventKind } from '../protocol/messages.js'
import { brokerAcl, credentialsOf, startAedes } from '../device-sim/broker.js'
import { memorySerialPair } from '../device-sim/memory-serial.js'
import { openPtyPair, type PtyPair } from '../device-sim/pty.js'
import { runOnSerial, type RunningTerminal } from '../device-sim/serial-runner.js'
import { requireTool } from '../device-sim/system-tools.js'
import { TerminalDevice, fileMemory } from '../device-sim/terminal.js'
import { holdsWithin } from '../device-sim/wait.js'
import { startWeakLink, type ProfileName, type WeakLink } from '../device-sim/weak-link.js'

export interface DemoOptions {
  /** Serial line rate, baud. Default 9600. */
  baud?: number
  /** A weak link between the gateway and the broker, by profile; null: none. */
  link?: ProfileName | null
  /** Run one alarm to `resolved` and return. */
  once?: boolean
  /** Longest wait for the whole alarm, s. Default 60. */
  timeoutS?: number
  /** The operator console dispatches help this long after acknowledging, s. Default 2. */
  dispatchAfterS?: number
  /** ... and resolves the case this long after acknowledging, s. Default 5. */
  resolveAfterS?: number
  /** Use an in-memory serial line even if socat is installed. */
  memorySerial?: boolean
  /** Where the timeline goes, one line per call. */
  out: (line: string) => void
  /** Keys in interactive mode (one per item); null: no interaction. */
  keys?: AsyncIterable<string> | null
  /** The household page's port on 127.0.0.1; 0 (the default): a free one. */
  pagePort?: number
}

const TERMINAL_ID = 'SL-T-DEMO'
const GATEWAY_ID = 'gw-demo'
const KIND_KEYS: Record<string, EventKind> = { e: 'emergency', f: 'fire', m: 'medical', p: 'panic', h: 'callback', c: 'cancel' }

/** The stages an alarm must reach, in order, for the demo to succeed. */
export const DEMO_STAGES = ['pressed', ...PROGRESS] as const
export type DemoStage = (typeof DEMO_STAGES)[number]

export async function runDemo(o: DemoOptions): Promise<number> {
  const baud = o.baud ?? 9600
  const timeoutMs = (o.timeoutS ?? 60) * 1000
  const dir = mkdtempSync(join(tmpdir(), 'steppelink-demo-'))
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })]
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c()
      } catch {
        // Best effort: the demo is ending anyway.
      }
    }
  }

  /** Per alarm number: the press time and the stages reached (ms since the press). */
  const alarms = new Map<number, { kind: EventKind; at: number; reached: Map<DemoStage, number> }>()
  const say = (n: number | null, who: string, text: string) => {
    const t = n !== null ? alarms.get(n) : undefined
    const ms = t ? `${String(Math.round(Date.now() - t.at)).padStart(6)} ms` : '         '
    o.out(`${ms}  ${who.padEnd(8)}  ${text}`)
  }
  const reach = (n: number, stage: DemoStage, who: string, text: string) => {
    const a = alarms.get(n)
    if (!a || a.reached.has(stage)) return
    a.reached.set(stage, Date.now() - a.at)
    say(n, who, text)
  }
  /** Relays made with the `r` key: when, and the stages already shown. */
  const relays = new Map<string, { at: number; shown: Set<string> }>()
  const showRelays = (g: Gateway) => {
    for (const a of g.household.snapshot().alerts) {
      const r = relays.get(a.id)
      for (const s of r ? a.stages : []) {
        if (r!.shown.has(s.stage)) continue
        r!.shown.add(s.stage)
        o.out(`${String(Math.round(Date.now() - r!.at)).padStart(6)} ms  ${'household'.padEnd(8)}  relay ${a.id}: ${s.stage}${s.text ? ` (${s.text})` : ''}`)
      }
    }
  }
  /** Relays a medical alarm for a neighbour, as the household page does (issue 13); returns its id, or null. */
  const relayForNeighbour = (g: Gateway): string | null => {
    const at = Date.now()
    const r = g.household.relay({ what: 'medical', forName: '巴图家', where: '3号井冬营地', text: '老人从马上摔下 (an old man fell from his horse)', by: 'demo' }, `demo-${at}`)
    if (!r.ok) {
      say(null, 'household', `relay NOT saved: ${r.message}`)
      return null
    }
    relays.set(r.id, { at, shown: new Set() })
    say(null, 'household', `relayed a medical alarm for neighbour 巴图家: ${r.id}`)
    showRelays(g)
    return r.id
  }
  const numberOf = (id: string | null | undefined) => {
    const m = id?.startsWith(`${TERMINAL_ID}:`) ? Number(id.slice(TERMINAL_ID.length + 1)) : NaN
    return Number.isInteger(m) ? m : null
  }

  try {
    // The platform's broker, with the topic permissions of a real deployment [MQTT-2.7]-[MQTT-2.10]:
    // the gateway and the console log in, each may touch only its own topics, and what the
    // broker refuses is shown on the timeline. The weak link in front of it.
    const acl = brokerAcl(DEFAULT_TOPIC_PREFIX, { platform: ['platform'], gateways: [{ id: GATEWAY_ID, area: null }] }, (what) => say(null, 'broker', `refused: ${what}`))
    const broker = await startAedes({ acl })
    cleanups.push(() => broker.close())
    let gatewayBroker = broker.url
    let weak: WeakLink | null = null
    if (o.link && o.link !== 'perfect') {
      weak = await startWeakLink({ target: { port: broker.port }, profile: o.link })
      cleanups.push(() => weak!.stop())
      gatewayBroker = `mqtt://127.0.0.1:${weak.port}`
    }

    // The serial cable: a real pseudo-terminal pair, or a wire in memory without socat.
    let gatewayPath = join(dir, 'gateway-serial')
    let terminalPath = join(dir, 'terminal-serial')
    let gatewayPort: OpenPort | undefined
    let terminalPort: OpenPort | undefined
    let serialNote: string
    let socatMissing: string | null = null
    if (!o.memorySerial) {
      try {
        requireTool('socat')
      } catch (e) {
        socatMissing = (e as Error).message
      }
    }
    if (!o.memorySerial && socatMissing === null) {
      const pty: PtyPair = await openPtyPair()
      cleanups.push(() => pty.close())
      gatewayPath = pty.a
      terminalPath = pty.b
      serialNote = `a pseudo-terminal pair (socat): gateway ${pty.a}, terminal ${pty.b}`
    } else {
      ;[gatewayPort, terminalPort] = memorySerialPair()
      serialNote = 'a serial line in memory'
      if (socatMissing) o.out(`socat is not installed, so the serial line runs in memory. For a real pseudo-terminal pair: sudo ${socatMissing}`)
    }

    // The operator console: receipts, then acknowledge, dispatch and resolve by itself.
    const onConsole = (e: ConsoleEvent) => {
      if (e.type === 'alert' && !e.duplicate) {
        const n = numberOf(e.id)
        if (n !== null) reach(n, 'received', 'platform', `alarm ${e.id} arrived (${e.kind}, Contact ID ${e.code}); receipt sent to the gateway`)
      } else if (e.type === 'command-sent') {
        const n = numberOf(e.alert)
        if (n === null) return
        if (e.kind === 'acknowledged') reach(n, 'acknowledged', 'platform', `operator acknowledged it`)
        if (e.kind === 'dispatched') reach(n, 'dispatched', 'platform', `help dispatched`)
        if (e.kind === 'resolved') reach(n, 'resolved', 'platform', `case resolved`)
      } else if (e.type === 'event' && !e.duplicate && e.class === 'trouble') {
        say(null, 'platform', `trouble from ${e.terminal ?? e.gateway}: ${e.kind}`)
      }
    }
    // Signed commands [MQTT-5.12]: a key pair of the demo's own; the console signs with the
    // private key, and the gateway takes only commands signed with it.
    const keys = writeKeyPair(join(dir, 'keys'))
    const console_: OperatorConsole = await startConsole({
      broker: broker.url,
      signingKey: keys.privatePath,
      id: `demo-${process.pid}`,
      ...credentialsOf(acl, 'platform'),
      ack: 'auto',
      dispatchAfterS: o.dispatchAfterS ?? 2,
      resolveAfterS: o.resolveAfterS ?? 5,
      onEvent: onConsole,
    })
    cleanups.push(() => console_.close())

    // The gateway: the real one, its JSON log lines read for the timeline.
    const loaded = loadConfig(
      [
        ...[
          '--serial',
          gatewayPath,
          '--broker',
          gatewayBroker,
          '--id',
          GATEWAY_ID,
          '--username',
          GATEWAY_ID,
          '--data',
          join(dir, 'gateway'),
          '--baud',
          String(baud),
          '--platform-key',
          keys.publicPath,
        ],
        // The household page on this machine only.
        ...['--household-listen', '127.0.0.1', '--household-port', String(o.pagePort ?? 0)],
      ],
      {
        [PASSWORD_ENV]: credentialsOf(acl, GATEWAY_ID).password,
      },
    )
    if (!loaded.ok) throw new Error(`demo config: ${loaded.errors.join('; ')}`)
    const stop = new AbortController()
    let gatewayReady = false
    let pageUrl: string | null = null
    let pageProblem: string | null = null
    const log = createLogger('info', {
      write: (line: string) => {
        let l: { msg?: string; id?: string; level?: string; url?: string }
        try {
          l = JSON.parse(line) as typeof l
        } catch {
          return
        }
        const n = numberOf(l.id)
        if (l.msg === 'gateway ready') gatewayReady = true
        if (l.msg?.startsWith('household page on ') && typeof l.url === 'string') pageUrl = l.url
        else if (l.msg?.startsWith('household page') && (l.level === 'warn' || l.level === 'error')) pageProblem = l.msg
        if (n !== null && l.msg === 'ALARM stored') reach(n, 'stored', 'gateway', 'stored on disk (SQLite, fsync) before acknowledging the terminal')
        if (n !== null && l.msg === 'alarm published') reach(n, 'sent', 'gateway', "published to the platform's broker (PUBACK)")
        if (l.level === 'error') say(null, 'gateway', `error: ${l.msg}`)
      },
    })
    const core: { gateway: Gateway | null } = { gateway: null }
    const gatewayDone = runGateway(loaded.config, log, {
      signal: stop.signal,
      // The demo's gateway is not the service, even when the demo runs under systemd.
      env: {},
      ...(gatewayPort ? { openPort: gatewayPort } : {}),
      onGateway: (g) => {
        core.gateway = g
        // A relay's stages on the timeline, as the household page shows them (issue 13).
        g.household.subscribe(() => showRelays(g))
      },
    })
    cleanups.push(async () => {
      stop.abort()
      await gatewayDone
    })

    // The terminal, on the other end of the cable.
    const device = new TerminalDevice({
      address: 1,
      terminal: TERMINAL_ID,
      memory: fileMemory(join(dir, 'terminal-nv.json')),
      baud,
      now: Date.now(),
      onUpdate: (u) => {
        if (u.kind === 'display') say(null, 'terminal', `display (${u.urgency}): ${u.text}`)
        if (u.kind === 'link') say(null, 'terminal', u.up ? 'link to the gateway up' : 'gateway not answering')
        if (u.kind !== 'stage' || u.stage === 'saved') return
        const extra = [u.text, u.eta !== undefined ? `ETA ${u.eta} min` : undefined].filter(Boolean).join(', ')
        say(u.event, 'terminal', `shows: ${u.stage}${extra ? ` (${extra})` : ''}`)
      },
    })
    const running: RunningTerminal = runOnSerial(device, { path: terminalPath, baud, pace: true, ...(terminalPort ? { openPort: terminalPort } : {}) })
    cleanups.push(() => running.stop())

    o.out(`Steppelink demo: the whole alarm loop on this machine.`)
    o.out(`  broker   aedes on ${broker.url}${weak ? `, reached by the gateway through a ${o.link} link (${gatewayBroker})` : ''}`)
    o.out(`           with the topic permissions of MQTT.md [MQTT-2.8]: user ${GATEWAY_ID} and user platform, each with a password`)
    o.out(`  gateway  ${GATEWAY_ID}, store in ${join(dir, 'gateway')}`)
    o.out(`  serial   ${serialNote}, ${baud} baud`)
    o.out(`  commands signed by the console with key ${keys.keyId}; the gateway takes no others`)
    o.out(`  terminal ${TERMINAL_ID}; console: acknowledges at once, dispatches after ${o.dispatchAfterS ?? 2} s, resolves after ${o.resolveAfterS ?? 5} s`)

    if (!(await holdsWithin(() => gatewayReady && device.link.status.state === 'open' && console_.connected, { timeoutMs: 20_000, intervalMs: 20 }))) {
      o.out(`demo failed: the loop did not come up in 20 s (gateway ready: ${gatewayReady}, terminal session: ${device.link.status.state}, console connected: ${console_.connected})`)
      return 1
    }
    // The household page starts after the alarm path, without holding it up.
    await holdsWithin(() => pageUrl !== null || pageProblem !== null, { timeoutMs: 3_000, intervalMs: 20 })
    if (pageUrl !== null) {
      let pin = '(see household-pin in the data directory)'
      try {
        pin = readFileSync(pinPath(join(dir, 'gateway')), 'utf8').trim()
      } catch {
        // Said in the line above instead.
      }
      o.out(`  page     ${pageUrl}  PIN ${pin}  (the center household's page: status, alerts, relay, inbox)`)
    } else o.out(`  page     off: ${pageProblem ?? "it did not start within 3 s (the gateway's log says why)"}`)
    o.out('')

    const press = (kind: EventKind) => {
      const at = Date.now()
      const e = device.press(kind)
      running.wake()
      alarms.set(e.number, { kind, at, reached: new Map([['pressed', 0]]) })
      say(e.number, 'terminal', `button pressed: alarm #${e.number} (${kind}, Contact ID ${contactIdOf(kind) ?? 'none'}), saved in the terminal's memory`)
      return e.number
    }

    const first = press('emergency')
    const done = await holdsWithin(() => alarms.get(first)!.reached.has('resolved') && device.stages.get(first) === 'resolved', { timeoutMs, intervalMs: 20 })
    const reached = alarms.get(first)!.reached
    if (!done) {
      const missing = DEMO_STAGES.filter((s) => !reached.has(s))
      o.out(`\ndemo failed: alarm #${first} did not reach ${missing.join(', ')} within ${timeoutMs / 1000} s; the terminal shows ${device.stages.get(first)}.`)
      return 1
    }
    o.out(`\nalarm #${first}: ${DEMO_STAGES.map((s) => `${s} ${reached.get(s) ?? '-'} ms`).join(', ')}`)
    if (o.once || !o.keys) return 0

    o.out(`\nInteractive. Keys: e emergency, f fire, m medical, p panic, h hotline call-back, c cancel,`)
    o.out(`b broadcast a storm warning, r relay an alarm for a neighbour (the household page's relay), u unplug the terminal's cable for 5 s${weak ? ', s stall the uplink for 20 s' : ''}, q quit.`)
    for await (const key of o.keys) {
      const k = key.trim().toLowerCase()
      if (k === 'q') break
      const kind = KIND_KEYS[k]
      if (kind) press(kind)
      else if (k === 'b') {
        await console_.broadcast('all', '白灾预警：今夜暴雪，请把牲畜赶回棚圈。Storm warning: bring the herds in tonight.', 'urgent', 3600)
        say(null, 'platform', 'broadcast a storm warning to every gateway')
      } else if (k === 'r' && core.gateway !== null) {
        relayForNeighbour(core.gateway)
      } else if (k === 'u') {
        running.unplug(5_000)
        say(null, 'terminal', 'cable unplugged for 5 s')
      } else if (k === 's' && weak) {
        weak.blackout(20_000)
        say(null, 'link', 'uplink stalled for 20 s (bytes stop, no FIN)')
      } else if (k !== '') o.out(`unknown key '${k}'`)
    }
    return 0
  } finally {
    await cleanup()
  }
}
