/**
 * The serial half of the alarm loop, for the latency and serial benchmarks: a socat
 * pseudo-terminal pair as the cable, a simulated terminal on one end, and on the other end
 * a bridge as a real child process, either the real gateway (`node dist/cli/main.js
 * gateway`, with the flags the loop harness gives it: loop/loop.ts `gatewayArgs`) or the
 * naive bridge of bench/naive-bridge.ts. Several sides share one broker and one platform,
 * which the whole loop (loop/loop.ts) does not: it runs one gateway. The terminal runs in
 * the benchmark's process, so press times, the stages it shows and the platform-side
 * arrivals (a probe subscriber, also here) are all read from one clock: performance.now().
 * Each side keeps the alarms pressed on it, for the delivery check (loop/delivery.ts).
 *
 * A pty ignores the baud rate. The serial runner paces what the terminal sends; here the
 * other direction is paced too: what the bridge writes reaches the terminal no sooner
 * than a UART at the baud rate would carry it. So each ACK and INDICATE costs its wire
 * time, as on a real line, for the gateway and the naive bridge alike.
 */

import { performance } from 'node:perf_hooks'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { startGateway } from '../../device-sim/gateway-process.js'
import { openPtyPair } from '../../device-sim/pty.js'
import { runOnSerial, type RunningTerminal } from '../../device-sim/serial-runner.js'
import { TerminalDevice, ramMemory, type ShownStage } from '../../device-sim/terminal.js'
import { waitUntil } from '../../device-sim/wait.js'
import { openSerialPort, type OpenPort } from '../../io/serial-line.js'
import { alertId } from '../../loop/delivery.js'
import { gatewayArgs } from '../../loop/loop.js'
import { encodeWire, GATEWAY_ADDRESS } from '../../protocol/codec.js'
import type { EventKind } from '../../protocol/messages.js'
import { CLASS_OF, decodePayload } from '../../protocol/mqtt.js'
import { wireTimeMs } from '../../protocol/timing.js'
import { startNaiveBridge } from '../naive-bridge.js'

/** Things to undo, undone last-first, each tried even when one before it fails. */
export class Cleanups {
  readonly #steps: (() => unknown)[] = []

  add(step: () => unknown): void {
    this.#steps.push(step)
  }

  async run(): Promise<void> {
    for (let step = this.#steps.pop(); step; step = this.#steps.pop()) {
      try {
        await step()
      } catch {
        // Best effort: the measurement is over, every other step must still run.
      }
    }
  }
}

export type System = 'gateway' | 'naive'

/** The terminal's address on the line. */
const TERMINAL_ADDRESS = 1

export interface Pressed {
  /** `<terminal>:<number>`, the alert id on the platform side. */
  id: string
  number: number
  /** performance.now() just before the button was pressed. */
  at: number
  /** Length of this event's frame on the wire, bytes (delimiters included). */
  frameBytes: number
}

export interface Side {
  readonly system: System
  readonly baud: number
  /** The terminal's id. */
  readonly id: string
  readonly device: TerminalDevice
  /** Event numbers of the alarms pressed, in order. */
  readonly pressed: readonly number[]
  readonly running: RunningTerminal
  /** performance.now() when each stage was first shown, by event number. */
  readonly shown: Map<number, Map<ShownStage, number>>
  /** Nothing queued, in flight or waiting in the UART: a press now goes straight out. */
  idle(): boolean
  press(kind: EventKind): Pressed
}

export interface SideOptions {
  system: System
  baud: number
  /** The platform's broker, as the bridge reaches it. */
  broker: string
  /** Scratch directory (the gateway's store goes under it). */
  dir: string
  /** Topic-level name of the bridge: the gateway's id, or the naive bridge's topic level. */
  name: string
  terminalId: string
  cleanups: Cleanups
  /** Wraps the terminal's port (to time what it writes and reads). */
  wrapPort?: (open: OpenPort) => OpenPort
}

/** Where the naive bridge named `name` publishes. */
export function naiveTopic(name: string): string {
  return `naive/${name}/event`
}

/**
 * Starts the bridge on one end of a fresh pty pair and the terminal on the other; resolves
 * once the terminal has a session and has been told the time (so its EVENT frames have
 * their full length from the first press).
 */
export async function startSide(o: SideOptions): Promise<Side> {
  const pty = await openPtyPair()
  o.cleanups.add(() => pty.close())
  if (o.system === 'gateway') {
    const g = startGateway(gatewayArgs({ serial: pty.a, broker: o.broker, id: o.name, dataDir: join(o.dir, `gateway-${o.name}`), logLevel: 'info', baud: o.baud }))
    o.cleanups.add(() => g.kill('SIGKILL'))
    await g.waitForLog((l) => l.msg === 'gateway ready', 'ready')
    await g.waitForLog((l) => l.msg === 'uplink online', 'uplink online')
  } else {
    const bridge = startNaiveBridge({ serial: pty.a, baud: o.baud, broker: o.broker, topic: naiveTopic(o.name) })
    o.cleanups.add(() => bridge.stop())
    await bridge.ready
  }

  const shown = new Map<number, Map<ShownStage, number>>()
  let toldTime = false
  const device = new TerminalDevice({
    address: TERMINAL_ADDRESS,
    terminal: o.terminalId,
    memory: ramMemory(),
    baud: o.baud,
    now: Date.now(),
    onUpdate: (u) => {
      if (u.kind === 'time') toldTime = true
      if (u.kind !== 'stage') return
      const at = performance.now()
      const stages = shown.get(u.event) ?? new Map<ShownStage, number>()
      shown.set(u.event, stages)
      if (!stages.has(u.stage)) stages.set(u.stage, at)
    },
  })
  const open = paceIncoming(o.wrapPort ? o.wrapPort(openSerialPort) : openSerialPort, o.baud)
  const running = runOnSerial(device, { path: pty.b, baud: o.baud, pace: true, openPort: open })
  o.cleanups.add(() => running.stop())
  await waitUntil(() => device.link.status.state === 'open' && toldTime, { timeoutMs: 15_000, what: `${o.system} session and TIME at ${o.baud} baud` })

  const pressed: number[] = []
  return {
    system: o.system,
    baud: o.baud,
    id: o.terminalId,
    device,
    pressed,
    running,
    shown,
    idle: () => {
      const s = device.link.status
      return s.state === 'open' && !s.inFlight && s.queued === 0 && running.stats().queuedOut === 0
    },
    press: (kind) => {
      const at = performance.now()
      const e = device.press(kind)
      running.wake()
      if (CLASS_OF[kind] === 'alarm') pressed.push(e.number)
      const frameBytes = encodeWire({ dst: GATEWAY_ADDRESS, src: TERMINAL_ADDRESS, seq: 0, message: e }).length
      return { id: alertId(o.terminalId, e.number), number: e.number, at, frameBytes }
    },
  }
}

/**
 * A port whose incoming bytes are handed over no sooner than a UART at `baud` would have
 * finished receiving them: each frame (a chunk is cut after every 0x00 delimiter) once the
 * line, busy with the bytes before it, has carried its last byte. So an ACK the gateway
 * wrote together with an INDICATE arrives before it, as on a real line. Order is kept;
 * close and error pass at once.
 */
export function paceIncoming(open: OpenPort, baud: number): OpenPort {
  const byteMs = wireTimeMs(1, baud)
  return async (path, rate) => {
    const port = await open(path, rate)
    const listeners: ((data: Uint8Array) => void)[] = []
    const queue: { due: number; data: Uint8Array }[] = []
    let lineFreeAt = 0
    let timer: NodeJS.Timeout | null = null
    const deliver = (): void => {
      timer = null
      const now = performance.now()
      while (queue.length > 0 && queue[0]!.due <= now) {
        const { data } = queue.shift()!
        for (const l of listeners) l(data)
      }
      if (queue.length > 0) timer = setTimeout(deliver, queue[0]!.due - now)
    }
    port.on('data', (data) => {
      const now = performance.now()
      for (const piece of splitAfterDelimiters(data)) {
        const due = Math.max(now, lineFreeAt) + piece.length * byteMs
        lineFreeAt = due
        queue.push({ due, data: piece })
      }
      if (timer === null) timer = setTimeout(deliver, queue[0]!.due - now)
    })
    return {
      write: (data) => port.write(data),
      close: () => {
        if (timer !== null) clearTimeout(timer)
        return port.close()
      },
      on(event: 'data' | 'close' | 'error', listener: (arg: never) => void) {
        if (event === 'data') listeners.push(listener as (data: Uint8Array) => void)
        else port.on(event as 'close', listener as (reason: Error | null) => void)
      },
    }
  }
}

/** `data` cut after each 0x00: every piece ends at a frame delimiter, except maybe the last. */
function splitAfterDelimiters(data: Uint8Array): Uint8Array[] {
  const pieces: Uint8Array[] = []
  let start = 0
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== 0) continue
    pieces.push(data.subarray(start, i + 1))
    start = i + 1
  }
  if (start < data.length) pieces.push(data.subarray(start))
  return pieces
}

/** A subscriber on the platform side that notes when each alert id first arrives. */
export interface Probe {
  /** performance.now() of the first arrival, by alert id, in the order of arrival. */
  readonly arrivals: Map<string, number>
  close(): Promise<void>
}

/**
 * Subscribes (QoS 1) to `filters` and timestamps each message the moment mqtt.js hands it
 * over, before anything else is done with it. Payloads are the gateway's (an `id` field,
 * CBOR or JSON) or the naive bridge's (JSON with `terminal` and `number`).
 */
export async function startProbe(broker: string, filters: string[]): Promise<Probe> {
  const arrivals = new Map<string, number>()
  const client = await mqtt.connectAsync(broker, { clientId: `bench-probe-${process.pid}`, clean: true, reconnectPeriod: 0 })
  client.on('message', (_topic, payload) => {
    const at = performance.now()
    const id = alertIdOf(payload)
    if (id !== null && !arrivals.has(id)) arrivals.set(id, at)
  })
  await client.subscribeAsync(filters, { qos: 1 })
  return { arrivals, close: () => client.endAsync() }
}

function alertIdOf(payload: Buffer): string | null {
  let value: unknown
  try {
    value = decodePayload(payload)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  const v = value as { id?: unknown; terminal?: unknown; number?: unknown }
  if (typeof v.id === 'string') return v.id
  if (typeof v.terminal === 'string' && typeof v.number === 'number') return `${v.terminal}:${v.number}`
  return null
}
