/**
 * Scenario 7: malformed, oversized, unknown and random payloads on every downlink topic.
 *
 * 10,000 payloads from a seeded generator go to the gateway's own command topic, its area's
 * and the `all` topic, published as fast as the broker acknowledges them, while a terminal
 * keeps pressing alarms. The promise under test ([MQTT-5.2]): no payload, however
 * malformed, stops or restarts the gateway; each rejected one is either answered with an
 * error Reply or, beyond the reply budget (a burst of 20, then 10 a minute), counted in
 * `replies.suppressed` and in the `suppressed` field of the next Reply, so that Replies plus
 * the counts add up to the rejections exactly; a valid command whose id repeats is ignored
 * silently ([MQTT-5.3]); and the alarms in flight are delivered as if nothing happened.
 *
 * Every payload carries the outcome the contract gives it: a reply code, `any` (random
 * bytes: some rejection, which one depends on the bytes), or `none` (a valid command the
 * gateway applies or ignores without a reply). The generator never sends a valid command that
 * changes the gateway (time, config, broadcast): only receipts and operator answers naming
 * alerts it does not have.
 */

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import mqtt from 'mqtt'
import { describe, expect, it } from 'vitest'
import type { ReplyLine } from '../../platform/index.js'
import { COMMAND_ERROR_CODES, MAX_COMMAND_BYTES, encodePayload, gatewayTopics, type CommandErrorCode } from '../../protocol/mqtt.js'
import { seededRandom } from '../../protocol/random.js'
import { waitUntil } from '../helpers/system.js'
import { requestGatewayStatus, useLoop, type BrokerKind } from './loop.js'

const GATEWAY = 'gw-fault' // tests/faults/loop.ts starts the gateway with this id
const AREA = 'fuzz-area'
const PAYLOADS = 10_000
const SEED = 20260107

type Outcome = CommandErrorCode | 'any' | 'none'
interface Fuzz {
  category: string
  payload: Buffer
  expect: Outcome
  /** The command id a reply should carry, when the contract says it is readable. */
  id?: string | null
}

// ---------------------------------------------------------------------------------------
// The generator

const json = (v: unknown) => Buffer.from(JSON.stringify(v))
const cbor = (v: unknown) => encodePayload(v, 'cbor')

/** A CBOR text string (major type 3), for hand-made maps. */
function cborText(s: string): Buffer {
  const b = Buffer.from(s)
  if (b.length < 24) return Buffer.concat([Buffer.from([0x60 | b.length]), b])
  if (b.length < 256) return Buffer.concat([Buffer.from([0x78, b.length]), b])
  return Buffer.concat([Buffer.from([0x79, b.length >> 8, b.length & 0xff]), b])
}

/** A CBOR map of 1-23 entries from already-encoded keys and values. */
function cborMap(entries: [string, Buffer][]): Buffer {
  return Buffer.concat([Buffer.from([0xa0 | entries.length]), ...entries.flatMap(([k, v]) => [cborText(k), v])])
}

const CBOR_ONE = Buffer.from([0x01])

/** Values that are "well-formed CBOR, but no integer 1 and no text": tags and oddities. */
const EXOTIC_CBOR: [string, Buffer][] = [
  ['bignum 1 (tag 2)', Buffer.from([0xc2, 0x41, 0x01])],
  ['negative bignum (tag 3)', Buffer.from([0xc3, 0x41, 0x00])],
  ['bignum 2^64 (tag 2)', Buffer.from([0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0])],
  ['epoch date (tag 1)', Buffer.from([0xc1, 0x1a, 0, 0, 0, 1])],
  ['date text (tag 0)', Buffer.concat([Buffer.from([0xc0]), cborText('2026-01-01T00:00:00Z')])],
  ['uint8 typed array (tag 64)', Buffer.from([0xd8, 0x40, 0x43, 1, 2, 3])],
  ['regexp (tag 35)', Buffer.concat([Buffer.from([0xd8, 0x23]), cborText('(a+)+$')])],
  ['undefined', Buffer.from([0xf7])],
  ['half float NaN', Buffer.from([0xf9, 0x7e, 0x00])],
  ['byte string', Buffer.from([0x41, 0x01])],
  ['uint64 max', Buffer.from([0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
]

function fuzzPayloads(seed: number, n: number): Fuzz[] {
  const random = seededRandom(seed)
  const int = (max: number) => Math.floor(random() * max)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
  let counter = 0
  const newId = () => `fz-${seed}-${++counter}`
  const bytes = (len: number) => Buffer.from(Array.from({ length: len }, () => int(256)))
  const text = (len: number) => Array.from({ length: len }, () => String.fromCharCode(0x20 + int(95))).join('')
  const unknownAlert = () => `ZZ-NOPE-${int(1000)}:${int(100_000)}`

  /** Well-formed commands that the gateway can parse; none changes a thing at the gateway. */
  const validLooking = (id: string): Record<string, unknown> =>
    pick([
      { v: 1, id, type: 'receipt', ids: [unknownAlert(), unknownAlert()], at: Date.UTC(2026, 0, 1) },
      { v: 1, id, type: 'acknowledged', alert: unknownAlert(), by: '110 centre: Officer Bao', text: 'Stay with the patient' },
      { v: 1, id, type: 'dispatched', alert: unknownAlert(), unit: 'Patrol car 3', eta: 95 },
      { v: 1, id, type: 'resolved', alert: unknownAlert(), text: 'Taken to the banner hospital' },
    ])

  /** A valid command with one field broken; the contract's answer is CMD_BAD_SCHEMA. */
  const badSchema = (id: string): Record<string, unknown> =>
    pick<Record<string, unknown>>([
      { v: 1, id, type: 'receipt', ids: [] },
      { v: 1, id, type: 'receipt', ids: 'T4-00123:42' },
      { v: 1, id, type: 'receipt', ids: [42] },
      { v: 1, id, type: 'receipt', ids: ['x'.repeat(161)] },
      { v: 1, id, type: 'receipt', ids: Array.from({ length: 1001 }, (_, i) => `T4-00123:${i + 1}`) },
      { v: 1, id, type: 'receipt', ids: [unknownAlert()], at: 'now' },
      { v: 1, id, type: 'acknowledged', alert: unknownAlert() },
      { v: 1, id, type: 'acknowledged', alert: unknownAlert(), by: 'x'.repeat(101) },
      { v: 1, id, type: 'acknowledged', alert: unknownAlert(), by: 'Bao', text: 'y'.repeat(201) },
      { v: 1, id, type: 'dispatched', alert: unknownAlert() },
      { v: 1, id, type: 'dispatched', alert: unknownAlert(), unit: 'Patrol car 3', eta: '95' },
      { v: 1, id, type: 'dispatched', alert: unknownAlert(), unit: 'Patrol car 3', eta: -1 },
      { v: 1, id, type: 'dispatched', alert: unknownAlert(), unit: 'Patrol car 3', eta: 65536 },
      { v: 1, id, type: 'dispatched', alert: unknownAlert(), unit: 'Patrol car 3', eta: 1.5 },
      { v: 1, id, type: 'resolved', alert: '' },
      { v: 1, id, type: 'resolved' },
      { v: 1, id, type: 'broadcast', broadcast: 9001, text: 'Storm', urgency: 'severe' },
      { v: 1, id, type: 'broadcast', broadcast: -1, text: 'Storm', urgency: 'urgent' },
      { v: 1, id, type: 'broadcast', broadcast: 2 ** 32, text: 'Storm', urgency: 'urgent' },
      { v: 1, id, type: 'broadcast', broadcast: 9001, text: '', urgency: 'info' },
      { v: 1, id, type: 'broadcast', broadcast: 9001, text: '白'.repeat(901), urgency: 'info' },
      { v: 1, id, type: 'broadcast', broadcast: 9001, urgency: 'info' },
      { v: 1, id, type: 'time', now: 1767252645 },
      { v: 1, id, type: 'time', now: '1767252645123' },
      { v: 1, id, type: 'time' },
      { v: 1, id, type: 'config', receiptTimeout: 86401 },
      { v: 1, id, type: 'config', heartbeat: 5 },
      { v: 1, id, type: 'config', heartbeat: 'sixty' },
      { v: 1, id, type: 'config', supervision: 30.5 },
      { v: 1, id: 'c'.repeat(129), type: 'status-request' },
      { v: 1, id: '', type: 'rebirth' },
      { v: 1, id: 17, type: 'rebirth' },
      { v: 1, type: 'rebirth' },
    ])
  /** The id a Reply carries for a map that gets as far as the version check ([MQTT-5.2]). */
  const readableId = (m: Record<string, unknown>) => (typeof m.id === 'string' && m.id.length <= 128 ? m.id : null)

  const out: Fuzz[] = []
  /** Recent payloads that parse (their id is remembered by the gateway once applied). */
  const recentValid: Fuzz[] = []
  const recentInvalid: Fuzz[] = []

  const generators: [number, () => Fuzz][] = [
    [12, () => ({ category: 'random bytes', payload: bytes(int(200)), expect: 'any' })],
    [4, () => ({ category: 'random bytes after a CBOR map head', payload: Buffer.concat([Buffer.from([0xa0 + int(32)]), bytes(int(120))]), expect: 'any' })],
    [1, () => ({ category: 'empty payload', payload: Buffer.alloc(0), expect: 'CMD_UNDECODABLE', id: null })],
    [
      7,
      () => {
        // A proper prefix of a JSON object is never JSON.
        const full = json(validLooking(newId()))
        return { category: 'truncated JSON', payload: full.subarray(0, int(full.length)), expect: 'CMD_UNDECODABLE', id: null }
      },
    ],
    [
      7,
      () => {
        // One structural character (outside strings) replaced by one JSON never allows there.
        const s = JSON.stringify(validLooking(newId()))
        const structural: number[] = []
        let inString = false
        for (let i = 0; i < s.length; i++) {
          const c = s[i]!
          if (inString) {
            if (c === '\\') i++
            else if (c === '"') {
              inString = false
              structural.push(i)
            }
          } else {
            if (c === '"') inString = true
            structural.push(i)
          }
        }
        const at = pick(structural)
        const garbled = Buffer.concat([Buffer.from(s.slice(0, at)), Buffer.from(pick([';', "'", '=', '|', '\u0001', '\uFEFF'])), Buffer.from(s.slice(at + 1))])
        return { category: 'garbled JSON', payload: garbled, expect: 'CMD_UNDECODABLE', id: null }
      },
    ],
    [
      5,
      () => {
        const full = cbor(validLooking(newId()))
        return { category: 'truncated CBOR', payload: full.subarray(0, 1 + int(full.length - 1)), expect: 'CMD_UNDECODABLE', id: null }
      },
    ],
    [3, () => ({ category: 'CBOR with bytes after the map', payload: Buffer.concat([cbor(validLooking(newId())), bytes(1 + int(8))]), expect: 'CMD_UNDECODABLE', id: null })],
    [
      2,
      () => {
        // Deeper than any decoder's stack: CBOR arrays nested 40,000-60,000 deep inside a map.
        const depth = 40_000 + int(20_000)
        const payload = Buffer.concat([Buffer.from([0xa1]), cborText('x'), Buffer.alloc(depth, 0x81), CBOR_ONE])
        return { category: 'deeply nested CBOR', payload, expect: 'CMD_UNDECODABLE', id: null }
      },
    ],
    [
      3,
      () => {
        const depth = 1_000 + int(25_000)
        const id = newId()
        return pick<Fuzz>([
          { category: 'deeply nested JSON (array)', payload: Buffer.from('['.repeat(depth) + ']'.repeat(depth)), expect: 'CMD_NOT_AN_OBJECT', id: null },
          { category: 'deeply nested JSON (unterminated)', payload: Buffer.from('{"a":'.repeat(Math.min(depth, 13_000))), expect: 'CMD_UNDECODABLE', id: null },
          {
            category: 'deeply nested JSON (in an unknown type)',
            payload: Buffer.from(`{"v":1,"id":"${id}","type":"nested","x":${'['.repeat(depth)}${']'.repeat(depth)}}`),
            expect: 'CMD_UNKNOWN_TYPE',
            id,
          },
          {
            category: 'deeply nested JSON (in receipt ids)',
            payload: Buffer.from(`{"v":1,"id":"${id}","type":"receipt","ids":${'['.repeat(depth)}"a"${']'.repeat(depth)}}`),
            expect: 'CMD_BAD_SCHEMA',
            id,
          },
        ])
      },
    ],
    [
      4,
      () =>
        pick<Fuzz>([
          { category: 'not an object', payload: json([validLooking(newId())]), expect: 'CMD_NOT_AN_OBJECT', id: null },
          { category: 'not an object', payload: json('rebirth'), expect: 'CMD_NOT_AN_OBJECT', id: null },
          { category: 'not an object', payload: json(int(1e6)), expect: 'CMD_NOT_AN_OBJECT', id: null },
          { category: 'not an object', payload: Buffer.from(pick(['true', 'false', 'null', ' 1 '])), expect: 'CMD_NOT_AN_OBJECT', id: null },
          { category: 'CBOR that is not a map', payload: cbor([1, 2, 3]), expect: 'CMD_UNDECODABLE', id: null },
          { category: 'CBOR that is not a map', payload: cbor('rebirth'), expect: 'CMD_UNDECODABLE', id: null },
        ]),
    ],
    [
      8,
      () => {
        const m = validLooking(newId())
        const v = pick<unknown>([0, 2, -1, 1.5, '1', null, true, [1], { v: 1 }, 2 ** 53, undefined])
        if (v === undefined) delete m.v
        else m.v = v
        const enc = random() < 0.5 ? json : cbor
        return { category: 'wrong version', payload: enc(m), expect: 'CMD_BAD_VERSION', id: readableId(m) }
      },
    ],
    [
      8,
      () => {
        const m = validLooking(newId())
        const t = pick<unknown>(['reboot', 'RECEIPT', '', 'shell', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'receipt ', 42, null, ['receipt'], undefined])
        if (t === undefined) delete m.type
        else m.type = t
        const enc = random() < 0.5 ? json : cbor
        return { category: 'unknown type', payload: enc(m), expect: 'CMD_UNKNOWN_TYPE', id: readableId(m) }
      },
    ],
    [
      16,
      () => {
        const m = badSchema(newId())
        const enc = random() < 0.5 ? json : cbor
        return { category: 'valid type, bad field', payload: enc(m), expect: 'CMD_BAD_SCHEMA', id: readableId(m) }
      },
    ],
    [
      3,
      () => {
        // Well-formed CBOR whose `v` or `type` is a tag or another value JSON has no word for.
        const [name, value] = pick(EXOTIC_CBOR)
        const id = newId()
        return random() < 0.5
          ? {
              category: `CBOR exotic v: ${name}`,
              payload: cborMap([
                ['v', value],
                ['id', cborText(id)],
                ['type', cborText('rebirth')],
              ]),
              expect: 'CMD_BAD_VERSION',
              id,
            }
          : {
              category: `CBOR exotic type: ${name}`,
              payload: cborMap([
                ['v', CBOR_ONE],
                ['id', cborText(id)],
                ['type', value],
              ]),
              expect: 'CMD_UNKNOWN_TYPE',
              id,
            }
      },
    ],
    [
      2,
      () => {
        // Over MAX_COMMAND_BYTES: refused before decoding, whatever it holds.
        const size = MAX_COMMAND_BYTES + 1 + int(120_000)
        return pick<Fuzz>([
          { category: 'huge: random bytes', payload: bytes(size), expect: 'CMD_TOO_LARGE', id: null },
          {
            category: 'huge: receipt of long ids',
            payload: json({ v: 1, id: newId(), type: 'receipt', ids: Array.from({ length: Math.ceil(size / 103) }, () => text(100)) }),
            expect: 'CMD_TOO_LARGE',
            id: null,
          },
          { category: 'huge: broadcast text', payload: cbor({ v: 1, id: newId(), type: 'broadcast', broadcast: 1, urgency: 'info', text: text(size) }), expect: 'CMD_TOO_LARGE', id: null },
        ])
      },
    ],
    [
      7,
      () => {
        // Parses; names an alert this gateway does not have: CMD_UNKNOWN_ALERT, once per id.
        const id = newId()
        const m = {
          v: 1,
          id,
          ...pick<Record<string, unknown>>([
            { type: 'acknowledged', alert: unknownAlert(), by: 'Officer Bao' },
            { type: 'dispatched', alert: unknownAlert(), unit: 'Patrol car 3' },
            { type: 'resolved', alert: unknownAlert() },
          ]),
        }
        return { category: 'unknown alert', payload: random() < 0.5 ? json(m) : cbor(m), expect: 'CMD_UNKNOWN_ALERT', id }
      },
    ],
    [3, () => ({ category: 'receipt for ids the gateway does not know', payload: json({ v: 1, id: newId(), type: 'receipt', ids: [unknownAlert()] }), expect: 'none' })],
    [
      4,
      () => {
        // The same command id again, soon after: a command that parsed is ignored silently;
        // one that did not parse is rejected again (nothing was remembered of it).
        const src = random() < 0.5 ? pick(recentValid) : pick(recentInvalid)
        if (!src) return { category: 'empty payload', payload: Buffer.alloc(0), expect: 'CMD_UNDECODABLE', id: null }
        return src.expect === 'CMD_UNKNOWN_ALERT' || src.expect === 'none'
          ? { category: 'repeated id, parsed before (ignored)', payload: src.payload, expect: 'none' }
          : { category: 'repeated id, rejected before (rejected again)', payload: src.payload, expect: src.expect, ...(src.id !== undefined ? { id: src.id } : {}) }
      },
    ],
  ]
  const total = generators.reduce((s, [w]) => s + w, 0)
  for (let i = 0; i < n; i++) {
    let r = random() * total
    const g =
      generators.find(([w]) => {
        r -= w
        return r < 0
      })?.[1] ?? generators[0]![1]
    const f = g()
    out.push(f)
    const recent = f.expect === 'CMD_UNKNOWN_ALERT' || f.expect === 'none' ? recentValid : f.id ? recentInvalid : null
    if (recent && !f.category.startsWith('repeated id')) {
      recent.push(f)
      if (recent.length > 20) recent.shift()
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------
// The scenario

/** CPU seconds a process has used (user + system), from /proc: the gateway's cost per payload whatever else runs. */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

/**
 * The publisher keeps this many payloads awaiting PUBACK: as fast as the broker takes them.
 * Both brokers hold the backlog for the gateway (loop/loop.ts raises mosquitto's
 * `max_queued_messages` as [MQTT-2.6] asks), so nothing is dropped on the way.
 */
const PUBACK_WINDOW = 64

describe.each<BrokerKind>(['aedes', 'mosquitto'])('fault: malformed, oversized, unknown and random payloads on every downlink topic (%s)', (broker) => {
  let publisher: mqtt.MqttClient | null = null
  const loops = useLoop(`downlink-${broker}`, async () => {
    await publisher?.endAsync(true).catch(() => {})
    publisher = null
  })

  it(`${PAYLOADS.toLocaleString('en')} payloads while alarms are pressed: same process, every rejection answered or counted, alarms unaffected`, async () => {
    // Unsigned: the fuzz payloads are the contract's parse rules [MQTT-5.2], which a gateway
    // without a platform key applies to every payload (gateway-signing.test.ts covers signed ones).
    const l = await loops.start({ broker, area: AREA, signed: false })
    const gw = l.gateway
    const pid = gw.child.pid
    // What the process says if it dies (an uncaught exception goes to stderr, not the log).
    let stderr = ''
    gw.child.stderr!.on('data', (c: string) => (stderr = (stderr + c).slice(-4000)))
    const dead = () => gw.child.exitCode !== null || gw.child.signalCode !== null
    const topics = gatewayTopics('steppelink/v1', GATEWAY, AREA)
    const downlink = [topics.command, topics.areaCommand!, topics.allCommand]

    // An empty payload is not a command (it clears a retained message: ignored), and a
    // command about an alert the gateway does not have is answered only on its own topic
    // (on the area and all topics it is some other gateway's). [MQTT-5.2] [MQTT-5.4]
    const fuzz = fuzzPayloads(SEED, PAYLOADS).map(
      (f, i): Fuzz => (f.payload.length === 0 || (f.expect === 'CMD_UNKNOWN_ALERT' && downlink[i % downlink.length] !== topics.command) ? { ...f, expect: 'none' } : f),
    )
    // What the gateway counts in `commands.rejected`: every rejection, answered or held back.
    const expectedRejections = fuzz.filter((f) => f.expect !== 'none').length
    // What it logs as 'command rejected': the payloads that did not parse.
    const expectedParseRejections = fuzz.filter((f) => f.expect !== 'none' && f.expect !== 'CMD_UNKNOWN_ALERT').length

    // The console's reply events, counted as they come.
    const replies: ReplyLine[] = []
    let scanned = 0
    const collectReplies = () => {
      for (; scanned < l.events.length; scanned++) {
        const e = l.events[scanned]!
        if (e.type === 'reply') replies.push(e)
      }
      return replies
    }

    publisher = await mqtt.connectAsync(l.brokerUrl, {
      ...l.platformCredentials,
      clientId: `fuzz-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
      clean: true,
      protocolVersion: 4,
      reconnectPeriod: 0,
    })
    const pub = publisher

    // Alarms keep coming while the flood is on: one every 400 ms until it is handled.
    let flooding = true
    const presser = (async () => {
      do {
        l.press(0, l.terminals[0]!.pressed.length % 4 === 3 ? 'fire' : 'emergency')
        await new Promise((r) => setTimeout(r, 400))
      } while (flooding && !dead())
    })()

    const cpuBefore = cpuSeconds(pid!)
    const started = Date.now()
    let next = 0
    const worker = async () => {
      while (next < fuzz.length && !dead()) {
        const i = next++
        await pub.publishAsync(downlink[i % downlink.length]!, fuzz[i]!.payload, { qos: 1 })
      }
    }
    await Promise.all(Array.from({ length: PUBACK_WINDOW }, worker))
    const publishedMs = Date.now() - started

    // Handled when the gateway's own counters say so: every payload that did not parse is
    // in `commands.rejected`, and every rejection is either a Reply that reached the console
    // or counted in `replies.suppressed`. The status is asked for again until then.
    let counters: Record<string, number> = {}
    const settled = () => counters['commands.rejected'] === expectedRejections && collectReplies().length + (counters['replies.suppressed'] ?? 0) === expectedRejections
    const handledBy = Date.now() + 120_000
    while (!dead()) {
      counters = ((await requestGatewayStatus(l, { timeoutMs: 30_000 })).counters ?? {}) as Record<string, number>
      if (settled() || Date.now() > handledBy) break
      await new Promise((r) => setTimeout(r, 1000))
    }
    const drainedMs = Date.now() - started
    const cpuUsed = dead() ? NaN : cpuSeconds(pid!) - cpuBefore
    flooding = false
    await presser

    // The gateway is the same process, never restarted, and logged no internal error.
    expect(
      gw.child.exitCode,
      `the gateway process exited (${gw.child.exitCode}) during the flood, after ${gw.logs.filter((x) => x.msg.startsWith('command rejected')).length} rejections; stderr:\n${stderr}\nlast log lines: ${JSON.stringify(gw.logs.slice(-2))}`,
    ).toBeNull()
    expect(gw.child.signalCode).toBeNull()
    expect(gw.child.pid).toBe(pid)
    expect(gw.logs.filter((x) => x.msg === 'gateway ready')).toHaveLength(1)
    expect(gw.logs.filter((x) => x.level === 'error' || x.level === 'fatal').map((x) => x.msg)).toEqual([])

    // Every rejection accounted for: Replies on the wire plus those held back.
    const got = [...collectReplies()]
    expect(counters['commands.rejected'], 'commands.rejected in the gateway status: every rejection').toBe(expectedRejections)
    expect(got.length + (counters['replies.suppressed'] ?? 0), 'Replies sent + replies.suppressed = rejections').toBe(expectedRejections)
    // The budget: the burst at once, then at most 10 a minute over the flood.
    const minutes = (Math.max(...got.map((r) => r.receivedAt)) - Math.min(...got.map((r) => r.receivedAt))) / 60_000
    expect(got.length, 'at least the burst of 20 Replies').toBeGreaterThanOrEqual(20)
    expect(got.length, `at most 20 + 10 a minute Replies over ${minutes.toFixed(2)} min`).toBeLessThanOrEqual(20 + Math.ceil(10 * minutes) + 1)
    // Each Reply is one of [MQTT-5.2]'s codes, about a payload of the flood, on the topic it came on.
    expect(
      [...new Set(got.map((r) => r.code))].filter((c) => !(COMMAND_ERROR_CODES as readonly string[]).includes(c as string)),
      'only the codes of [MQTT-5.2]',
    ).toEqual([])
    const ids = new Set(fuzz.map((f) => f.id))
    expect(
      got.filter((r) => r.command !== null && !ids.has(r.command)).map((r) => r.command),
      'Replies naming a command that was not sent',
    ).toEqual([])
    for (const r of got) expect(downlink).toContain(r.topic)
    // One warn line per Reply sent at most: the held-back rejections are logged at debug.
    const warned = gw.logs.filter((x) => x.level === 'warn' && x.msg.startsWith('command rejected'))
    expect(warned.length).toBeLessThanOrEqual(got.length)
    const rejected = gw.logs.filter((x) => x.msg.startsWith('command rejected'))
    expect(rejected.length, 'one log line (warn or debug) per payload that did not parse').toBe(expectedParseRejections)

    // Once the budget has a token again, the next Reply carries the count of all held back
    // since the Reply before it: the counts in the Replies add up to replies.suppressed.
    await new Promise((r) => setTimeout(r, 7_000))
    await pub.publishAsync(topics.command, json({ v: 1, id: 'after-the-flood', type: 'reboot' }), { qos: 1 })
    await waitUntil(() => collectReplies().some((r) => r.command === 'after-the-flood'), { timeoutMs: 15_000, what: 'the Reply to a bad command after the flood' })
    const all = collectReplies()
    expect(all.at(-1)).toMatchObject({ command: 'after-the-flood', code: 'CMD_UNKNOWN_TYPE' })
    expect(
      all.reduce((n, r) => n + r.suppressed, 0),
      'the suppressed counts of the Replies = replies.suppressed',
    ).toBe(counters['replies.suppressed'] ?? 0)

    // The alarms pressed during the flood: all delivered, once, in order, terminal at `received`.
    const duplicates = await l.expectEveryAlarmDelivered({ timeoutMs: 60_000 })

    // The gateway's handling rate, from its own log: rejections from the first to the last.
    const times = rejected.map((x) => Date.parse(x.time as string))
    const spanS = Math.max(0.001, (Math.max(...times) - Math.min(...times)) / 1000)
    const codes = new Map<string, number>()
    for (const r of got) codes.set(r.code as string, (codes.get(r.code as string) ?? 0) + 1)
    // What the error reports cost the uplink, as the gateway encodes them (CBOR).
    const replyBytes = got.reduce(
      (n, r) => n + encodePayload({ v: 1, type: 'error', gateway: GATEWAY, command: r.command, topic: r.topic, code: r.code, message: r.message, time: r.time }, 'cbor').length,
      0,
    )
    const byCategory = new Map<string, number>()
    for (const f of fuzz) byCategory.set(f.category.replace(/:.*/, ''), (byCategory.get(f.category.replace(/:.*/, '')) ?? 0) + 1)
    console.log(
      [
        `[downlink ${broker}] ${PAYLOADS} payloads (seed ${SEED}) round-robin on ${downlink.join(', ')}; ${(fuzz.reduce((n, f) => n + f.payload.length, 0) / 1e6).toFixed(1)} MB`,
        `  by category: ${[...byCategory].map(([c, k]) => `${c} ${k}`).join(', ')}`,
        `  published in ${publishedMs} ms (${Math.round(PAYLOADS / (publishedMs / 1000))}/s); all handled ${drainedMs - publishedMs} ms after the last PUBACK`,
        `  gateway: ${rejected.length} rejections logged over ${spanS.toFixed(1)} s, ${Math.round(PAYLOADS / spanS)} payloads/s handled (${Math.round(rejected.length / spanS)} rejections/s), on ${cpuUsed.toFixed(1)} CPU-s: ${Math.round(PAYLOADS / cpuUsed)} payloads per CPU-second; same pid ${pid}`,
        `  ${expectedRejections} rejections: ${got.length} error reports sent (${[...codes].map(([c, k]) => `${c} ${k}`).join(', ')}), ${counters['replies.suppressed'] ?? 0} held back; ${(replyBytes / 1e3).toFixed(1)} kB of uplink, ${((replyBytes * 8) / 20_000).toFixed(1)} s of a 20 kbit/s GPRS uplink`,
        `  ${l.terminals[0]!.pressed.length} alarms pressed during the flood: all delivered once, in order; ${duplicates} duplicate copies on the wire`,
      ].join('\n'),
    )
  })
})
