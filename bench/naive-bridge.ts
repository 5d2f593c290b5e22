/**
 * The baseline of the latency benchmark: the bridge one would wire in Node-RED (a serial-in
 * node, a function node, an mqtt-out node), as its own process. `serialport` reads the
 * line, each EVENT frame is decoded and published at once with `mqtt.publish`; nothing is
 * stored, no receipt is awaited, no stage goes back to the terminal.
 *
 * What makes it fair:
 * - It speaks just enough of the link for the terminal to go on (GatewayLink in `auto`
 *   mode): WELCOME to the HELLO, and an ACK as soon as a frame decodes. Without the ACK the
 *   terminal's stop-and-wait link would hold every later frame behind the first one; the
 *   ACK costs the bridge nothing (no store before it).
 * - It sends the terminal the time once per session (TIME), as the gateway does, so the
 *   terminal's EVENT frames carry the same fields and have the same length on the wire.
 * - It publishes before it writes the ACK, with QoS 1 like the gateway (the broker then
 *   forwards it at QoS 1 too): every advantage goes to the baseline.
 *
 * Run as `node dist/bench/naive-bridge.js --serial PATH --baud N --broker URL --topic T`;
 * it prints `ready` once the port is open and the broker connected. `startNaiveBridge()`
 * starts it as a child process.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { GatewayLink } from '../protocol/link.js'

/** What the bridge publishes for each EVENT: the event as the terminal sent it, plus who sent it. */
export interface NaiveEvent {
  terminal: string
  address: number
  number: number
  kind: string
  boot: number
  uptime: number
  time?: number
}

export interface NaiveBridgeOptions {
  serial: string
  baud: number
  broker: string
  /** Topic of every event (Node-RED: the mqtt-out node's topic). */
  topic: string
}

export interface NaiveBridgeProcess {
  readonly child: ChildProcess
  /** Resolves once the bridge printed `ready`; rejects if it exits first. */
  readonly ready: Promise<void>
  /** SIGTERM, then SIGKILL after 3 s; resolves once it has exited. */
  stop(): Promise<void>
}

const HERE = fileURLToPath(import.meta.url)
/** The terminal's link retransmits; the bridge's only own data frame is TIME. */
const TICK_MS = 50

export function startNaiveBridge(o: NaiveBridgeOptions): NaiveBridgeProcess {
  const child = spawn(process.execPath, [HERE, '--serial', o.serial, '--baud', String(o.baud), '--broker', o.broker, '--topic', o.topic], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  // If the benchmark dies without stop(), the bridge must not outlive it.
  const onExit = (): void => {
    child.kill('SIGKILL')
  }
  process.on('exit', onExit)
  const exited = new Promise<void>((done) =>
    child.once('exit', () => {
      process.off('exit', onExit)
      done()
    }),
  )
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)))
  const ready = new Promise<void>((done, fail) => {
    let out = ''
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s
      if (out.includes('ready\n')) done()
    })
    void exited.then(() => fail(new Error(`naive bridge exited before ready: ${stderr.trim()}`)))
  })
  return {
    child,
    ready,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
        await exited
        clearTimeout(timer)
      }
    },
  }
}

/** The bridge itself, in this process; resolves with a function that stops it. */
export async function runNaiveBridge(o: NaiveBridgeOptions): Promise<() => Promise<void>> {
  const { SerialPort } = await import('serialport')
  const client = await mqtt.connectAsync(o.broker, { clientId: `naive-bridge-${process.pid}`, clean: true, reconnectPeriod: 1000 })
  const port = new SerialPort({ path: o.serial, baudRate: o.baud, dataBits: 8, parity: 'none', stopBits: 1, autoOpen: false })
  port.on('error', (err) => console.error(`naive bridge: serial: ${err.message}`))
  await new Promise<void>((done, fail) => port.open((err) => (err ? fail(err) : done())))

  // A new boot number at each start, as a gateway would keep on disk: seconds since the epoch.
  const link = new GatewayLink({ gateway: 'naive-bridge', boot: Math.floor(Date.now() / 1000), baud: o.baud, ackMode: 'auto' })
  const terminals = new Map<number, string>()
  const flush = (): void => {
    for (let out = link.transmit(); out; out = link.transmit()) port.write(Buffer.from(out))
  }
  const drain = (): void => {
    for (let e = link.nextEvent(); e; e = link.nextEvent()) {
      if (e.kind === 'session' && e.hello) {
        terminals.set(e.peer, e.hello.terminal)
        link.send(e.peer, { type: 'TIME', unix: Math.floor(Date.now() / 1000), estimate: false })
      } else if (e.kind === 'message' && e.message.type === 'EVENT') {
        const { type: _type, ...event } = e.message
        const payload: NaiveEvent = { terminal: terminals.get(e.from) ?? `address-${e.from}`, address: e.from, ...event }
        client.publish(o.topic, JSON.stringify(payload), { qos: 1 }, () => {})
      }
    }
  }
  port.on('data', (chunk: Buffer) => {
    link.receive(chunk, Date.now())
    drain()
    flush()
  })
  const timer = setInterval(() => {
    link.tick(Date.now())
    drain()
    flush()
  }, TICK_MS)
  return async () => {
    clearInterval(timer)
    await new Promise<void>((done) => (port.isOpen ? port.close(() => done()) : done()))
    await client.endAsync()
  }
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { serial: { type: 'string' }, baud: { type: 'string' }, broker: { type: 'string' }, topic: { type: 'string' } },
  })
  const { serial, baud, broker, topic } = values
  if (serial === undefined || baud === undefined || broker === undefined || topic === undefined) {
    throw new Error('usage: naive-bridge --serial PATH --baud N --broker URL --topic T')
  }
  const stop = await runNaiveBridge({ serial, baud: Number(baud), broker, topic })
  process.stdout.write('ready\n')
  process.once('SIGTERM', () => {
    void stop().finally(() => process.exit(0))
  })
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === HERE) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(`naive bridge: ${(e as Error).message}`)
    process.exit(1)
  })
}
