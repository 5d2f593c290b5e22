/**
 * Payload encoding (mqtt-encoding.ts) [MQTT-4.3]: JSON and CBOR both ways, CBOR as plain
 * data that the strict reader of mqtt.suite.ts gives back, UNIX ms as 8-byte integers, JSON
 * told from CBOR by the first byte, and no prototype pollution from CBOR map keys.
 */

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodePayload, encodePayload } from './mqtt.js'
import { ENCODINGS, T, alarm, cbor, readPlainCbor, status, utf8 } from './mqtt.suite.js'

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
