import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { Compile } from 'typebox/compile'
import { describe, expect, it } from 'vitest'
import { DISPLAY_MAX_PARTS, DISPLAY_TEXT_MAX_BYTES, splitDisplayText } from './display.js'
import { EVENT_KINDS, STAGES, contactIdOf } from './messages.js'
import * as mqtt from './mqtt.js'
import {
  BATCH_ERROR_CODES,
  BATCH_MAX_BYTES,
  BATCH_MAX_DECOMPRESSED_BYTES,
  BATCH_MAX_ITEMS,
  BatchDecodeError,
  CLASSES,
  CLASS_OF,
  COMMAND_ERROR_CODES,
  COMMAND_SCHEMAS,
  DEFAULT_TOPIC_PREFIX,
  GATEWAY_KINDS,
  MAX_COMMAND_BYTES,
  TOPIC_ID_PATTERN,
  decodeBatch,
  decodePayload,
  encodeBatch,
  encodePayload,
  gatewayTopics,
  parseCommand,
  referenceZstd,
  ZSTD_MAGIC,
  ZSTD_MAX_WINDOW_BYTES,
  type Batch,
  type BatchErrorCode,
  type CommandType,
  type Encoding,
  type TerminalStatus,
  type UplinkEvent,
} from './mqtt.js'

const root = join(import.meta.dirname, '..')
const spec = readFileSync(join(import.meta.dirname, 'MQTT.md'), 'utf8')
const ENCODINGS: Encoding[] = ['json', 'cbor']
const utf8 = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'))
const hexBytes = (text: string) => new Uint8Array(Buffer.from(text.replaceAll(' ', ''), 'hex'))
/** 65536 as MQTT.md writes it: 65 536. */
const spaced = (n: number) => n.toLocaleString('en-US').replaceAll(',', ' ')
/** Characters that do not print, as \\uXXXX, the way MQTT.md shows messages. */
const visible = (text: string) => text.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\ufeff\ufffd]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
const schemaOf = (name: string) => (mqtt as Record<string, unknown>)[name] as Parameters<typeof Compile>[0] | undefined

/**
 * A strict reader of the CBOR the contract promises [MQTT-4.3], independent of cbor-x:
 * maps with text keys, text, integers, booleans, null, arrays, and (only if `floats`)
 * floats with an integral value; no tags, no byte strings, no indefinite lengths, nothing
 * after the item. If it reads a payload, so does any CBOR decoder, as plain data.
 */
function readPlainCbor(bytes: Uint8Array, { floats = false } = {}): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let p = 0
  const need = (n: number) => {
    if (p + n > bytes.length) throw new Error(`truncated at ${p}`)
  }
  const arg = (ai: number): number => {
    if (ai < 24) return ai
    const width = { 24: 1, 25: 2, 26: 4, 27: 8 }[ai]
    if (width === undefined) throw new Error(`indefinite or reserved length (${ai}) at ${p - 1}`)
    need(width)
    const v = width === 1 ? view.getUint8(p) : width === 2 ? view.getUint16(p) : width === 4 ? view.getUint32(p) : Number(view.getBigUint64(p))
    p += width
    return v
  }
  const item = (): unknown => {
    need(1)
    const ib = bytes[p++]!
    const major = ib >> 5
    const ai = ib & 31
    switch (major) {
      case 0:
        return arg(ai)
      case 1:
        return -1 - arg(ai)
      case 3: {
        const n = arg(ai)
        need(n)
        const s = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(p, p + n))
        p += n
        return s
      }
      case 4:
        return Array.from({ length: arg(ai) }, () => item())
      case 5: {
        const n = arg(ai)
        const o: Record<string, unknown> = {}
        for (let i = 0; i < n; i++) {
          const k = item()
          if (typeof k !== 'string') throw new Error(`map key ${String(k)} is not text`)
          o[k] = item()
        }
        return o
      }
      case 7: {
        if (ai === 20) return false
        if (ai === 21) return true
        if (ai === 22) return null
        if (ai === 27 && floats) {
          need(8)
          const v = view.getFloat64(p)
          p += 8
          if (!Number.isInteger(v)) throw new Error(`float ${v} has a fraction`)
          return v
        }
        throw new Error(`simple value or float form ${ai} is not in the subset`)
      }
      default:
        throw new Error(`major type ${major} (byte string or tag) is not in the subset`)
    }
  }
  const v = item()
  if (p !== bytes.length) throw new Error(`${bytes.length - p} bytes after the item`)
  return v
}

// ---------------------------------------------------------------------------------------
// Fixtures

const T = 1767252600000
const alarm: UplinkEvent = {
  v: 1,
  id: 'T4-00123:42',
  class: 'alarm',
  kind: 'emergency',
  code: 101,
  restore: false,
  gateway: 'gw-0017',
  terminal: 'T4-00123',
  address: 3,
  number: 42,
  time: { at: T, estimated: false },
  received: T,
  attempt: 1,
  stage: 'stored',
}
const status = (terminal: string, n: number): TerminalStatus => ({
  v: 1,
  id: `gw-0017:s:${terminal}:${n}:${T - 300_000}`,
  class: 'status',
  kind: 'status',
  gateway: 'gw-0017',
  terminal,
  address: 1 + (n % 254),
  time: { at: T + n * 1000, estimated: false },
  latest: { uptime: 86_400 + n, mains: n % 7 !== 0, battery: 60 + (n % 40), millivolts: 3900, pending: 0, temperature: -18 },
  since: T - 300_000,
  heartbeats: 30,
  lowestBattery: 60 + (n % 40),
  minutesWithoutMains: n % 7 === 0 ? 5 : 0,
})

interface CommandFixture {
  name: string
  payload: Record<string, unknown>
}
/** One valid command of every type, some with every optional field; the parse gives back exactly the payload. */
const COMMANDS: CommandFixture[] = [
  { name: 'receipt, one id', payload: { v: 1, id: 'c-1', type: 'receipt', ids: ['T4-00123:42'] } },
  { name: 'receipt, two ids and at', payload: { v: 1, id: 'c-2', type: 'receipt', ids: ['T4-00123:42', 'R1-00008:7'], at: T + 1200 } },
  { name: 'acknowledged', payload: { v: 1, id: 'c-3', type: 'acknowledged', alert: 'T4-00123:42', by: '110 centre: Officer Bao' } },
  { name: 'acknowledged with text', payload: { v: 1, id: 'c-4', type: 'acknowledged', alert: 'T4-00123:42', by: '巴特尔', text: '请待在原地，保持温暖' } },
  { name: 'dispatched', payload: { v: 1, id: 'c-5', type: 'dispatched', alert: 'T4-00123:42', unit: 'Patrol car 3' } },
  { name: 'dispatched with eta', payload: { v: 1, id: 'c-6', type: 'dispatched', alert: 'T4-00123:42', unit: 'Patrol car 3', eta: 95 } },
  { name: 'resolved', payload: { v: 1, id: 'c-7', type: 'resolved', alert: 'T4-00123:42' } },
  { name: 'resolved with text', payload: { v: 1, id: 'c-8', type: 'resolved', alert: 'T4-00123:42', text: 'Taken to the banner hospital' } },
  { name: 'broadcast', payload: { v: 1, id: 'c-9', type: 'broadcast', broadcast: 9001, text: '白灾预警：明晚暴风雪，请把牲畜赶进棚圈。', urgency: 'urgent' } },
  { name: 'broadcast with expires', payload: { v: 1, id: 'c-10', type: 'broadcast', broadcast: 0, text: 'Road closed.', urgency: 'info', expires: 1767312000000 } },
  { name: 'broadcast of 900 Chinese characters (15 full DISPLAY parts)', payload: { v: 1, id: 'c-10a', type: 'broadcast', broadcast: 4294967295, text: '白'.repeat(900), urgency: 'warning' } },
  { name: 'broadcast of 2700 Latin letters (15 full DISPLAY parts)', payload: { v: 1, id: 'c-10b', type: 'broadcast', broadcast: 2, text: 'x'.repeat(2700), urgency: 'info' } },
  { name: 'time', payload: { v: 1, id: 'c-11', type: 'time', now: 1767252645123 } },
  { name: 'time for a session', payload: { v: 1, id: 'c-11a', type: 'time', now: 1767252645123, session: 57 } },
  { name: 'time at the last second TIME can carry (2106)', payload: { v: 1, id: 'c-11b', type: 'time', now: 4_294_967_295_000 } },
  { name: 'broadcast-withdraw', payload: { v: 1, id: 'c-9w', type: 'broadcast-withdraw', broadcast: 9001 } },
  { name: 'config, every field', payload: { v: 1, id: 'c-12', type: 'config', heartbeat: 60, supervision: 180, receiptTimeout: 90, statusInterval: 900 } },
  { name: 'config, empty', payload: { v: 1, id: 'c-13', type: 'config' } },
  { name: 'config, receipt timeout at its bounds', payload: { v: 1, id: 'c-13a', type: 'config', receiptTimeout: 86400 } },
  { name: 'config, receipt timeout at its lower bound', payload: { v: 1, id: 'c-13b', type: 'config', receiptTimeout: 5 } },
  { name: 'status-request', payload: { v: 1, id: 'c-14', type: 'status-request' } },
  { name: 'rebirth', payload: { v: 1, id: 'c-15', type: 'rebirth' } },
  {
    name: 'receipt with auth and unknown fields [MQTT-5.1]',
    payload: { v: 1, id: 'c-16', type: 'receipt', ids: ['T4-00123:43'], auth: { alg: 'ed25519', nonce: 'q7Zt1w', sig: 'MEUCIQDx', at: T }, trace: 'op-desk-2', future: [1, 2, { x: null }] },
  },
  { name: 'rebirth with a field of a later version', payload: { v: 1, id: 'c-17', type: 'rebirth', reason: 'platform restarted' } },
]

type RejectCode = Extract<ReturnType<typeof parseCommand>, { ok: false }>['code']
interface RejectFixture {
  name: string
  payload: Uint8Array
  code: RejectCode
  id: string | null
}
const json = (o: unknown) => utf8(JSON.stringify(o))
const cbor = (o: unknown) => new Uint8Array(encodePayload(o, 'cbor'))
const ids = (n: number) => Array.from({ length: n }, (_, i) => `T4-00123:${i + 1}`)
const REJECTIONS: RejectFixture[] = [
  { name: 'too large, even if valid', payload: json({ v: 1, id: 'c-1', type: 'rebirth', pad: 'x'.repeat(MAX_COMMAND_BYTES) }), code: 'CMD_TOO_LARGE', id: null },
  { name: 'too large garbage is not decoded', payload: new Uint8Array(MAX_COMMAND_BYTES + 1).fill(0xff), code: 'CMD_TOO_LARGE', id: null },
  { name: 'empty payload', payload: new Uint8Array(0), code: 'CMD_UNDECODABLE', id: null },
  { name: 'undecodable bytes', payload: new Uint8Array([0xff, 0x00, 0x13, 0x37]), code: 'CMD_UNDECODABLE', id: null },
  { name: 'truncated JSON', payload: utf8('{"v":1,"id":"c-1","type":"rebirth"'), code: 'CMD_UNDECODABLE', id: null },
  { name: 'truncated CBOR', payload: cbor({ v: 1, id: 'c-1', type: 'rebirth' }).subarray(0, 10), code: 'CMD_UNDECODABLE', id: null },
  { name: 'CBOR with trailing bytes', payload: new Uint8Array([...cbor({ v: 1, id: 'c-1', type: 'rebirth' }), 0x00]), code: 'CMD_UNDECODABLE', id: null },
  { name: 'UTF-8 byte-order mark before JSON', payload: new Uint8Array([0xef, 0xbb, 0xbf, ...json({ v: 1, id: 'c-1', type: 'rebirth' })]), code: 'CMD_UNDECODABLE', id: null },
  // CBOR that is not a bare map is read as JSON, and is not JSON. [MQTT-4.3]
  { name: 'CBOR array', payload: cbor([{ v: 1, id: 'c-1', type: 'rebirth' }]), code: 'CMD_UNDECODABLE', id: null },
  { name: 'CBOR text string', payload: cbor('rebirth'), code: 'CMD_UNDECODABLE', id: null },
  { name: 'CBOR integer', payload: cbor(7), code: 'CMD_UNDECODABLE', id: null },
  { name: 'CBOR null', payload: new Uint8Array([0xf6]), code: 'CMD_UNDECODABLE', id: null },
  { name: 'CBOR map behind the self-describe tag (d9 d9 f7)', payload: new Uint8Array([0xd9, 0xd9, 0xf7, ...cbor({ v: 1, id: 'c-1', type: 'rebirth' })]), code: 'CMD_UNDECODABLE', id: null },
  // JSON that is not an object.
  { name: 'JSON array', payload: json([{ v: 1, id: 'c-1', type: 'rebirth' }]), code: 'CMD_NOT_AN_OBJECT', id: null },
  { name: 'JSON array after white space', payload: utf8(' [{"v":1,"id":"c-1","type":"rebirth"}]'), code: 'CMD_NOT_AN_OBJECT', id: null },
  { name: 'JSON string', payload: json('rebirth'), code: 'CMD_NOT_AN_OBJECT', id: null },
  { name: 'JSON number', payload: json(7), code: 'CMD_NOT_AN_OBJECT', id: null },
  { name: 'JSON null', payload: utf8('null'), code: 'CMD_NOT_AN_OBJECT', id: null },
  { name: 'JSON true', payload: utf8('true'), code: 'CMD_NOT_AN_OBJECT', id: null },
  { name: 'v: 2', payload: json({ v: 2, id: 'c-1', type: 'rebirth' }), code: 'CMD_BAD_VERSION', id: 'c-1' },
  { name: 'v missing', payload: json({ id: 'c-1', type: 'rebirth' }), code: 'CMD_BAD_VERSION', id: 'c-1' },
  { name: 'v as text', payload: cbor({ v: '1', id: 'c-1', type: 'rebirth' }), code: 'CMD_BAD_VERSION', id: 'c-1' },
  { name: 'unknown type', payload: json({ v: 1, id: 'c-1', type: 'reboot' }), code: 'CMD_UNKNOWN_TYPE', id: 'c-1' },
  { name: 'type missing', payload: cbor({ v: 1, id: 'c-1' }), code: 'CMD_UNKNOWN_TYPE', id: 'c-1' },
  { name: 'type from Object.prototype', payload: json({ v: 1, id: 'c-1', type: 'toString' }), code: 'CMD_UNKNOWN_TYPE', id: 'c-1' },
  { name: 'missing field (dispatched without unit)', payload: json({ v: 1, id: 'c-1', type: 'dispatched', alert: 'T4-00123:42' }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'missing id', payload: json({ v: 1, type: 'rebirth' }), code: 'CMD_BAD_SCHEMA', id: null },
  // [LINK-5.9] TIME carries UNIX seconds in 32 bits: a later time could not reach the terminals. (issue 10, item 20)
  { name: 'time after 2106', payload: json({ v: 1, id: 'c-1', type: 'time', now: 4_294_967_296_000 }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  // UNIX seconds where ms are meant would be 1970. (issue 10, item 19)
  { name: 'broadcast expires in seconds', payload: json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: 'x', urgency: 'info', expires: 1767312000 }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'broadcast expires after 2106', payload: json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: 'x', urgency: 'info', expires: 4_294_967_296_000 }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'id longer than 128', payload: json({ v: 1, id: 'c'.repeat(129), type: 'rebirth' }), code: 'CMD_BAD_SCHEMA', id: null },
  { name: 'wrong type (eta as text)', payload: json({ v: 1, id: 'c-1', type: 'dispatched', alert: 'T4-00123:42', unit: 'Car 3', eta: '95' }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'wrong type (ids not a list)', payload: cbor({ v: 1, id: 'c-1', type: 'receipt', ids: 'T4-00123:42' }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'receipt with 0 ids', payload: json({ v: 1, id: 'c-1', type: 'receipt', ids: [] }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'receipt with 1001 ids', payload: json({ v: 1, id: 'c-1', type: 'receipt', ids: ids(1001) }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'time in seconds, not ms', payload: json({ v: 1, id: 'c-1', type: 'time', now: 1767252645 }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'unknown urgency', payload: json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: 'x', urgency: 'severe' }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'eta out of range', payload: cbor({ v: 1, id: 'c-1', type: 'dispatched', alert: 'a:1', unit: 'Car 3', eta: 65536 }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'config out of range (receipt timeout under 5 s)', payload: json({ v: 1, id: 'c-1', type: 'config', receiptTimeout: 4 }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'config out of range (receipt timeout over a day)', payload: json({ v: 1, id: 'c-1', type: 'config', receiptTimeout: 86401 }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'broadcast of 901 Chinese characters (a 16th DISPLAY part)', payload: json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: '白'.repeat(901), urgency: 'urgent' }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  { name: 'broadcast of 2701 Latin letters', payload: cbor({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: 'x'.repeat(2701), urgency: 'info' }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  {
    name: 'broadcast within 2700 characters that the gateway would split into 16 parts',
    payload: json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: `${'x'.repeat(179)}é`.repeat(15), urgency: 'info' }),
    code: 'CMD_BAD_SCHEMA',
    id: 'c-1',
  },
  { name: 'empty broadcast text', payload: json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: '', urgency: 'info' }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
]

// ---------------------------------------------------------------------------------------
// MQTT.md: rule ids, tables and worked examples

const ruleIds = (text: string) => new Set([...text.matchAll(/MQTT-(\d+\.\d+)/g)].map((x) => `MQTT-${x[1]}`))
const defined = [...spec.matchAll(/^\*\*\[(MQTT-\d+\.\d+)\]/gm)].map((x) => x[1]!)

function tsFiles(dir: string, recursive: boolean): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir).flatMap((f) => {
    const path = join(dir, f)
    if (statSync(path).isDirectory()) return recursive && f !== 'node_modules' ? tsFiles(path, true) : []
    return f.endsWith('.ts') ? [path] : []
  })
}

interface Example {
  schema: string
  arrow: '->' | '<-'
  topic: string
  json: string
  cbor: string
  zstd?: string
}
/** The worked examples of MQTT.md section 7: ```text blocks whose first line is `Schema -> topic`. */
function examples(): Example[] {
  const out: Example[] = []
  for (const block of spec.matchAll(/^```text\n([\s\S]*?)\n```$/gm)) {
    const [head, ...rest] = block[1]!.split('\n')
    const h = /^(\w+) (->|<-) (\S+) /.exec(head!)
    if (!h) continue
    const f: Record<string, string> = {}
    let key = ''
    for (const line of rest) {
      const m = /^(json|cbor|zstd) {2}(.*)$/.exec(line)
      if (m) f[(key = m[1]!)] = m[2]!
      else if (key && /^ {6}[0-9a-f ]+$/.test(line)) f[key] += ` ${line.trim()}`
      else throw new Error(`MQTT.md example ${head}: unexpected line ${JSON.stringify(line)}`)
    }
    out.push({ schema: h[1]!, arrow: h[2] as '->' | '<-', topic: h[3]!, json: f.json!, cbor: f.cbor!, ...(f.zstd ? { zstd: f.zstd } : {}) })
  }
  return out
}
const EXAMPLES = examples()

// ---------------------------------------------------------------------------------------

describe('topics [MQTT-2.1]', () => {
  it('lays out a gateway with an area', () => {
    expect(gatewayTopics('steppelink/v1', 'gw-0017', 'abag-03')).toEqual({
      state: 'steppelink/v1/gw/gw-0017/state',
      alert: 'steppelink/v1/gw/gw-0017/alert',
      event: 'steppelink/v1/gw/gw-0017/event',
      batch: 'steppelink/v1/gw/gw-0017/batch',
      status: 'steppelink/v1/gw/gw-0017/status',
      reply: 'steppelink/v1/gw/gw-0017/reply',
      command: 'steppelink/v1/gw/gw-0017/cmd',
      areaCommand: 'steppelink/v1/area/abag-03/cmd',
      allCommand: 'steppelink/v1/all/cmd',
    })
  })

  it('lays out a gateway without an area, under any prefix', () => {
    const t = gatewayTopics('banner/xilingol/110', 'gw-1')
    expect(t.areaCommand).toBeNull()
    expect(t.command).toBe('banner/xilingol/110/gw/gw-1/cmd')
    expect(t.allCommand).toBe('banner/xilingol/110/all/cmd')
    expect(gatewayTopics(DEFAULT_TOPIC_PREFIX, 'gw-1', null).state).toBe('steppelink/v1/gw/gw-1/state')
  })

  it('uplink topics match the platform subscriptions of [MQTT-4.8]; command topics do not', () => {
    const t = gatewayTopics(DEFAULT_TOPIC_PREFIX, 'gw-0017', 'abag-03')
    const filters = ['alert', 'event', 'batch', 'state', 'status', 'reply'].map((x) => new RegExp(`^steppelink/v1/gw/[^/]+/${x}$`))
    for (const k of ['state', 'alert', 'event', 'batch', 'status', 'reply'] as const) expect(filters.some((f) => f.test(t[k]))).toBe(true)
    for (const k of ['command', 'areaCommand', 'allCommand'] as const) expect(filters.some((f) => f.test(t[k]!))).toBe(false)
  })

  it('TOPIC_PREFIX_PATTERN: one rule for the gateway and the console (issue 11, item 3)', () => {
    const ok = (p: string) => new RegExp(mqtt.TOPIC_PREFIX_PATTERN).test(p)
    expect(['steppelink/v1', 'x', 'county/110/v1'].filter(ok)).toHaveLength(3)
    expect(['', '/a', 'a/', 'a//b', 'a/+/b', 'a/#', '$SYS/x', 'a\u0000b'].filter(ok)).toEqual([])
  })

  it('TOPIC_ID_PATTERN keeps ids to one topic level', () => {
    const re = new RegExp(TOPIC_ID_PATTERN)
    for (const ok of ['gw-0017', 'abag-03', 'T4.00123', 'a:b_c', 'x'.repeat(64)]) expect(re.test(ok), ok).toBe(true)
    for (const bad of ['', 'a/b', 'a+', '#', 'a b', 'a\0b', 'x'.repeat(65), '$SYS']) expect(re.test(bad), bad).toBe(false)
  })
})

describe('payload encoding [MQTT-4.3]', () => {
  const values: [string, unknown][] = [
    ['alarm', alarm],
    ['status', status('T4-00123', 57)],
    ['gateway event with nulls', { ...alarm, id: 'gw-0017:g12', kind: 'relay', class: 'request', code: null, terminal: null, address: null, number: null, text: '巴图家：两只羊走失。' }],
    ['death', { v: 1, type: 'death', gateway: 'gw-0017', online: false, session: 28 }],
    ['command', { v: 1, id: 'c-1', type: 'time', now: 1767252645123, at: -1, auth: { nested: [true, false, null, -40, 2 ** 40] } }],
  ]

  it.each(values)('round-trips %s in both encodings', (_, value) => {
    for (const enc of ENCODINGS) expect(decodePayload(encodePayload(value, enc))).toEqual(value)
  })

  it.each(values)('writes %s as plain CBOR that a strict independent reader gives back as the JSON form', (_, value) => {
    const bytes = encodePayload(value, 'cbor')
    expect(bytes[0]! >= 0xa0 && bytes[0]! <= 0xbb).toBe(true) // a map, never mistaken for JSON
    expect(readPlainCbor(bytes)).toEqual(JSON.parse(encodePayload(value, 'json').toString('utf8')))
  })

  it('writes integers of 2^32 and more (UNIX ms) as 8-byte CBOR integers (1b / 3b), never as floats', () => {
    const b = encodePayload({ at: T, n: 0xffffffff, m: 2 ** 32, t: -18, neg: -T, low: -(2 ** 32), lower: -(2 ** 32) - 1 }, 'cbor')
    const hex = b.toString('hex')
    expect(hex).toContain('6261741b0000019b7876a4c0') // "at": 1b 00 00 01 9b 78 76 a4 c0
    expect(hex).toContain('616e1affffffff') // "n": 1a ffffffff
    expect(hex).toContain('616d1b0000000100000000') // "m": 2^32 is 1b
    expect(hex).toContain('617431') // "t": -18 is 31
    expect(hex).toContain('636e65673b0000019b7876a4bf') // "neg": -T is 3b (T - 1)
    expect(hex).toContain('636c6f773affffffff') // "low": -2^32 still fits 3a
    expect(hex).toContain('656c6f7765723b0000000100000000') // "lower": 3b
    expect(hex).not.toMatch(/fb/)
    expect(readPlainCbor(b)).toEqual({ at: T, n: 0xffffffff, m: 2 ** 32, t: -18, neg: -T, low: -(2 ** 32), lower: -(2 ** 32) - 1 })
    expect(decodePayload(b)).toEqual({ at: T, n: 0xffffffff, m: 2 ** 32, t: -18, neg: -T, low: -(2 ** 32), lower: -(2 ** 32) - 1 })
  })

  it('reads 8-byte CBOR integers as numbers, and integral floats too, as other encoders write them', () => {
    const u64 = Buffer.alloc(8)
    u64.writeBigUInt64BE(BigInt(T))
    expect(decodePayload(Buffer.concat([Buffer.from('a16161 1b'.replaceAll(' ', ''), 'hex'), u64]))).toEqual({ a: T })
    const n64 = Buffer.alloc(8)
    n64.writeBigUInt64BE(BigInt(T - 1))
    expect(decodePayload(Buffer.concat([Buffer.from('a16161 3b'.replaceAll(' ', ''), 'hex'), n64]))).toEqual({ a: -T })
    const f64 = Buffer.alloc(8)
    f64.writeDoubleBE(T)
    expect(decodePayload(Buffer.concat([Buffer.from('a16161 fb'.replaceAll(' ', ''), 'hex'), f64]))).toEqual({ a: T })
  })

  it('writes JSON without white space, as UTF-8', () => {
    const s = encodePayload({ v: 1, text: '白灾 预警' }, 'json')
    expect(s.toString('utf8')).toBe('{"v":1,"text":"白灾 预警"}')
    expect(s[0]).toBe(0x7b)
  })

  it('tells JSON from CBOR by the first byte: a CBOR map head (a0-bf) is CBOR, anything else JSON', () => {
    const value = { v: 1, id: 'c-1', type: 'rebirth' }
    for (const lead of ['', ' ', '\n', '\r\n', '\t']) expect(decodePayload(utf8(`${lead}${JSON.stringify(value)}`))).toEqual(value)
    expect(decodePayload(cbor(value))).toEqual(value)
    const wide = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, i]))
    expect(decodePayload(cbor(wide))).toEqual(wide)
    // The shortest map heads, as other encoders write them, and an indefinite-length map (bf ... ff).
    expect(decodePayload(Buffer.from('a0', 'hex'))).toEqual({})
    expect(decodePayload(Buffer.from('a3 6176 01 626964 63632d31 6474797065 6772656269727468'.replaceAll(' ', ''), 'hex'))).toEqual(value)
    expect(decodePayload(Buffer.from('bf617601ff', 'hex'))).toEqual({ v: 1 })
    // JSON that is not an object decodes (and parseCommand rejects it); CBOR that is not a map is read as JSON and fails.
    expect(decodePayload(utf8('[1,2]'))).toEqual([1, 2])
    expect(decodePayload(utf8('"rebirth"'))).toBe('rebirth')
    for (const notAMap of [cbor([1, 2]), cbor('rebirth'), cbor(7), new Uint8Array([0xf6]), new Uint8Array([0xd9, 0xd9, 0xf7, ...cbor(value)])]) {
      expect(() => decodePayload(notAMap), Buffer.from(notAMap).toString('hex')).toThrow()
    }
    expect(() => decodePayload(utf8('{"v":1'))).toThrow()
    expect(() => decodePayload(new Uint8Array(0))).toThrow()
  })

  it('a JSON text never starts with a CBOR map head: every first byte of UTF-8 JSON is outside a0-bf', () => {
    // JSON starts with white space or an ASCII character; a0-bf are UTF-8 continuation bytes.
    for (const text of ['{}', ' {}', '[]', '"é"', '0', 'null', 'true']) {
      const b = utf8(text)[0]!
      expect(b >= 0xa0 && b <= 0xbf).toBe(false)
    }
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const b = encodePayload(v, 'json')[0]!
        return !(b >= 0xa0 && b <= 0xbf)
      }),
      { seed: 20260104, numRuns: 500 },
    )
  })

  it('decodes CBOR map keys that could pollute a prototype as harmless own keys', () => {
    // {"__proto__": {"polluted": 1}} in CBOR
    const bytes = new Uint8Array(Buffer.from('a1695f5f70726f746f5f5fa168706f6c6c7574656401', 'hex'))
    const v = decodePayload(bytes) as Record<string, unknown>
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})

describe('parseCommand [MQTT-5.1] [MQTT-5.2]', () => {
  it('has a valid fixture of every command type', () => {
    expect(new Set(COMMANDS.map((c) => c.payload.type))).toEqual(new Set(Object.keys(COMMAND_SCHEMAS)))
  })

  describe.each(ENCODINGS)('accepts every command type in %s', (enc) => {
    it.each(COMMANDS)('$name', ({ payload }) => {
      const r = parseCommand(encodePayload(payload, enc))
      expect(r.ok ? null : `${r.code}: ${r.message}`).toBeNull()
      // Unknown fields and auth are ignored: accepted, and passed through untouched.
      expect(r.ok && r.command).toEqual(payload)
      expect(r.ok && r.command.type).toBe(payload.type)
    })
  })

  it('accepts a command of exactly MAX_COMMAND_BYTES', () => {
    const base = JSON.stringify({ v: 1, id: 'c-1', type: 'rebirth', pad: '' })
    const payload = utf8(base.replace('"pad":""', `"pad":"${'x'.repeat(MAX_COMMAND_BYTES - base.length)}"`))
    expect(payload.length).toBe(MAX_COMMAND_BYTES)
    expect(parseCommand(payload).ok).toBe(true)
  })

  it('accepts a receipt of 1000 ids (the most), and of 1000 ids of the form T4-00123:42 within the size limit', () => {
    const payload = json({ v: 1, id: 'c-1', type: 'receipt', ids: ids(1000) })
    expect(payload.length).toBeLessThanOrEqual(MAX_COMMAND_BYTES)
    expect(parseCommand(payload).ok).toBe(true)
  })

  it('fits a receipt of 1000 ids of the longest form in MAX_COMMAND_BYTES, in both encodings, as MQTT.md says [MQTT-4.10]', () => {
    // The longest alarm id: a terminal id of 32 ASCII characters ([LINK-5.2]) and a 10-digit event number.
    const longest = Array.from({ length: 1000 }, (_, i) => `${'T'.repeat(32)}:${String(4_294_967_295 - i)}`)
    expect(longest[0]!.length).toBe(43)
    const receipt = { v: 1, id: 'c-20260101-000000000001', type: 'receipt', ids: longest, at: T }
    for (const enc of ENCODINGS) {
      const payload = encodePayload(receipt, enc)
      expect(payload.length, enc).toBeLessThanOrEqual(MAX_COMMAND_BYTES)
      expect(payload.length, enc).toBeGreaterThan(MAX_COMMAND_BYTES / 2) // the limit has room, but not much more than needed
      expect(parseCommand(payload).ok).toBe(true)
    }
    expect(MAX_COMMAND_BYTES).toBe(64 * 1024)
    expect(spec).toContain('1000 ids of the longest form')
  })

  it.each(REJECTIONS)('rejects $name with $code', ({ payload, code, id }) => {
    const r = parseCommand(payload)
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.code).toBe(code)
    expect(r.id).toBe(id)
    expect(r.message.length).toBeGreaterThan(0)
  })

  it('rejects with every code of COMMAND_ERROR_CODES that parseCommand can give [MQTT-5.2]', () => {
    const afterParsing = new Set(['CMD_UNKNOWN_ALERT', 'CMD_FAILED', 'CMD_BAD_VALUE', 'CMD_STALE', 'CMD_RETAINED'])
    expect(new Set(REJECTIONS.map((r) => r.code))).toEqual(new Set(COMMAND_ERROR_CODES.filter((c) => !afterParsing.has(c))))
    for (const c of afterParsing) expect(COMMAND_ERROR_CODES).toContain(c)
  })

  it('never throws, whatever the payload (seeded: the same cases every run)', () => {
    const known = new Set(REJECTIONS.map((r) => r.code))
    const valid = COMMANDS.flatMap(({ payload }) => ENCODINGS.map((e) => new Uint8Array(encodePayload(payload, e))))
    const check = (bytes: Uint8Array) => {
      const r = parseCommand(bytes)
      if (!r.ok) expect(known.has(r.code)).toBe(true)
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), check), { seed: 20260101, numRuns: 3000 })
    fc.assert(
      fc.property(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (bytes, edits) => {
        const b = bytes.slice()
        for (const [at, value] of edits) b[at % b.length] = value
        check(b)
      }),
      { seed: 20260102, numRuns: 3000 },
    )
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(...ENCODINGS), (value, enc) => check(new Uint8Array(encodePayload(value, enc)))),
      { seed: 20260103, numRuns: 1000 },
    )
  })

  /**
   * A minimal CBOR encoder of the kind most libraries are (Python's cbor2 among them):
   * shortest heads, so a UNIX-millisecond time is an 8-byte integer (1b). Independent of
   * cbor-x, so that the gateway is tested against CBOR it did not write.
   */
  function cborShortest(v: unknown): Buffer {
    const head = (major: number, n: number | bigint): Buffer => {
      const m = major << 5
      const b = BigInt(n)
      if (b < 24n) return Buffer.from([m | Number(b)])
      if (b < 0x100n) return Buffer.from([m | 24, Number(b)])
      if (b < 0x10000n) return Buffer.from([m | 25, Number(b >> 8n), Number(b & 0xffn)])
      const w = b < 0x100000000n ? 4 : 8
      const out = Buffer.alloc(1 + w)
      out[0] = m | (w === 4 ? 26 : 27)
      if (w === 4) out.writeUInt32BE(Number(b), 1)
      else out.writeBigUInt64BE(b, 1)
      return out
    }
    if (v === null) return Buffer.from([0xf6])
    if (typeof v === 'boolean') return Buffer.from([v ? 0xf5 : 0xf4])
    if (typeof v === 'number') return v >= 0 ? head(0, v) : head(1, -1n - BigInt(v))
    if (typeof v === 'string') {
      const t = Buffer.from(v, 'utf8')
      return Buffer.concat([head(3, t.length), t])
    }
    if (Array.isArray(v)) return Buffer.concat([head(4, v.length), ...v.map(cborShortest)])
    const entries = Object.entries(v as Record<string, unknown>)
    return Buffer.concat([head(5, entries.length), ...entries.flatMap(([k, x]) => [cborShortest(k), cborShortest(x)])])
  }

  const now = Buffer.alloc(8)
  now.writeBigUInt64BE(1767252645123n)
  /** {"v":1,"id":"c-1","type":"time","now":1767252645123} with `now` as 1b + 8 bytes, written by hand. */
  const timeWithUint64 = Buffer.concat([Buffer.from('a4 6176 01 626964 63632d31 6474797065 6474696d65 636e6f77 1b'.replaceAll(' ', ''), 'hex'), now])

  it('a time command whose now is an 8-byte CBOR integer (1b) is plain CBOR [MQTT-4.3]', () => {
    expect(readPlainCbor(timeWithUint64)).toEqual({ v: 1, id: 'c-1', type: 'time', now: 1767252645123 })
    expect(cborShortest({ v: 1, id: 'c-1', type: 'time', now: 1767252645123 })).toEqual(timeWithUint64)
  })

  it('accepts a CBOR time command whose now is an 8-byte integer (1b), as cbor2 writes it [MQTT-4.3]', () => {
    const r = parseCommand(timeWithUint64)
    expect(r.ok ? r.command : r.message).toEqual({ v: 1, id: 'c-1', type: 'time', now: 1767252645123 })
  })

  it.each(COMMANDS)('accepts $name written with the shortest CBOR heads (1b for times), as other encoders write it', ({ payload }) => {
    const r = parseCommand(cborShortest(payload))
    expect(r.ok ? r.command : `${r.code}: ${r.message}`).toEqual(payload)
  })

  it('writes every command with integers only (no floats), the same values as the shortest-head form', () => {
    for (const { payload } of COMMANDS) expect(readPlainCbor(cbor(payload))).toEqual(readPlainCbor(cborShortest(payload)))
  })
})

describe('batches [MQTT-4.2]', () => {
  const { stage: _stage, ...event } = alarm
  const small: Batch = { v: 1, id: 'gw-0017:b1', gateway: 'gw-0017', items: [status('T4-00123', 1), { ...event, id: 'T4-00123:40', class: 'trouble', kind: 'mains-lost', code: 301 }] }

  it.each(ENCODINGS)('round-trips in %s, as one zstd frame', async (enc) => {
    const z = await encodeBatch(small, enc)
    expect(z.subarray(0, 4).toString('hex')).toBe('28b52ffd')
    expect(await decodeBatch(z)).toEqual(small)
    expect(Compile(mqtt.Batch).Check(await decodeBatch(z))).toBe(true)
  })

  it('compresses a batch of 500 statuses to less than a fifth', async () => {
    const full: Batch = { v: 1, id: 'gw-0017:b2', gateway: 'gw-0017', items: Array.from({ length: 500 }, (_, i) => status(`T4-${String(i).padStart(5, '0')}`, i)) }
    expect(Compile(mqtt.Batch).Check(full)).toBe(true)
    for (const enc of ENCODINGS) {
      const plain = encodePayload(full, enc)
      const z = await encodeBatch(full, enc)
      expect(z.length, `${enc}: ${z.length} of ${plain.length} bytes`).toBeLessThan(plain.length / 5)
      expect(await decodeBatch(z)).toEqual(full)
    }
  })

  it.each(ENCODINGS)('round-trips in %s uncompressed, the bare encoded map of a gateway without zstd', async (enc) => {
    const bare = await encodeBatch(small, enc, null)
    expect(bare).toEqual(encodePayload(small, enc))
    expect(enc === 'cbor' ? bare[0]! >= 0xa0 && bare[0]! <= 0xbf : bare[0] === 0x7b).toBe(true)
    expect(await decodeBatch(bare)).toEqual(small)
  })

  it('reads a zstd frame with the content size in its header (single segment, raw block), as other encoders write it', async () => {
    const encoded = encodePayload(small, 'cbor')
    expect(encoded.length).toBeGreaterThan(255)
    expect(encoded.length).toBeLessThan(256 + 65536)
    // Frame header: single segment, 2-byte content size (size - 256); one raw block, the last.
    const header = Buffer.from([...ZSTD_MAGIC, 0x60, 0, 0])
    header.writeUInt16LE(encoded.length - 256, 5)
    const block = Buffer.alloc(3)
    block.writeUIntLE(1 | (0 << 1) | (encoded.length << 3), 0, 3)
    expect(await decodeBatch(Buffer.concat([header, block, encoded]))).toEqual(small)
  })

  /** Rejects with a BatchDecodeError of `code`; resolves with it. */
  const refusal = async (payload: Uint8Array, code: BatchErrorCode, options?: { maxBytes?: number }) => {
    const err = await decodeBatch(payload, options).then(
      () => null,
      (e: unknown) => e,
    )
    expect(err, Buffer.from(payload.subarray(0, 16)).toString('hex')).toBeInstanceOf(BatchDecodeError)
    expect((err as BatchDecodeError).code).toBe(code)
    return err as BatchDecodeError
  }

  it('holds BATCH_MAX_DECOMPRESSED_BYTES to 1 MiB and refuses a batch one byte over the limit, compressed or not', async () => {
    expect(BATCH_MAX_DECOMPRESSED_BYTES).toBe(1024 * 1024)
    for (const enc of ENCODINGS) {
      const n = encodePayload(small, enc).length
      for (const compress of [referenceZstd, null]) {
        const payload = await encodeBatch(small, enc, compress)
        expect(await decodeBatch(payload, { maxBytes: n })).toEqual(small)
        const err = await refusal(payload, 'BATCH_TOO_LARGE', { maxBytes: n - 1 })
        expect(err.message).toContain(`the limit is ${n - 1}`)
      }
    }
  })

  it('refuses a zstd bomb (4 MiB of text in a few kilobytes), stopping soon after 1 MiB instead of decompressing all of it', async () => {
    const lines = Array.from({ length: 60_000 }, (_, i) => `relay ${i}: 巴图家两只羊走失 ${(i * 7919) % 1000}\n`).join('')
    const plain = Buffer.from(lines).subarray(0, 4 * 1024 * 1024)
    const bomb = await referenceZstd(plain)
    expect(bomb.length).toBeLessThan(plain.length / 8)
    const err = await refusal(bomb, 'BATCH_TOO_LARGE')
    const stoppedAfter = Number(/stopped after (\d+)/.exec(err.message)?.[1])
    expect(stoppedAfter).toBeGreaterThan(BATCH_MAX_DECOMPRESSED_BYTES)
    expect(stoppedAfter).toBeLessThanOrEqual(BATCH_MAX_DECOMPRESSED_BYTES + 128 * 1024) // one block at most past the limit
  })

  it('refuses a bomb of RLE blocks (1.2 GiB in 40 kB) from its block headers alone, before decompressing anything', async () => {
    // 10 000 RLE blocks of 128 KiB each: 3 bytes of header and 1 byte of content apiece.
    const rle = Buffer.alloc(4)
    rle.writeUIntLE(0 | (1 << 1) | ((128 * 1024) << 3), 0, 3)
    const blocks = Array.from({ length: 10_000 }, () => rle)
    const last = Buffer.from(rle)
    last[0]! |= 1
    blocks[blocks.length - 1] = last
    const bomb = Buffer.concat([Buffer.from([...ZSTD_MAGIC, 0x00, 0x58]), ...blocks]) // window 2 MiB, no content size
    expect(bomb.length).toBe(40_006)
    const err = await refusal(bomb, 'BATCH_TOO_LARGE')
    expect(err.message).toMatch(/would decompress to at least \d+ bytes/)
  })

  it('refuses a frame that says it holds more than 1 MiB, or asks for a window over 8 MiB, before allocating either', async () => {
    const emptyLastBlock = [0x01, 0x00, 0x00]
    // Single segment, 4-byte content size of 2 GiB: fzstd would allocate 2 GiB for its window.
    await refusal(Buffer.from([...ZSTD_MAGIC, 0xa0, 0x00, 0x00, 0x00, 0x80, ...emptyLastBlock]), 'BATCH_TOO_LARGE')
    // Window descriptor 2^30 (exponent 20), no content size.
    const err = await refusal(Buffer.from([...ZSTD_MAGIC, 0x00, 20 << 3, ...emptyLastBlock]), 'BATCH_TOO_LARGE')
    expect(err.message).toContain(`the limit is ${ZSTD_MAX_WINDOW_BYTES}`)
    // Within the limits, an empty frame is read, and is not a batch.
    await refusal(Buffer.from([...ZSTD_MAGIC, 0x00, 0x58, ...emptyLastBlock]), 'BATCH_UNDECODABLE')
  })

  it('refuses garbage and damaged frames with BATCH_UNDECODABLE', async () => {
    const z = await encodeBatch(small, 'cbor')
    const garbage: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['text', Buffer.from('not zstd at all')],
      ['bytes', Buffer.from([0xff, 0x00, 0x13, 0x37])],
      ['the magic number alone', Buffer.from(ZSTD_MAGIC)],
      ['a truncated frame', z.subarray(0, z.length - 5)],
      ['a frame and a byte after it', Buffer.concat([z, Buffer.from([0])])],
      ['two frames', Buffer.concat([z, z])],
      ['a skippable frame (not a batch)', Buffer.from([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])],
      ['a block of the reserved type', Buffer.from([...ZSTD_MAGIC, 0x00, 0x58, 0x07, 0x00, 0x00])],
      ['a frame that needs a dictionary', Buffer.from([...ZSTD_MAGIC, 0x01, 0x58, 0x07, 0x01, 0x00, 0x00])],
      ['a zstd frame of text', await referenceZstd(Buffer.from('not a map, not JSON'))],
      ['a CBOR array', encodePayload([small], 'cbor')],
      ['truncated CBOR', encodePayload(small, 'cbor').subarray(0, 40)],
      ['truncated JSON', encodePayload(small, 'json').subarray(0, 40)],
    ]
    for (const [name, payload] of garbage) {
      const err = await refusal(payload, 'BATCH_UNDECODABLE')
      expect(err.message, name).toMatch(/^batch of \d+ bytes: /)
    }
  })

  it('never fails but with a BatchDecodeError, whatever is done to a frame (seeded: the same cases every run)', async () => {
    const frames = await Promise.all(ENCODINGS.map((enc) => encodeBatch(small, enc)))
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...frames), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), async (frame, edits, cut) => {
        const b = Buffer.from(frame.subarray(0, Math.max(5, frame.length - (cut % 8))))
        for (const [at, value] of edits) b[4 + (at % (b.length - 4))] = value
        await decodeBatch(b).catch((e: unknown) => {
          if (!(e instanceof BatchDecodeError)) throw e
        })
      }),
      { seed: 20260105, numRuns: 2000 },
    )
  })
})

describe('schemas [MQTT-3.1] [MQTT-3.4] [MQTT-3.6] [MQTT-3.8]', () => {
  const uplink = Compile(mqtt.UplinkEvent)
  const terminalStatus = Compile(mqtt.TerminalStatus)

  it('accept the fixtures, and extra fields [MQTT-1.2]', () => {
    expect(uplink.Check(alarm)).toBe(true)
    expect(uplink.Check({ ...alarm, terminalTime: T - 1000, somethingNew: { a: 1 } })).toBe(true)
    expect(terminalStatus.Check(status('T4-00123', 7))).toBe(true)
  })

  it('name terminalTime and broadcast in UplinkEvent, both optional integers [MQTT-3.1]', () => {
    const read = { ...alarm, id: 'gw-0017:g14', class: 'status', kind: 'broadcast-read', code: null, number: null, text: 'broadcast 9001', broadcast: 9001 }
    delete (read as Partial<UplinkEvent>).stage
    expect(uplink.Check(read)).toBe(true)
    expect(uplink.Check({ ...read, broadcast: '9001' })).toBe(false)
    expect(uplink.Check({ ...alarm, terminalTime: T - 1000 })).toBe(true)
    expect(uplink.Check({ ...alarm, terminalTime: T + 0.5 })).toBe(false)
    expect(Object.keys((mqtt.UplinkEvent as unknown as { properties: object }).properties)).toEqual(expect.arrayContaining(['terminalTime', 'broadcast']))
  })

  it('reject what the contract forbids', () => {
    expect(uplink.Check({ ...alarm, v: 2 })).toBe(false)
    expect(uplink.Check({ ...alarm, class: 'urgent' })).toBe(false)
    expect(uplink.Check({ ...alarm, kind: 'status' })).toBe(false)
    expect(uplink.Check({ ...alarm, attempt: 0 })).toBe(false)
    expect(uplink.Check({ ...alarm, address: 255 })).toBe(false)
    expect(uplink.Check({ ...alarm, id: '' })).toBe(false)
    expect(uplink.Check({ ...alarm, time: { at: T } })).toBe(false)
    expect(terminalStatus.Check({ ...status('T4-00123', 7), heartbeats: 0 })).toBe(false)
    expect(terminalStatus.Check({ ...status('T4-00123', 7), class: 'trouble' })).toBe(false)
  })

  it('give every kind a class, and the Contact ID code of [MQTT-3.3]', () => {
    const kinds = [...Object.keys(EVENT_KINDS), ...Object.keys(GATEWAY_KINDS)]
    expect(new Set(Object.keys(CLASS_OF))).toEqual(new Set(kinds))
    for (const k of kinds) expect(CLASSES).toContain(CLASS_OF[k as keyof typeof CLASS_OF])
    expect(Object.entries(CLASS_OF).filter(([, c]) => c === 'alarm').map(([k]) => k).sort()).toEqual(['cancel', 'emergency', 'fire', 'medical', 'panic'])
  })
})

describe('MQTT.md agrees with the code', () => {
  it('defines every [MQTT-x.y] cited in protocol/*.ts, gateway/**/*.ts and platform/**/*.ts', () => {
    const sources = [...tsFiles(import.meta.dirname, false), ...tsFiles(join(root, 'gateway'), true), ...tsFiles(join(root, 'platform'), true)]
    const defs = new Set(defined)
    for (const f of sources) {
      for (const id of ruleIds(readFileSync(f, 'utf8'))) {
        expect(defs.has(id), `${f.slice(root.length + 1)} cites [${id}], which MQTT.md does not define`).toBe(true)
      }
    }
  })

  it('defines each rule id once, and every id it cites itself', () => {
    expect(defined.length).toBeGreaterThanOrEqual(30)
    expect(new Set(defined).size).toBe(defined.length)
    for (const id of ruleIds(spec)) expect(defined, `MQTT.md cites [${id}] without defining it`).toContain(id)
    for (const id of ['MQTT-2.2', 'MQTT-3.2', 'MQTT-3.3', 'MQTT-3.4', 'MQTT-4.1', 'MQTT-4.2', 'MQTT-5.1', 'MQTT-5.2']) expect(defined).toContain(id)
  })

  it('cites only [LINK-x.y] rules that PROTOCOL.md defines', () => {
    const link = readFileSync(join(import.meta.dirname, 'PROTOCOL.md'), 'utf8')
    for (const [id] of spec.matchAll(/LINK-\d+\.\d+/g)) expect(link, id).toContain(`**[${id}]`)
  })

  it('lists every topic of gatewayTopics() with its key', () => {
    for (const [key, topic] of Object.entries(gatewayTopics(DEFAULT_TOPIC_PREFIX, 'gw-0017', 'abag-03'))) {
      expect(spec).toContain(`| \`${topic}\` | \`${key}\` |`)
    }
    expect(spec).toContain(`\`${DEFAULT_TOPIC_PREFIX}\``)
    expect(spec).toContain(`\`${TOPIC_ID_PATTERN}\``)
  })

  it('lists every kind with its class, Contact ID code and qualifier', () => {
    for (const k of Object.keys(EVENT_KINDS) as (keyof typeof EVENT_KINDS)[]) {
      expect(spec).toContain(`| \`${k}\` | ${CLASS_OF[k]} | terminal | ${contactIdOf(k) ?? 'null'} | ${EVENT_KINDS[k].restore} |`)
    }
    for (const k of Object.keys(GATEWAY_KINDS) as (keyof typeof GATEWAY_KINDS)[]) {
      expect(spec).toContain(`| \`${k}\` | ${CLASS_OF[k]} | gateway | ${GATEWAY_KINDS[k].code ?? 'null'} | ${GATEWAY_KINDS[k].restore} |`)
    }
  })

  it('has a table row for every field of every schema', () => {
    const props = (s: unknown) => Object.keys((s as { properties: Record<string, unknown> }).properties)
    const schemas: [string, unknown][] = [
      ['UplinkEvent', mqtt.UplinkEvent],
      ['TerminalStatus', mqtt.TerminalStatus],
      ['TerminalStatus.latest', (mqtt.TerminalStatus as unknown as { properties: { latest: unknown } }).properties.latest],
      ['Time', mqtt.Time],
      ['Birth', mqtt.Birth],
      ['Batch', mqtt.Batch],
      ['Reply', mqtt.Reply],
      ['GatewayStatus', mqtt.GatewayStatus],
      ...Object.entries(COMMAND_SCHEMAS),
    ]
    for (const [name, s] of schemas) {
      for (const p of props(s)) expect(spec, `${name}.${p}`).toMatch(new RegExp(`^\\|(?: \`[a-z-]+\` \\|| \\|)? \`${p}\` \\|`, 'm'))
    }
  })

  it('lists exactly the command error codes of COMMAND_ERROR_CODES, which has every code the gateway uses [MQTT-5.2]', () => {
    const listed = [...spec.matchAll(/^\| [0-9–] \| `(CMD_[A-Z_]+)` \|/gm)].map((x) => x[1]!)
    expect(listed).toEqual([...COMMAND_ERROR_CODES])
    const contract = tsFiles(import.meta.dirname, false).filter((f) => /\/mqtt(-[a-z-]+)?\.ts$/.test(f))
    expect(contract).toContain(join(import.meta.dirname, 'mqtt-commands.ts'))
    const sources = [...contract, ...tsFiles(join(root, 'gateway'), true)]
    const used = new Set(sources.flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/'(CMD_[A-Z_]+)'/g)].map((x) => x[1]!)))
    for (const c of used) expect(COMMAND_ERROR_CODES, c).toContain(c)
  })

  it('states the command size limit the code has', () => {
    expect(spec).toContain(`over ${spaced(MAX_COMMAND_BYTES)} bytes (\`MAX_COMMAND_BYTES\`)`)
    expect(spec).toContain(`command size limit of ${spaced(MAX_COMMAND_BYTES)} bytes`)
    expect(spec).not.toMatch(/16 384|16384/)
  })

  it('states the batch limits the code has [MQTT-4.2]', () => {
    expect(BATCH_MAX_BYTES).toBe(64 * 1024)
    expect(spec).toContain(`at most ${BATCH_MAX_ITEMS} items (\`BATCH_MAX_ITEMS\`) and at most 64 KiB (${spaced(BATCH_MAX_BYTES)} bytes,`)
  })

  it('states the two forms of a batch, the limit on what one decodes to, and the codes of a refusal [MQTT-4.2]', () => {
    const rule = spec.slice(spec.indexOf('**[MQTT-4.2]'), spec.indexOf('**[MQTT-4.3]'))
    expect(rule).toContain(`\`${ZSTD_MAGIC.map((b) => b.toString(16)).join(' ')}\`, the zstd magic number`)
    expect(rule).toContain('Receivers MUST accept both forms')
    expect(BATCH_MAX_DECOMPRESSED_BYTES).toBe(1024 * 1024)
    expect(rule).toContain(`more\nthan 1 MiB (${spaced(BATCH_MAX_DECOMPRESSED_BYTES)} bytes, \`BATCH_MAX_DECOMPRESSED_BYTES\`)`)
    expect(ZSTD_MAX_WINDOW_BYTES).toBe(8 * 1024 * 1024)
    expect(rule).toContain('window over 8 MiB (`ZSTD_MAX_WINDOW_BYTES`')
    expect([...rule.matchAll(/^\| `(BATCH_[A-Z_]+)` \|/gm)].map((x) => x[1])).toEqual([...BATCH_ERROR_CODES])
    expect(spec.replace(/\s+/g, ' ')).toContain('`compression`, how it compresses its batches ([MQTT-4.2])')
  })

  it('states the range of every config setting the schema has [MQTT-5.9]', () => {
    const props = (mqtt.Configure as unknown as { properties: Record<string, { minimum: number; maximum: number }> }).properties
    for (const k of ['heartbeat', 'supervision', 'receiptTimeout', 'statusInterval']) {
      const { minimum, maximum } = props[k]!
      expect(spec, k).toContain(`| \`${k}\` | integer ${spaced(minimum)}–${spaced(maximum)}, s |`)
    }
    const { minimum, maximum } = props.receiptTimeout!
    expect(spec).toContain(`\`config.receiptTimeout\`, ${spaced(minimum)}–${spaced(maximum)} s`)
  })

  it('states the broadcast text limit: what 15 DISPLAY parts hold [MQTT-5.7]', () => {
    const most = DISPLAY_TEXT_MAX_BYTES * DISPLAY_MAX_PARTS
    expect(spec).toContain(`| \`text\` | text, 1–${most} characters, within ${DISPLAY_MAX_PARTS} DISPLAY parts |`)
    expect(splitDisplayText('白'.repeat(most / 3))).toEqual({ parts: Array(DISPLAY_MAX_PARTS).fill('白'.repeat(DISPLAY_TEXT_MAX_BYTES / 3)), truncated: false })
    expect(parseCommand(json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: 'x'.repeat(most), urgency: 'info' })).ok).toBe(true)
    expect(parseCommand(json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: '白'.repeat(most / 3 + 1), urgency: 'info' })).ok).toBe(false)
  })

  it('lists the seven stages of the code, all set by the gateway, in order [MQTT-4.7]', () => {
    const section = spec.slice(spec.indexOf('**[MQTT-4.7]'), spec.indexOf('### What the platform MUST do'))
    const rows = [...section.matchAll(/^\| `([a-z]+)` \|/gm)].map((x) => x[1]!)
    expect(rows).toEqual(Object.keys(STAGES))
    expect(section).toContain('All seven are set by the gateway')
  })

  it('has worked examples of every payload and every command type', () => {
    const names = new Set(EXAMPLES.map((e) => e.schema))
    for (const n of ['UplinkEvent', 'TerminalStatus', 'Birth', 'Reply', 'Batch', 'GatewayStatus']) expect(names).toContain(n)
    const types = new Set(EXAMPLES.filter((e) => e.arrow === '<-').map((e) => (JSON.parse(e.json) as { type: string }).type))
    expect(types).toEqual(new Set(Object.keys(COMMAND_SCHEMAS)))
    const states = new Set(EXAMPLES.filter((e) => e.schema === 'Birth').map((e) => (JSON.parse(e.json) as { type: string }).type))
    expect(states).toEqual(new Set(['birth', 'death']))
  })

  describe.each(EXAMPLES.map((e, i) => [`${i + 1}. ${e.schema} ${e.arrow} ${e.topic}`, e] as const))('worked example %s', (_, e) => {
    const value = JSON.parse(e.json) as Record<string, unknown>

    it('is what the code encodes, in JSON and in CBOR', () => {
      expect(encodePayload(value, 'json').toString('utf8')).toBe(e.json)
      expect(Buffer.from(hexBytes(e.cbor)).toString('hex')).toBe(encodePayload(value, 'cbor').toString('hex'))
      expect(decodePayload(hexBytes(e.cbor))).toEqual(value)
      expect(readPlainCbor(hexBytes(e.cbor))).toEqual(value)
    })

    it('passes its schema', () => {
      const schema = schemaOf(e.schema)
      expect(schema, `${e.schema} is not a schema of mqtt.ts`).toBeDefined()
      expect(value.v).toBe(1)
      const c = Compile(schema!)
      expect(c.Check(value) ? null : [...c.Errors(value)][0]).toBeNull()
    })

    it('goes on the topic and in the class the contract says', () => {
      const t = gatewayTopics(DEFAULT_TOPIC_PREFIX, 'gw-0017', 'abag-03')
      if (e.arrow === '<-') {
        expect([t.command, t.areaCommand, t.allCommand]).toContain(e.topic)
        for (const enc of ENCODINGS) {
          const r = parseCommand(encodePayload(value, enc))
          expect(r.ok && r.command).toEqual(value)
        }
        expect(COMMAND_SCHEMAS[value.type as CommandType]).toBe(schemaOf(e.schema))
        return
      }
      const expected = { UplinkEvent: value.class === 'alarm' ? t.alert : t.event, TerminalStatus: t.event, Birth: t.state, Reply: t.reply, Batch: t.batch, GatewayStatus: t.status }[e.schema]
      expect(e.topic).toBe(expected)
      if (e.schema === 'UplinkEvent') {
        const kind = value.kind as keyof typeof CLASS_OF
        expect(value.class).toBe(CLASS_OF[kind])
        expect(value.code).toBe(kind in EVENT_KINDS ? contactIdOf(kind as keyof typeof EVENT_KINDS) : GATEWAY_KINDS[kind as keyof typeof GATEWAY_KINDS].code)
        expect(value.stage !== undefined).toBe(value.class === 'alarm')
      }
    })

    if (e.zstd) {
      it('decompresses (zstd line) to the batch; the cbor line alone is the same batch from a gateway without zstd', async () => {
        expect(await decodeBatch(Buffer.from(hexBytes(e.zstd!)))).toEqual(value)
        expect(await decodeBatch(hexBytes(e.cbor))).toEqual(value)
        expect((value.items as { class: string }[]).every((i) => i.class !== 'alarm')).toBe(true)
      })
    }
  })

  it('gives, for every rejection example of [MQTT-5.2], the code and message parseCommand gives', () => {
    const rows = [...spec.matchAll(/^\| `(json|hex) (.+?)` \| `(CMD_[A-Z_]+)` \| (null|`[^`]*`) \| (.*) \|$/gm)]
    expect(rows.length).toBeGreaterThanOrEqual(14)
    // After this prefix comes the decoder's own message (JSON.parse or cbor-x), whose wording
    // depends on the Node.js version: MQTT.md shows Node.js 20's, and says so.
    const decoder = 'payload is neither JSON nor CBOR: '
    for (const [, form, text, code, id, message] of rows) {
      const r = parseCommand(form === 'json' ? utf8(text!) : hexBytes(text!))
      expect(r.ok).toBe(false)
      if (r.ok) continue
      expect(r.code, text).toBe(code)
      expect(r.id === null ? 'null' : `\`${r.id}\``).toBe(id)
      const shown = visible(r.message).replaceAll('`', "'")
      if (r.code === 'CMD_UNDECODABLE' && !process.versions.node.startsWith('20.')) expect(shown.slice(0, decoder.length)).toBe(message!.slice(0, decoder.length))
      else expect(shown, text).toBe(message)
    }
    expect(spec).toContain('these are from Node.js 20')
  })
})
