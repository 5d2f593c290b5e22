/**
 * The rig the gateway's end-to-end unit tests share (gateway*.test.ts): a Gateway on a
 * simulated serial line with one terminal, a fake broker and a fake clock, and the few
 * helpers the issue 10 tests use to send commands and read what the terminal was shown.
 * Not a test file itself; tsconfig.json leaves *.suite.ts out of the build.
 *
 * Every test file that uses the rig runs warmUpBatches in a beforeAll.
 */

import { SimLine, onLine } from '../device-sim/sim-line.js'
import { GatewayLink, TerminalLink, type GatewayLinkOptions, type LinkEvent } from '../protocol/link.js'
import type { Capability, Event, TerminalMessage } from '../protocol/messages.js'
import { decodeBatch, decodePayload, encodeBatch, type UplinkEvent } from '../protocol/mqtt.js'
import { seededRandom } from '../protocol/random.js'
import { findCompression, type BatchCompression } from './compression.js'
import { Gateway, type GatewayIo, type GatewaySettings, type Log } from './gateway.js'
import { SqliteStore } from './sqlite-store.js'
import type { Store, StoreOptions } from './store.js'

/**
 * The rig runs on a fake clock, with a few turns of the event loop per step; the first batch
 * would otherwise wait for the zstd module to load in real time, and miss its step.
 */
export async function warmUpBatches(): Promise<void> {
  await encodeBatch({ v: 1, id: 'warm-up', gateway: 'gw-1', items: [] }, 'cbor')
}

const SETTINGS: GatewaySettings = {
  gateway: 'gw-1',
  area: 'sumu-7',
  prefix: 'steppelink/v1',
  encoding: 'cbor',
  supervisionMs: 30_000,
  receiptTimeoutMs: 60_000,
  heartbeatS: 10,
  statusIntervalMs: 300_000,
  version: 'test',
}

interface Published {
  topic: string
  payload: Buffer
  retain: boolean
  at: number
}

/** A gateway on a simulated serial line with one terminal, a fake broker and a fake clock. */
export function rig(
  opts: {
    store?: Store
    storeOptions?: Partial<StoreOptions>
    settings?: Partial<GatewaySettings>
    boot?: number
    /** The batch compressor the gateway is given (default: found as main.ts does). */
    compression?: GatewayIo['compression']
    /** The TLS client certificate for the status (default: none). */
    tls?: GatewayIo['tls']
    /** What main.ts tells the household page (issue 13; default: none). */
    io?: Pick<GatewayIo, 'uplinkState' | 'diskFree'>
    /** The gateway's end of the serial link, to watch it (default a GatewayLink). */
    link?: (o: GatewayLinkOptions) => GatewayLink
    /** The terminal's boot counter and last event number, as its NV memory holds them. */
    terminal?: { boot?: number; lastEvent?: number; capabilities?: Capability[]; terminal?: string }
  } = {},
) {
  const line = new SimLine(9600, {}, 3)
  // Batch compression runs on libuv's thread pool, in real time, while the rig's clock is
  // fake: on a loaded machine (CI runs several suites at once) a batch could take longer
  // than the few event-loop turns a step gives it. So each compression in flight is
  // tracked, and run() waits for it (in real time) before the next step of the fake clock.
  const compressing = new Set<Promise<unknown>>()
  const track = (found: BatchCompression): BatchCompression =>
    found.codec === 'zstd'
      ? {
          ...found,
          compress: (encoded: Buffer) => {
            const p = found.compress(encoded)
            compressing.add(p)
            void p.then(
              () => compressing.delete(p),
              () => compressing.delete(p),
            )
            return p
          },
        }
      : found
  // A compression already found is given as it is (the status names it at once); a finding, when it settles.
  const tracked = (c: NonNullable<GatewayIo['compression']>): NonNullable<GatewayIo['compression']> => (c instanceof Promise ? c.then(track) : track(c))
  const store = opts.store ?? new SqliteStore({ path: ':memory:', freeSpace: () => 1e12, ...opts.storeOptions })
  const linkOptions: GatewayLinkOptions = { gateway: 'gw-1', boot: opts.boot ?? 1, random: seededRandom(9) }
  const link = opts.link ? opts.link(linkOptions) : new GatewayLink(linkOptions)
  const published: Published[] = []
  const logs: { level: string; msg: string; fields: object }[] = []
  const log: Log = Object.fromEntries((['debug', 'info', 'warn', 'error'] as const).map((level) => [level, (fields: object, msg: string) => logs.push({ level, msg, fields })])) as unknown as Log
  /** While `holdAlerts` is set, an alert's PUBACK waits for it to resolve. */
  const state: { online: boolean; failPublish: boolean; holdAlerts: Promise<void> | null; hurried: number } = { online: true, failPublish: false, holdAlerts: null, hurried: 0 }
  let serialOut: Uint8Array[] = []
  const gateway = new Gateway(
    { ...SETTINGS, ...opts.settings },
    store,
    link,
    {
      writeSerial: (b) => serialOut.push(b),
      publish: async (topic, payload, o) => {
        if (!state.online || state.failPublish) throw new Error('offline')
        published.push({ topic, payload, retain: o?.retain ?? false, at: line.now })
        if (state.holdAlerts && topic.endsWith('/alert')) await state.holdAlerts
      },
      online: () => state.online,
      hurry: () => state.hurried++,
      now: () => line.now,
      random: () => 0.5,
      compression: tracked(opts.compression ?? findCompression()),
      ...(opts.tls ? { tls: opts.tls } : {}),
      ...opts.io,
    },
    log,
    opts.boot ?? 1,
  )
  line.add({
    receive: (b) => gateway.serialData(b),
    transmit: () => {
      const out = serialOut
      serialOut = []
      return out.length ? new Uint8Array(out.flatMap((c) => [...c])) : null
    },
    tick: () => gateway.tick(),
  })
  const tLog: LinkEvent[] = []
  let events = opts.terminal?.lastEvent ?? 0
  let terminalBoot = opts.terminal?.boot ?? 1
  const unit = (o: typeof opts.terminal = {}) =>
    new TerminalLink({
      address: 5,
      hello: () => ({ terminal: o.terminal ?? 'SL-T-5', firmware: '1.0', capabilities: o.capabilities ?? ['buzzer'], boot: terminalBoot, lastEvent: events }),
      random: seededRandom(4),
    })
  let terminal = unit(opts.terminal)
  const terminalAt = line.add(onLine(terminal, (e) => tLog.push(e)))
  gateway.start()
  gateway.serialOpened()
  const press = (kind: Event['kind'] = 'emergency', number = ++events, uptime = 100): Event => {
    const m: Event = { type: 'EVENT', number, kind, boot: terminalBoot, uptime }
    terminal.send(m, { priority: 10 })
    return m
  }
  /**
   * Another unit on the terminal's address, or the same one after a power cut: its boot
   * counter and last event number as its memory holds them. What the old one was shown is
   * forgotten (tLog starts again).
   */
  const swapTerminal = (o: { boot: number; lastEvent: number; capabilities?: Capability[] }) => {
    terminalBoot = o.boot
    events = o.lastEvent
    terminal = unit({ ...opts.terminal, ...o })
    line.clear()
    line.replace(
      terminalAt,
      onLine(terminal, (e) => tLog.push(e)),
    )
    tLog.length = 0
  }
  /**
   * A second unit on the same line, at its own address (multidrop, [LINK-3.4]): a terminal
   * of its own, or a device that claims another's id (issue 12). What it is shown is in its
   * own log.
   */
  const addTerminal = (o: { address: number; terminal: string; boot?: number; lastEvent?: number; capabilities?: Capability[] }) => {
    const log: LinkEvent[] = []
    let last = o.lastEvent ?? 0
    const boot = o.boot ?? 1
    const link = new TerminalLink({
      address: o.address,
      hello: () => ({ terminal: o.terminal, firmware: '1.0', capabilities: o.capabilities ?? ['buzzer'], boot, lastEvent: last }),
      random: seededRandom(o.address),
    })
    line.add(onLine(link, (e) => log.push(e)))
    const shown = () => log.flatMap((e) => (e.kind === 'message' && e.message.type === 'INDICATE' ? [e.message] : []))
    return {
      link,
      log,
      press: (kind: Event['kind'] = 'emergency', number = ++last, uptime = 100): Event => {
        last = Math.max(last, number)
        const m: Event = { type: 'EVENT', number, kind, boot, uptime }
        link.send(m, { priority: 10 })
        return m
      },
      stages: shown,
      stageNames: (n: number) =>
        shown()
          .filter((i) => i.event === n)
          .map((i) => i.stage),
      /** Its session is open: the gateway answered its HELLO. */
      open: () => log.some((e) => e.kind === 'session' && e.state === 'open'),
    }
  }
  const stages = () => tLog.flatMap((e) => (e.kind === 'message' && e.message.type === 'INDICATE' ? [e.message] : []))
  const stageNames = (n: number) =>
    stages()
      .filter((i) => i.event === n)
      .map((i) => i.stage)
  const uplink = (suffix: string) => published.filter((p) => p.topic.endsWith(suffix)).map((p) => decodePayload(p.payload) as UplinkEvent & Record<string, unknown>)
  const command = (c: Record<string, unknown>) => gateway.command('steppelink/v1/gw/gw-1/cmd', Buffer.from(JSON.stringify({ v: 1, ...c })))
  /** Runs the line, letting promises (publications) settle between steps of `stepMs`. */
  const run = async (ms: number, until?: () => boolean, stepMs = 50) => {
    const end = line.now + ms
    while (line.now < end) {
      line.run(Math.min(end, line.now + stepMs), until)
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
      while (compressing.size > 0) {
        await Promise.allSettled([...compressing])
        for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
      }
      if (until?.()) return
    }
  }
  /** Every uplink item, singles and the contents of batches, in publication order. */
  const items = async () => {
    const out: { kind: string; class: string; [k: string]: unknown }[] = []
    for (const p of published) {
      if (p.topic.endsWith('/event') || p.topic.endsWith('/alert')) out.push(decodePayload(p.payload) as never)
      if (p.topic.endsWith('/batch')) out.push(...((await decodeBatch(p.payload)) as { items: never[] }).items)
    }
    return out
  }
  return {
    items,
    line,
    store,
    link,
    gateway,
    get terminal() {
      return terminal
    },
    tLog,
    published,
    logs,
    state,
    press,
    swapTerminal,
    addTerminal,
    stages,
    stageNames,
    uplink,
    command,
    run,
    send: (m: TerminalMessage) => terminal.send(m),
  }
}

export type Rig = ReturnType<typeof rig>

// ---------------------------------------------------------------------------------------
// Issue 10: the alarm promise in every corner. Each test names its item.

export const ALL = 'steppelink/v1/all/cmd'
export const AREA = 'steppelink/v1/area/sumu-7/cmd'
export const OWN = 'steppelink/v1/gw/gw-1/cmd'
export const send = (r: Rig, topic: string, c: Record<string, unknown>, options?: { retained?: boolean }) => r.gateway.command(topic, Buffer.from(JSON.stringify({ v: 1, ...c })), options)
export const displays = (r: Rig) => r.tLog.flatMap((e) => (e.kind === 'message' && e.message.type === 'DISPLAY' ? [e.message] : []))
export const replies = (r: Rig) => r.uplink('/reply').map((e) => e.code)
