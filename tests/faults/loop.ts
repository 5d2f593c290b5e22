/**
 * The whole loop for the fault suite, with real processes where the fault is real: the
 * gateway as a child process (so it can be killed), a real pseudo-terminal (socat), a real
 * broker (aedes in this process, or mosquitto as a child process), optionally the weak
 * link between them, terminals running the firmware logic, and the operator console as the
 * platform. Each scenario asserts the same promise through `expectEveryAlarmDelivered`.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterEach, expect, onTestFailed } from 'vitest'
import { startConsole, type ConsoleEvent, type OperatorConsole } from '../../platform/index.js'
import { runOnSerial, type RunningTerminal, type RunOnSerialOptions } from '../../device-sim/serial-runner.js'
import { TerminalDevice, ramMemory, type NvMemory } from '../../device-sim/terminal.js'
import { startWeakLink, type WeakLink, type WeakLinkOptions } from '../../device-sim/weak-link.js'
import { openSerialPort, type OpenPort, type PortLike } from '../../io/serial-line.js'
import { reached } from '../../protocol/lifecycle.js'
import type { EventKind, Stage } from '../../protocol/messages.js'
import { startAedes, startMosquitto, type AedesBroker, type MosquittoBroker } from '../helpers/broker.js'
import { startGateway, type GatewayProcess, type LogLine } from '../helpers/gateway-process.js'
import { openPtyPair, type PtyPair } from '../helpers/pty.js'
import { requireTool, waitUntil } from '../helpers/system.js'

export type BrokerKind = 'aedes' | 'mosquitto'

/** The gateway's log lines with this message, in order. */
export const logs = (l: Loop, msg: string): LogLine[] => l.gateway.logs.filter((x) => x.msg === msg)

/** Pacing in scenarios with real processes (never in unit tests, which use fake clocks). */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * The set-up every fault scenario shares, called once in its describe block: `start` starts
 * the loop for the current test; after each test the loop is closed (then `teardown` runs,
 * for what the scenario added: a platform to stop, a file system to empty). With
 * FAULT_DEBUG set, a failed test leaves the gateway's log, the console's events and the
 * weak link's actions in /tmp/fault-<name>-{gw,console,link}.log for reading.
 */
export function useLoop(name: string, teardown?: () => Promise<void> | void): { start(options: LoopOptions): Promise<Loop> } {
  let current: Loop | null = null
  afterEach(async () => {
    const l = current
    current = null
    try {
      await l?.close()
    } finally {
      await teardown?.()
    }
  })
  return {
    async start(options) {
      const l = await startLoop(options)
      current = l
      onTestFailed(() => {
        if (!process.env.FAULT_DEBUG) return
        writeFileSync(`/tmp/fault-${name}-gw.log`, l.gateway.logs.map((x) => JSON.stringify(x)).join('\n'))
        writeFileSync(`/tmp/fault-${name}-console.log`, l.events.map((x) => JSON.stringify(x)).join('\n'))
        if (l.weak) writeFileSync(`/tmp/fault-${name}-link.log`, l.weak.events.map((x) => JSON.stringify(x)).join('\n'))
      })
      return l
    },
  }
}

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
  /** With several terminals, they share one opening of the line (see sharedLine). */
  readonly #line = sharedLine()

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
      // [MQTT-2.6]: the platform's broker keeps a day of queued messages per client;
      // mosquitto's default of 1000 would drop a flood of commands without a word.
      this.broker = await startMosquitto({ persistence: this.options.persistence ?? true, conf: ['max_queued_messages 100000'] })
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
    const shared = (this.options.terminals ?? 1) > 1 && this.options.serial?.openPort === undefined
    const running = runOnSerial(device, { ...this.options.serial, path: this.pty.b, ...(shared ? { openPort: this.#line } : {}) })
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
   * `lossyBroker`: the broker loses copies it accepted ([MQTT-2.6] forbids it), so the
   * order checked is by event number, as the platform orders them, not by arrival.
   */
  async expectEveryAlarmDelivered(opts: { timeoutMs?: number; stage?: Stage; lossyBroker?: boolean } = {}): Promise<number> {
    await this.waitForAll(opts.timeoutMs)
    const stage = opts.stage ?? 'received'
    await waitUntil(
      () => this.terminals.every((t) => t.pressed.every((n) => reached(t.device.stages.get(n), stage))),
      { timeoutMs: 30_000, what: () => `every terminal showing ${stage}: ${this.terminals.map((t) => t.pressed.map((n) => `${t.id}:${n}=${t.device.stages.get(n)}`).join(' ')).join(' ')}` },
    )
    // A terminal may show `received` while the ACK of its own EVENT was lost on the line:
    // its NV memory clears at the next retransmission (up to ~7 s at 9600 baud).
    await waitUntil(() => this.terminals.every((t) => t.device.pending.length === 0), {
      timeoutMs: 30_000,
      what: () => `every terminal's NV memory to empty: ${this.terminals.map((t) => `${t.id} [${t.device.pending.map((e) => e.number).join(',')}]`).join(' ')}`,
    })
    for (const t of this.terminals) {
      const expected = t.pressed.map((n) => `${t.id}:${n}`)
      const arrived = this.arrivals.filter((id) => id.startsWith(`${t.id}:`))
      expect(new Set(arrived).size, 'each alarm once after deduplication').toBe(arrived.length)
      const byNumber = (ids: string[]) => [...ids].sort((a, b) => Number(a.slice(a.lastIndexOf(':') + 1)) - Number(b.slice(b.lastIndexOf(':') + 1)))
      expect(opts.lossyBroker ? byNumber(arrived) : arrived, `alarms of ${t.id} in order`).toEqual(expected)
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

/**
 * One serial device shared by several simulated terminals, as on an RS-485 line: the device
 * (the terminals' end of the pty pair) is opened once; every byte from the gateway reaches
 * every terminal, and each terminal hears the others' frames (not its own). Needed because
 * the serialport package locks a device: a second terminal opening the same pty end would
 * get SERIAL_BUSY for ever. When the device goes away (pty killed), every terminal's port
 * closes; each SerialLine reopens by itself, and they share the next opening again.
 */
export function sharedLine(open: OpenPort = openSerialPort): OpenPort {
  interface Tap {
    data: ((bytes: Uint8Array) => void)[]
    close: ((reason: Error | null) => void)[]
    attached: boolean
  }
  interface Bus {
    port: PortLike
    taps: Set<Tap>
    dead: boolean
  }
  let current: Bus | null = null
  let opening: Promise<Bus> | null = null
  const end = (bus: Bus, reason: Error | null): void => {
    if (bus.dead) return
    bus.dead = true
    if (current === bus) current = null
    const taps = [...bus.taps]
    bus.taps.clear()
    void bus.port.close()
    for (const t of taps) {
      t.attached = false
      for (const l of t.close) l(reason)
    }
  }
  const acquire = (path: string, baud: number): Promise<Bus> => {
    if (current) return Promise.resolve(current)
    opening ??= open(path, baud)
      .then((port) => {
        const bus: Bus = { port, taps: new Set(), dead: false }
        port.on('data', (bytes) => {
          for (const t of [...bus.taps]) for (const l of t.data) l(bytes)
        })
        port.on('close', (reason) => end(bus, reason ?? new Error('device closed')))
        port.on('error', (err) => end(bus, err))
        current = bus
        return bus
      })
      .finally(() => {
        opening = null
      })
    return opening
  }
  return async (path, baud) => {
    const bus = await acquire(path, baud)
    const tap: Tap = { data: [], close: [], attached: true }
    bus.taps.add(tap)
    return {
      write(data) {
        if (!tap.attached) return
        bus.port.write(data)
        // The other drops on the line hear it too, a moment later, as from the wire.
        const copy = data.slice()
        setImmediate(() => {
          for (const t of [...bus.taps]) if (t !== tap) for (const l of t.data) l(copy)
        })
      },
      async close() {
        if (!tap.attached) return
        tap.attached = false
        bus.taps.delete(tap)
        if (bus.taps.size > 0 || bus.dead) return
        bus.dead = true
        if (current === bus) current = null
        await bus.port.close()
      },
      on(event: 'data' | 'close' | 'error', listener: (arg: never) => void) {
        if (event === 'data') tap.data.push(listener as (bytes: Uint8Array) => void)
        else if (event === 'close') tap.close.push(listener as (reason: Error | null) => void)
        // 'error': a failure of the shared device arrives as 'close'.
      },
    }
  }
}

/**
 * Asks the gateway for its status now (`status-request`, as the platform would,
 * [MQTT-5.10]) and resolves with the payload the console receives: the serial link
 * counters under `serial` (wire error codes, retransmissions, duplicates ...), the store's
 * `counters`, the terminals.
 */
export async function requestGatewayStatus(loop: Loop, opts: { gateway?: string; timeoutMs?: number } = {}): Promise<Record<string, unknown>> {
  const gateway = opts.gateway ?? 'gw-fault'
  const seen = () => loop.events.filter((e) => e.type === 'status' && e.scope === 'gateway' && e.gateway === gateway).length
  const before = seen()
  const tag = `${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`
  const client = await mqtt.connectAsync(loop.brokerUrl, { clientId: `status-${tag}`, clean: true, reconnectPeriod: 0 })
  try {
    await client.publishAsync(`${loop.console.prefix}/gw/${gateway}/cmd`, JSON.stringify({ v: 1, id: `status-${tag}`, type: 'status-request' }), { qos: 1 })
  } finally {
    await client.endAsync()
  }
  await waitUntil(() => seen() > before, { timeoutMs: opts.timeoutMs ?? 15_000, what: `a status from gateway ${gateway}` })
  const status = loop.console.snapshot().gateways.find((g) => g.gateway === gateway)?.status
  if (!status) throw new Error(`the console has no status of gateway ${gateway}`)
  return status
}
