/**
 * parseCommand (mqtt-commands.ts) [MQTT-5.1] [MQTT-5.2]: a valid command of every type in
 * both encodings, the size limit and the largest receipt [MQTT-4.10], every rejection with
 * its code, no throw whatever the payload (seeded), and CBOR written with the shortest heads
 * as other encoders write it. The fixtures, COMMANDS and REJECTIONS, are here; the rejection
 * examples of MQTT.md are checked in mqtt-spec.test.ts.
 */

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { COMMAND_ERROR_CODES, COMMAND_SCHEMAS, MAX_COMMAND_BYTES, encodePayload, parseCommand } from './mqtt.js'
import { ENCODINGS, T, cbor, json, readPlainCbor, spec, utf8 } from './mqtt.suite.js'

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
  { name: 'key-rotate [MQTT-5.13]', payload: { v: 1, id: 'c-15k', type: 'key-rotate', key: '21fe31dfa154a261' } },
  { name: 'resolved, the body of a signed command [MQTT-5.12]', payload: { v: 1, id: 'c-8s', type: 'resolved', alert: 'T4-00123:42', aud: 'gw/gw-0017', seq: 1767252645000, exp: 1767253245000 } },
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
  {
    name: 'broadcast expires after 2106',
    payload: json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: 'x', urgency: 'info', expires: 4_294_967_296_000 }),
    code: 'CMD_BAD_SCHEMA',
    id: 'c-1',
  },
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
  {
    name: 'broadcast of 901 Chinese characters (a 16th DISPLAY part)',
    payload: json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: '白'.repeat(901), urgency: 'urgent' }),
    code: 'CMD_BAD_SCHEMA',
    id: 'c-1',
  },
  { name: 'broadcast of 2701 Latin letters', payload: cbor({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: 'x'.repeat(2701), urgency: 'info' }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
  {
    name: 'broadcast within 2700 characters that the gateway would split into 16 parts',
    payload: json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: `${'x'.repeat(179)}é`.repeat(15), urgency: 'info' }),
    code: 'CMD_BAD_SCHEMA',
    id: 'c-1',
  },
  { name: 'empty broadcast text', payload: json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: '', urgency: 'info' }), code: 'CMD_BAD_SCHEMA', id: 'c-1' },
]

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
    // The codes of signed commands [MQTT-5.12] are the gateway's (gateway/commands/auth.ts), tested in gateway-signing.test.ts.
    const afterParsing = new Set([
      'CMD_UNKNOWN_ALERT',
      'CMD_FAILED',
      'CMD_BAD_VALUE',
      'CMD_STALE',
      'CMD_RETAINED',
      'CMD_UNSIGNED',
      'CMD_UNKNOWN_KEY',
      'CMD_BAD_SIGNATURE',
      'CMD_WRONG_AUDIENCE',
      'CMD_EXPIRED',
      'CMD_REPLAYED',
    ])
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
