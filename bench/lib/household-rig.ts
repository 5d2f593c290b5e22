/**
 * A center household at normal load, for the footprint and disk benchmarks: mosquitto as
 * the platform's broker, the operator console (receipts, and optionally acknowledgement,
 * dispatch and resolution) as the platform, the real gateway as a child process, and
 * several terminals on one RS-485-like line (one socat pty pair). The gateway runs exactly
 * as on a board, with its default settings unless a benchmark adds flags.
 *
 * The terminals share one opening of the line through MultiDrop: every byte from the
 * gateway reaches every terminal (each keeps the frames addressed to it), and their frames
 * go out one after another, paced at the baud rate as a UART sends them.
 */

import { join } from 'node:path'
import mqtt from 'mqtt'
import { startConsole, type AckMode, type ConsoleEvent, type OperatorConsole } from '../../platform/index.js'
import { startGateway, type GatewayProcess } from '../../device-sim/gateway-process.js'
import { startMosquitto, type MosquittoBroker } from '../../device-sim/mosquitto.js'
import { openPtyPair, type PtyPair } from '../../device-sim/pty.js'
import { runOnSerial, type RunningTerminal, type SerialDevice } from '../../device-sim/serial-runner.js'
import { ALARM_KINDS, TerminalDevice, ramMemory } from '../../device-sim/terminal.js'
import { waitUntil } from '../../device-sim/wait.js'
import { DEFAULTS } from '../../gateway/config.js'
import type { WriteStats } from '../../gateway/store.js'
import { reached } from '../../protocol/lifecycle.js'
import type { EventKind, Stage } from '../../protocol/messages.js'
import { decodePayload, gatewayTopics } from '../../protocol/mqtt.js'

/**
 * Normal load of one center household, from the product's defaults (gateway/config.ts,
 * protocol/messages.ts) and the field reports (shared/CONTEXT.md): a few terminals on the
 * line heartbeating at the default interval, status published at the default interval,
 * and a day's handful of presses.
 */
export const NORMAL_LOAD = {
  /** Terminals on the line: the center household's own and a few wired neighbours. */
  terminals: 4,
  /** s, timing.heartbeat (DEFAULT_HEARTBEAT_S): what the gateway sends the terminals in CONFIG. */
  heartbeatS: DEFAULTS.timing.heartbeat,
  /** s, timing.statusInterval: terminal statuses are published this often. */
  statusIntervalS: DEFAULTS.timing.statusInterval,
  /**
   * Per day: alarms, each acknowledged, dispatched and resolved by the operator. More than
   * a household presses on most days: an upper bound for the disk, not an average.
   */
  alarmsPerDay: 4,
  /** Per day: hotline call-back requests (the request class), each acknowledged and resolved. */
  requestsPerDay: 12,
  /**
   * Per day: power cuts. Every terminal on the line is on the same mains, so each cut is
   * a mains-lost from every terminal at once, and a mains-restored from every one when it
   * ends (trouble class).
   */
  powerCutsPerDay: 2,
  /** Per day: one terminal's battery runs low during a cut and recovers (battery-low, battery-restored). */
  batteryLowPerDay: 1,
  /** Per terminal per day: the periodic test report (status class). */
  testsPerTerminalPerDay: 1,
} as const

export const SECONDS_PER_DAY = 86_400

/** Several terminals on one line: the gateway's bytes reach all, their frames go out in turn. */
export class MultiDrop implements SerialDevice {
  constructor(readonly devices: readonly SerialDevice[]) {}

  receive(bytes: Uint8Array, now: number): void {
    for (const d of this.devices) d.receive(bytes.slice(), now)
  }

  /** Whole frames of each terminal in turn, so no two frames interleave on the line. */
  transmit(): Uint8Array | null {
    const parts: Uint8Array[] = []
    for (const d of this.devices) {
      const out = d.transmit()
      if (out !== null) parts.push(out)
    }
    if (parts.length === 0) return null
    return parts.length === 1 ? parts[0]! : new Uint8Array(Buffer.concat(parts))
  }

  tick(now: number): number | null {
    let next: number | null = null
    for (const d of this.devices) {
      const t = d.tick(now)
      if (t !== null && (next === null || t < next)) next = t
    }
    return next
  }
}

export interface HouseholdOptions {
  /** Scratch directory; the gateway's store goes under it. */
  dir: string
  /** Terminals on the line. Default NORMAL_LOAD.terminals. */
  terminals?: number
  /** Extra gateway flags (defaults otherwise). */
  gatewayArgs?: string[]
  /** Extra environment of the gateway process (NODE_OPTIONS for experiments). */
  gatewayEnv?: NodeJS.ProcessEnv
  /** Flags for node itself, before the script (V8 flags such as --lite-mode). */
  nodeFlags?: readonly string[]
  /** What the console does with an alarm besides its receipt. Default 'none'. */
  ack?: AckMode
  /** With ack 'auto': dispatch and resolve this long after the acknowledgement, s. */
  dispatchAfterS?: number
  resolveAfterS?: number
}

/** One start of the gateway process, timed from spawn (Date.now() in this process). */
export interface GatewayStart {
  gateway: GatewayProcess
  pid: number
  spawnedAt: number
  /** The log line "gateway ready" reached this process. */
  readyAt: number
  /** The birth of this start's session reached the console (through the broker). */
  birthAt: number
}

export interface Pressed {
  terminal: number
  number: number
  /** `<terminal id>:<number>`, the alert id on the platform. */
  id: string
  kind: EventKind
}

export const GATEWAY_ID = 'gw-household'

export class Household {
  readonly events: ConsoleEvent[] = []
  readonly terminals: TerminalDevice[] = []
  broker!: MosquittoBroker
  console!: OperatorConsole
  pty!: PtyPair
  running: RunningTerminal | null = null
  gateway: GatewayProcess | null = null
  /** Date.now() when the terminals were switched on: their first HEARTBEAT comes one interval later. */
  terminalsOnAt = 0
  readonly dataDir: string
  readonly #undo: (() => unknown)[] = []
  /** gatewayStatus()'s subscriber to the status topic, and what it received. */
  #statusReader: { client: mqtt.MqttClient; received: { writes: WriteStats; receivedAt: number }[] } | null = null

  constructor(readonly options: HouseholdOptions) {
    this.dataDir = join(options.dir, 'gateway')
  }

  terminalId(index: number): string {
    return `SL-T-H${index + 1}`
  }

  /** Broker, console, line, gateway, terminals; resolves once every terminal has a session. */
  async start(): Promise<GatewayStart> {
    this.broker = await startMosquitto({ persistence: false })
    this.#undo.push(() => this.broker.close())
    this.console = await startConsole({
      broker: this.broker.url,
      id: `household-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
      ack: this.options.ack ?? 'none',
      ...(this.options.dispatchAfterS !== undefined ? { dispatchAfterS: this.options.dispatchAfterS } : {}),
      ...(this.options.resolveAfterS !== undefined ? { resolveAfterS: this.options.resolveAfterS } : {}),
      reconnectS: 0.2,
      onEvent: (e) => this.events.push(e),
    })
    this.#undo.push(() => this.console.close())
    this.pty = await openPtyPair()
    this.#undo.push(() => this.pty.close())
    const started = await this.startGateway()
    const now = Date.now()
    this.terminalsOnAt = now
    for (let i = 0; i < (this.options.terminals ?? NORMAL_LOAD.terminals); i++) {
      this.terminals.push(new TerminalDevice({ address: i + 1, terminal: this.terminalId(i), memory: ramMemory(), now }))
    }
    const running = runOnSerial(new MultiDrop(this.terminals), { path: this.pty.b, pace: true })
    this.running = running
    this.#undo.push(() => running.stop())
    await this.waitForSessions()
    return started
  }

  /** Spawns the gateway (after the one before, if any, has exited) and times its start. */
  async startGateway(): Promise<GatewayStart> {
    const births = this.births().length
    const args = ['--serial', this.pty.a, '--broker', this.broker.url, '--id', GATEWAY_ID, '--data', this.dataDir, ...(this.options.gatewayArgs ?? [])]
    const spawnedAt = Date.now()
    const g = startGateway(args, this.options.gatewayEnv ?? {}, this.options.nodeFlags ?? [])
    this.gateway = g
    this.#undo.push(() => g.kill('SIGKILL'))
    await g.waitForLog((l) => l.msg === 'gateway ready', 'ready')
    const readyAt = Date.now()
    await waitUntil(() => this.births().length > births, { timeoutMs: 15_000, what: 'the birth of the new session at the console' })
    return { gateway: g, pid: g.child.pid!, spawnedAt, readyAt, birthAt: this.births()[births]!.receivedAt }
  }

  /** Clean stop (SIGTERM: death message, store closed), as systemd stops it. */
  async stopGateway(): Promise<void> {
    await this.gateway?.kill('SIGTERM')
    this.gateway = null
  }

  /** Stops the gateway cleanly and starts it again on the same store, as a reboot of the board does. */
  async restartGateway(): Promise<GatewayStart> {
    await this.stopGateway()
    return this.startGateway()
  }

  births(): ConsoleEvent[] {
    return this.events.filter((e) => e.type === 'state' && e.kind === 'birth' && e.gateway === GATEWAY_ID && !e.stale)
  }

  /** Terminal statuses ([MQTT-3.4]) of this gateway that reached the console. */
  terminalStatuses(): number {
    return this.events.filter((e) => e.type === 'status' && e.scope === 'terminal' && e.gateway === GATEWAY_ID).length
  }

  /**
   * Asks the gateway for its status now, as the platform may ([MQTT-5.10]): the terminal
   * statuses folded since the last publication go out as they do every status interval.
   * Resolves once `statuses` more of them have reached the console.
   */
  async requestStatus(statuses: number, timeoutMs = 15_000): Promise<void> {
    const before = this.terminalStatuses()
    const tag = `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`
    const client = await mqtt.connectAsync(this.broker.url, { clientId: `household-status-${tag}`, clean: true, reconnectPeriod: 0 })
    try {
      const command = { v: 1, id: `status-${tag}`, type: 'status-request' }
      await client.publishAsync(gatewayTopics(this.console.prefix, GATEWAY_ID).command, JSON.stringify(command), { qos: 1 })
    } finally {
      await client.endAsync()
    }
    await waitUntil(() => this.terminalStatuses() >= before + statuses, { timeoutMs, what: `${statuses} terminal statuses at the console` })
  }

  /**
   * The gateway's own status ([MQTT-3.7]) as it is now: a status-request, then the next
   * status the gateway publishes. Its `store.writes` are the commits at the moment the
   * command arrived: the gateway builds the payload before it publishes the terminal
   * statuses the same request makes due (those go out after it, and count in the next
   * reading).
   */
  async gatewayStatus(timeoutMs = 15_000): Promise<{ writes: WriteStats; receivedAt: number }> {
    const topics = gatewayTopics(this.console.prefix, GATEWAY_ID)
    if (this.#statusReader === null) {
      const client = await mqtt.connectAsync(this.broker.url, { clientId: `household-reader-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, clean: true, reconnectPeriod: 0 })
      this.#undo.push(() => client.endAsync(true))
      const reader = { client, received: [] as { writes: WriteStats; receivedAt: number }[] }
      client.on('message', (_topic, payload, packet) => {
        if (packet.retain || payload.length === 0) return // the retained copy is the last one, not an answer
        const status = decodePayload(payload) as { store?: { writes?: WriteStats } }
        if (status.store?.writes !== undefined) reader.received.push({ writes: status.store.writes, receivedAt: Date.now() })
      })
      await client.subscribeAsync(topics.status, { qos: 1 })
      this.#statusReader = reader
    }
    const reader = this.#statusReader
    const before = reader.received.length
    const tag = `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`
    await reader.client.publishAsync(topics.command, JSON.stringify({ v: 1, id: `status-${tag}`, type: 'status-request' }), { qos: 1 })
    await waitUntil(() => reader.received.length > before, { timeoutMs, intervalMs: 5, what: 'the gateway status after a status-request' })
    return reader.received[before]!
  }

  async waitForSessions(timeoutMs = 20_000): Promise<void> {
    await waitUntil(() => this.terminals.every((t) => t.link.status.state === 'open'), { timeoutMs, what: 'every terminal session open' })
  }

  press(terminal: number, kind: EventKind): Pressed {
    const device = this.terminals[terminal]!
    const e = device.press(kind)
    this.running?.wake()
    return { terminal, number: e.number, id: `${this.terminalId(terminal)}:${e.number}`, kind }
  }

  /** Every pressed event is at the console, and each terminal shows `alarmStage` or later for its alarms. */
  async waitForDelivery(pressed: readonly Pressed[], alarmStage: Stage, timeoutMs = 60_000): Promise<void> {
    const atConsole = () => new Set(this.events.filter((e) => e.type === 'alert' || e.type === 'event').map((e) => e.id))
    await waitUntil(
      () => {
        const seen = atConsole()
        return pressed.every((p) => seen.has(p.id) && (!isAlarm(p.kind) || reached(this.terminals[p.terminal]!.stages.get(p.number), alarmStage)))
      },
      { timeoutMs, intervalMs: 20, what: () => `delivery of ${pressed.length} events (alarms to ${alarmStage}); missing: ${pressed.filter((p) => !atConsole().has(p.id)).map((p) => p.id).join(' ')}` },
    )
    // The terminals forget an event at the gateway's ACK; nothing may be left to send.
    await waitUntil(() => this.terminals.every((t) => t.pending.length === 0), { timeoutMs: 15_000, what: 'every terminal NV memory empty' })
  }

  /** Stops everything this household started, last first, each step tried. */
  async close(): Promise<void> {
    for (let step = this.#undo.pop(); step; step = this.#undo.pop()) {
      try {
        await step()
      } catch {
        // Best effort: every other step must still run.
      }
    }
  }
}


function isAlarm(kind: EventKind): boolean {
  return ALARM_KINDS.has(kind)
}

/** Starts a household; closes what was started if the start fails. */
export async function startHousehold(options: HouseholdOptions): Promise<{ household: Household; start: GatewayStart }> {
  const household = new Household(options)
  try {
    return { household, start: await household.start() }
  } catch (e) {
    await household.close()
    throw e
  }
}
