/**
 * The operator console's test harness (platform/*.test.ts and cli/console-command.test.ts):
 * real brokers on 127.0.0.1, fake gateways that publish what a gateway publishes
 * (protocol/mqtt.ts encodePayload / encodeBatch, CBOR and JSON) and read back, with
 * parseCommand, every command the console sends them, and the uplink items the tests send.
 */

import mqtt from 'mqtt'
import { startConsole, type ConsoleEvent, type ConsoleOptions } from '../../platform/index.js'
import { DEFAULT_TOPIC_PREFIX, encodePayload, gatewayTopics, parseCommand, type Command, type Encoding, type TerminalStatus, type UplinkEvent } from '../../protocol/mqtt.js'
import { startAedes } from './broker.js'

/** Undone after each test, newest first: each test file calls `cleanUp` in afterEach. */
export const cleanups: (() => unknown)[] = []
export async function cleanUp(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
}

let seq = 0
export const uniq = (p: string) => `${p}${process.pid}-${++seq}`

export async function aedes() {
  const broker = await startAedes()
  cleanups.push(() => broker.close())
  return broker
}

/** A gateway as the platform sees it: publishes uplink, and reads its commands with parseCommand. */
export async function fakeGateway(url: string, id = uniq('gw'), area: string | null = null) {
  const topics = gatewayTopics(DEFAULT_TOPIC_PREFIX, id, area)
  const client = await mqtt.connectAsync(url, { clientId: `fake-${id}`, clean: true, reconnectPeriod: 0, protocolVersion: 4 })
  cleanups.push(() => client.endAsync(true))
  const commands: (Command & { topic: string })[] = []
  const rejected: string[] = []
  client.on('message', (topic, payload) => {
    const p = parseCommand(payload)
    if (p.ok) commands.push({ ...p.command, topic })
    else rejected.push(`${p.code} ${p.message}`)
  })
  await client.subscribeAsync([topics.command, topics.allCommand, ...(topics.areaCommand ? [topics.areaCommand] : [])], { qos: 1 })
  const gw = {
    id,
    topics,
    client,
    commands,
    rejected,
    publish: (what: 'alert' | 'event' | 'batch' | 'state' | 'status' | 'reply', payload: Buffer, retain = false) => client.publishAsync(topics[what], payload, { qos: 1, retain }),
    of: <T extends Command['type']>(type: T) => commands.filter((c): c is Extract<Command, { type: T }> & { topic: string } => c.type === type),
  }
  return gw
}

export async function consoleFor(url: string, opts: Partial<ConsoleOptions> = {}) {
  const events: ConsoleEvent[] = []
  const c = await startConsole({ broker: url, id: uniq('c'), onEvent: (e) => events.push(e), ...opts })
  cleanups.push(() => c.close())
  const of = <T extends ConsoleEvent['type']>(type: T) => events.filter((e): e is Extract<ConsoleEvent, { type: T }> => e.type === type)
  return { c, events, of }
}

export const T0 = 1_767_252_600_000

export function alarm(gateway: string, n: number, over: Partial<UplinkEvent> = {}): UplinkEvent {
  return {
    v: 1,
    id: `T4-00123:${n}`,
    class: 'alarm',
    kind: 'emergency',
    code: 101,
    restore: false,
    gateway,
    terminal: 'T4-00123',
    address: 3,
    number: n,
    time: { at: T0, estimated: false },
    received: T0 + 40,
    attempt: 1,
    stage: 'stored',
    ...over,
  }
}

/** The event without a stage: what the gateway publishes for an event that has none ([MQTT-3.2]). */
export function stageless(e: UplinkEvent): UplinkEvent {
  const copy = { ...e }
  delete copy.stage
  return copy
}

export function trouble(gateway: string, n: number, kind: 'mains-lost' | 'tamper' = 'mains-lost'): UplinkEvent {
  return stageless({ ...alarm(gateway, n), class: 'trouble', kind, code: kind === 'tamper' ? 383 : 301 } as UplinkEvent)
}

/** A call-back request of terminal T4-00123 (class request, on `event` or in a batch). */
export function callback(gateway: string, n: number, over: Partial<UplinkEvent> = {}): UplinkEvent {
  return { ...alarm(gateway, n), class: 'request', kind: 'callback', code: null, stage: 'sent', ...over }
}

/** A message the center household relayed for a neighbour (class request, made by the gateway). */
export function relay(gateway: string, n: number, text: string): UplinkEvent {
  return { ...alarm(gateway, n), id: `${gateway}:g${n}`, class: 'request', kind: 'relay', code: null, terminal: null, address: null, number: null, stage: 'sent', text }
}

export function status(gateway: string, terminal: string, battery: number, mains: boolean): TerminalStatus {
  return {
    v: 1,
    id: `${gateway}:s:${terminal}:57:${T0}`,
    class: 'status',
    kind: 'status',
    gateway,
    terminal,
    address: 5,
    time: { at: T0 + 300_000, estimated: false },
    latest: { uptime: 86400, mains, battery },
    since: T0,
    heartbeats: 30,
    minutesWithoutMains: mains ? 0 : 5,
  }
}

export const birth = (gateway: string, session: number, enc: Encoding = 'json') =>
  encodePayload({ v: 1, type: 'birth', gateway, online: true, session, time: { at: T0, estimated: true }, version: '0.1.0', encoding: enc, area: null }, enc)
export const death = (gateway: string, session: number, enc: Encoding = 'json') => encodePayload({ v: 1, type: 'death', gateway, online: false, session }, enc)

/** What `steppelink console` writes, and the abort that stops it. */
export function io() {
  const out: string[] = []
  const err: string[] = []
  const abort = new AbortController()
  return {
    out,
    err,
    abort,
    lines: () =>
      out
        .join('')
        .split('\n')
        .filter((l) => l !== ''),
    io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), stdin: null, isTTY: false, signal: abort.signal },
  }
}

// ---------------------------------------------------------------------------------------
// Text from the wire [CONSOLE-9]

/** What a terminal obeys: C0 (ESC, BEL, CR, LF ...), DEL, C1 (CSI U+009B ...), bidi overrides and isolates. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for these in the console's output, where none may be left
export const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/
// Clear the screen, home the cursor, hide, blink, recolour, move up a line, set the
// window title (OSC), an 8-bit CSI, a bell, reverse the rest of the line, a fake new line.
export const hostile = (printable: string) => `\x1b[2J\x1b[H\x1b[8m\x1b[5m\x1b[31m${printable}\x1b[0m\x1b[1A\x1b]0;pwned\x07\x9b2J\x07\u202eevil\u202c\u2066x\u2069\x7f\r\nFAKE LINE`

export async function hostileGateway(url: string) {
  const gw = await fakeGateway(url)
  // An alarm of a kind this version does not know, so that its kind is free text too.
  const a = alarm(gw.id, 1, { id: `T4-00123:1${hostile('')}`, terminal: `T4-00123${hostile('')}`, kind: `avalanche${hostile('')}` as never, text: hostile('Fire at the north well') })
  const relay = { ...trouble(gw.id, 2), id: `${gw.id}:g1`, class: 'request', kind: 'relay', code: null, terminal: null, text: hostile('Batu needs a vet') }
  const reply = {
    v: 1,
    type: 'error',
    gateway: gw.id,
    command: `c-1${hostile('')}`,
    topic: gw.topics.command,
    code: `CMD_STALE${hostile('')}`,
    message: hostile('time for session 3'),
    time: { at: T0, estimated: false },
  }
  return {
    gw,
    a,
    publishAll: async () => {
      await gw.publish('alert', encodePayload(a, 'cbor'))
      await gw.publish('event', encodePayload(relay, 'json'))
      await gw.publish('reply', encodePayload(reply, 'json'))
      // Not JSON: the parser's message quotes the payload.
      await gw.publish('alert', Buffer.from(hostile('not json')))
    },
  }
}
