/**
 * The whole loop for the fault suite, with real processes where the fault is real: the
 * gateway as a child process (so it can be killed), a real pseudo-terminal (socat), a real
 * broker (aedes in this process, or mosquitto as a child process), optionally the weak
 * link between them, terminals running the firmware logic, and the operator console as the
 * platform. Each scenario asserts the same promise through `expectEveryAlarmDelivered`.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'vitest'
import { startConsole, type ConsoleEvent, type OperatorConsole } from '../../device-sim/console.js'
import { runOnSerial, type RunningTerminal, type RunOnSerialOptions } from '../../device-sim/serial-runner.js'
import { TerminalDevice, ramMemory, type NvMemory } from '../../device-sim/terminal.js'
import { startWeakLink, type WeakLink, type WeakLinkOptions } from '../../device-sim/weak-link.js'
import type { EventKind, Stage } from '../../protocol/messages.js'
import { startAedes, startMosquitto, type AedesBroker, type MosquittoBroker } from '../helpers/broker.js'
import { startGateway, type GatewayProcess } from '../helpers/gateway-process.js'
import { openPtyPair, type PtyPair } from '../helpers/pty.js'
import { requireTool, waitUntil } from '../helpers/system.js'

export type BrokerKind = 'aedes' | 'mosquitto'

export interface LoopOptions {
  broker: BrokerKind
  /** mosquitto only: keep its state across a restart. Default true. */
  persistence?: boolean
  /** A weak link between gateway and broker. */
  link?: Omit<WeakLinkOptions, 'target'>
  /** Terminals on the one line, addresses 1, 2, ... Default 1. */
  terminals?: number
  /** Extra gateway flags. */
  gatewayArgs?: string[]
  /** The gateway's data directory (a small file system for the disk-full scenario). */
  dataDir?: string
  /** Options for each terminal's serial runner (noise, pacing). */
  serial?: Omit<RunOnSerialOptions, 'path'>
}

export interface Terminal {
  id: string
  device: TerminalDevice
  running: RunningTerminal
  memory: NvMemory
  /** Event numbers of the alarms pressed, in order. */
  pressed: number[]
}

export class Loop {
  readonly dir = mkdtempSync(join(tmpdir(), 'steppelink-fault-'))
  readonly dataDir: string
  broker!: AedesBroker | MosquittoBroker
  weak: WeakLink | null = null
  pty!: PtyPair
  gateway!: GatewayProcess
  console!: OperatorConsole
  readonly terminals: Terminal[] = []
  /** First arrival order of alert ids at the console, and copies per id. */
  readonly arrivals: string[] = []
  readonly copies = new Map<string, number>()
  readonly events: ConsoleEvent[] = []
  readonly #gatewaysKilled: GatewayProcess[] = []

  constructor(readonly options: LoopOptions) {
    this.dataDir = options.dataDir ?? join(this.dir, 'gateway')
  }

  get brokerUrl(): string {
    return this.broker.url
  }

  get gatewayBrokerUrl(): string {
    return this.weak ? `mqtt://127.0.0.1:${this.weak.port}` : this.broker.url
  }

  async start(): Promise<this> {
    requireTool('socat')
    if (this.options.broker === 'mosquitto') {
      requireTool('mosquitto')
      this.broker = await startMosquitto({ persistence: this.options.persistence ?? true })
    } else {
      this.broker = await startAedes()
    }
    if (this.options.link) this.weak = await startWeakLink({ ...this.options.link, target: { port: this.broker.port } })
    this.pty = await openPtyPair()
    this.console = await startConsole({
      broker: this.broker.url,
      id: `fault-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
      ack: 'none',
      reconnectS: 0.2,
      onEvent: (e) => {
        this.events.push(e)
        if (e.type !== 'alert') return
        this.copies.set(e.id, (this.copies.get(e.id) ?? 0) + 1)
        if (!e.duplicate) this.arrivals.push(e.id)
      },
    })
    await this.startGateway()
    for (let i = 1; i <= (this.options.terminals ?? 1); i++) this.addTerminal(i)
    await waitUntil(() => this.terminals.every((t) => t.device.link.status.state === 'open'), { timeoutMs: 15_000, what: 'terminal sessions' })
    return this
  }

  async startGateway(): Promise<GatewayProcess> {
    this.gateway = startGateway(['--serial', this.pty.a, '--broker', this.gatewayBrokerUrl, '--id', 'gw-fault', '--data', this.dataDir, '--log-level', 'debug', ...(this.options.gatewayArgs ?? [])])
    await this.gateway.waitForLog((l) => l.msg === 'gateway ready', 'ready')
    return this.gateway
  }

  async restartGateway(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.gateway.kill(signal)
    this.#gatewaysKilled.push(this.gateway)
    await this.startGateway()
  }

  addTerminal(address: number, memory: NvMemory = ramMemory()): Terminal {
    const id = `SL-T-F${address}`
    const device = new TerminalDevice({ address, terminal: id, memory, now: Date.now() })
    const running = runOnSerial(device, { ...this.options.serial, path: this.pty.b })
    const t: Terminal = { id, device, running, memory, pressed: this.terminals.find((x) => x.id === id)?.pressed ?? [] }
    const at = this.terminals.findIndex((x) => x.id === id)
    if (at >= 0) this.terminals[at] = t
    else this.terminals.push(t)
    return t
  }

  press(index: number, kind: EventKind = 'emergency'): number {
    const t = this.terminals[index]!
    const e = t.device.press(kind)
    t.running.wake()
    t.pressed.push(e.number)
    return e.number
  }

  /** Copies of alarms on the wire beyond the first of each id (republications, replays). */
  duplicatesOnWire(): number {
    return [...this.copies.values()].reduce((n, c) => n + c - 1, 0)
  }

  async waitForAll(timeoutMs = 60_000): Promise<void> {
    const expected = this.terminals.flatMap((t) => t.pressed.map((n) => `${t.id}:${n}`))
    await waitUntil(() => expected.every((id) => this.copies.has(id)), {
      timeoutMs,
      what: () => `every alarm at the console; missing: ${expected.filter((id) => !this.copies.has(id)).join(', ')}`,
    })
  }

  /**
   * The promise of the product: every alarm pressed reached the console, once after
   * deduplication by id, in per-terminal order, and each terminal shows `stage` (or later)
   * for each of its alarms. Returns the number of duplicates that reached the wire.
   */
  async expectEveryAlarmDelivered(opts: { timeoutMs?: number; stage?: Stage } = {}): Promise<number> {
    await this.waitForAll(opts.timeoutMs)
    const stage = opts.stage ?? 'received'
    const order: Stage[] = ['stored', 'sent', 'received', 'acknowledged', 'dispatched', 'resolved']
    await waitUntil(
      () => this.terminals.every((t) => t.pressed.every((n) => order.indexOf(t.device.stages.get(n) as Stage) >= order.indexOf(stage))),
      { timeoutMs: 30_000, what: () => `every terminal showing ${stage}: ${this.terminals.map((t) => t.pressed.map((n) => `${t.id}:${n}=${t.device.stages.get(n)}`).join(' ')).join(' ')}` },
    )
    for (const t of this.terminals) {
      const expected = t.pressed.map((n) => `${t.id}:${n}`)
      const arrived = this.arrivals.filter((id) => id.startsWith(`${t.id}:`))
      expect(new Set(arrived).size, 'each alarm once after deduplication').toBe(arrived.length)
      expect(arrived, `alarms of ${t.id} in order`).toEqual(expected)
      expect(t.device.pending, `${t.id} has nothing left unacknowledged`).toEqual([])
    }
    return this.duplicatesOnWire()
  }

  async close(): Promise<void> {
    const steps: (() => Promise<unknown> | unknown)[] = [
      ...this.terminals.map((t) => () => t.running.stop()),
      () => this.gateway?.kill('SIGKILL'),
      ...this.#gatewaysKilled.map((g) => () => g.kill('SIGKILL')),
      () => this.console?.close(),
      () => this.weak?.stop(),
      () => this.broker?.close(),
      () => this.pty?.close(),
      () => rmSync(this.dir, { recursive: true, force: true }),
    ]
    for (const s of steps) {
      try {
        await s()
      } catch {
        // Tear-down is best effort; the scenario's result is already decided.
      }
    }
  }
}

export async function startLoop(options: LoopOptions): Promise<Loop> {
  const loop = new Loop(options)
  try {
    return await loop.start()
  } catch (e) {
    await loop.close()
    throw e
  }
}
