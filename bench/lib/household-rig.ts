/**
 * A center household at normal load, for the footprint and disk benchmarks: the one loop
 * harness (loop/loop.ts) with mosquitto as the platform's broker, the operator console
 * (receipts, and optionally acknowledgement, dispatch and resolution) as the platform, the
 * real gateway as a child process, and several terminals on one RS-485-like line (one
 * socat pty pair). The gateway runs exactly as on a board, with its default settings
 * unless a benchmark adds flags.
 *
 * The terminals share the line as `multidrop` (loop/line.ts): every byte from the gateway
 * reaches every terminal (each keeps the frames addressed to it), and their frames go out
 * one after another, paced at the baud rate as a UART sends them.
 */

import { join } from 'node:path'
import mqtt from 'mqtt'
import type { GatewayProcess } from '../../device-sim/gateway-process.js'
import type { MosquittoBroker } from '../../device-sim/mosquitto.js'
import type { TerminalDevice } from '../../device-sim/terminal.js'
import { waitUntil } from '../../device-sim/wait.js'
import { DEFAULTS } from '../../gateway/config.js'
import type { WriteStats } from '../../gateway/store.js'
import { alertId } from '../../loop/delivery.js'
import { Loop } from '../../loop/loop.js'
import type { AckMode, ConsoleEvent, OperatorConsole } from '../../platform/index.js'
import type { EventKind, Stage } from '../../protocol/messages.js'
import { CLASS_OF, decodePayload, gatewayTopics } from '../../protocol/mqtt.js'

/**
 * Normal load of one center household, from the product's defaults (gateway/config-schema.ts,
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
  /** The command that runs `steppelink` instead of this node on dist/ (an installed bundle's runtime and program); nodeFlags then unused. */
  launcher?: readonly string[]
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
  readonly loop: Loop
  gateway: GatewayProcess | null = null
  /** Date.now() when the terminals were switched on: their first HEARTBEAT comes one interval later. */
  terminalsOnAt = 0
  readonly dataDir: string
  /** What a benchmark added to the household, undone at close before the loop. */
  readonly #undo: (() => unknown)[] = []
  #first: GatewayStart | null = null
  /** gatewayStatus()'s subscriber to the status topic, and what it received. */
  #statusReader: { client: mqtt.MqttClient; received: { writes: WriteStats; receivedAt: number }[] } | null = null

  constructor(readonly options: HouseholdOptions) {
    this.dataDir = join(options.dir, 'gateway')
    this.loop = new Loop({
      dataDir: this.dataDir,
      broker: 'mosquitto',
      persistence: false,
      console: {
        ack: options.ack ?? 'none',
        id: `household-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
        ...(options.dispatchAfterS !== undefined ? { dispatchAfterS: options.dispatchAfterS } : {}),
        ...(options.resolveAfterS !== undefined ? { resolveAfterS: options.resolveAfterS } : {}),
      },
      gatewayId: GATEWAY_ID,
      logLevel: 'info',
      ...(options.gatewayArgs ? { gatewayArgs: options.gatewayArgs } : {}),
      ...(options.gatewayEnv ? { gatewayEnv: options.gatewayEnv } : {}),
      ...(options.nodeFlags ? { nodeArgs: options.nodeFlags } : {}),
      ...(options.launcher ? { gatewayOutput: { launcher: options.launcher } } : {}),
      terminals: options.terminals ?? NORMAL_LOAD.terminals,
      terminalId: (address) => `SL-T-H${address}`,
      line: 'multidrop',
      serial: { pace: true },
      // The terminals are switched on once the platform has the gateway's birth.
      beforeTerminals: async () => {
        this.#first = await this.#started(0)
      },
    })
  }

  get broker(): MosquittoBroker {
    return this.loop.broker as MosquittoBroker
  }

  get console(): OperatorConsole {
    return this.loop.console
  }

  get events(): readonly ConsoleEvent[] {
    return this.loop.events
  }

  get terminals(): TerminalDevice[] {
    return this.loop.terminals.map((t) => t.device)
  }

  terminalId(index: number): string {
    return this.loop.terminals[index]!.id
  }

  /** Broker, console, line, gateway, terminals; resolves once every terminal has a session. */
  async start(): Promise<GatewayStart> {
    await this.loop.start()
    this.gateway = this.loop.gateway
    this.terminalsOnAt = this.loop.terminals[0]?.startedAt ?? Date.now()
    return this.#first!
  }

  /** Spawns the gateway (after the one before, if any, has exited) and times its start. */
  async startGateway(): Promise<GatewayStart> {
    const births = this.births().length
    this.gateway = await this.loop.startGateway()
    return this.#started(births)
  }

  /** The start of the gateway now running, once the birth of its session (the `births`-th) reached the console. */
  async #started(births: number): Promise<GatewayStart> {
    await waitUntil(() => this.births().length > births, { timeoutMs: 15_000, what: 'the birth of the new session at the console' })
    const g = this.loop.gateway
    return { gateway: g, pid: g.child.pid!, spawnedAt: this.loop.gatewaySpawnedAt, readyAt: this.loop.gatewayReadyAt, birthAt: this.births()[births]!.receivedAt }
  }

  /** Clean stop (SIGTERM: death message, store closed), as systemd stops it. */
  async stopGateway(): Promise<void> {
    if (this.gateway) await this.loop.stopGateway('SIGTERM')
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
    await this.loop.sendStatusRequest()
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
      const client = await mqtt.connectAsync(this.broker.url, {
        ...this.loop.platformCredentials,
        clientId: `household-reader-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
        clean: true,
        reconnectPeriod: 0,
      })
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
    await this.loop.waitForSessions(timeoutMs)
  }

  press(terminal: number, kind: EventKind): Pressed {
    const number = this.loop.press(terminal, kind)
    return { terminal, number, id: alertId(this.terminalId(terminal), number), kind }
  }

  /**
   * Every pressed event is at the console, and the delivery promise holds for every alarm
   * of the household (loop/delivery.ts), each shown `alarmStage` or later: throws if not.
   */
  async waitForDelivery(pressed: readonly Pressed[], alarmStage: Stage, timeoutMs = 60_000): Promise<void> {
    // Calls for help and trouble reach the console as events; the promise is the alarms'.
    const others = pressed.filter((p) => CLASS_OF[p.kind] !== 'alarm')
    const missing = () => {
      const seen = new Set(this.events.filter((e) => e.type === 'event').map((e) => e.id))
      return others.filter((p) => !seen.has(p.id)).map((p) => p.id)
    }
    await waitUntil(() => missing().length === 0, { timeoutMs, intervalMs: 20, what: () => `${others.length} events at the console; missing: ${missing().join(' ')}` })
    await this.loop.expectEveryAlarmDelivered({ timeoutMs, stage: alarmStage })
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
    await this.loop.close()
  }
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
