import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { VECTOR_FILES, type Vector } from '../tools/vectors-gen.js'
import { cobsDecode, cobsEncode } from './cobs.js'
import { crc32c } from './crc32c.js'
import { FrameDecoder, MAX_ENCODED, MAX_FRAME, decodeFrame, encodeFrame, encodeWire, type DecodeResult } from './codec.js'
import { LocalProtocolError } from './errors.js'

const dir = join(import.meta.dirname, 'vectors')
const files = readdirSync(dir).filter((f) => f.endsWith('.json'))
const vectors: [string, Vector][] = files.flatMap((f) => (JSON.parse(readFileSync(join(dir, f), 'utf8')) as Vector[]).map((v) => [f, v] as [string, Vector]))
const bytes = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'))

function decodeAll(chunks: Uint8Array[]): DecodeResult[] {
  const d = new FrameDecoder()
  const out: DecodeResult[] = []
  for (const c of chunks) {
    d.push(c)
    for (let r = d.next(); r; r = d.next()) out.push(r)
  }
  return out
}

function expectVector(results: DecodeResult[], v: Vector): void {
  expect(results).toHaveLength(1)
  const r = results[0]!
  if (v.message) {
    expect(r.kind === 'error' ? r.error.message : r.kind).toBe('frame')
    expect(r.kind === 'frame' && r.frame).toEqual(v.message)
  } else {
    expect(r.kind).toBe('error')
    expect(r.kind === 'error' && r.error.code).toBe(v.error)
  }
}

describe('test vectors [LINK-2.1] [LINK-3.1] [LINK-5.1]', () => {
  it('has at least 30 vectors covering every message type and every wire error code', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(30)
    const types = new Set(vectors.flatMap(([, v]) => (v.message ? [v.message.message.type] : [])))
    expect([...types].sort()).toEqual(['ACK', 'CONFIG', 'DISPLAY', 'DISPLAY_READ', 'EVENT', 'HEARTBEAT', 'HELLO', 'INDICATE', 'NAK', 'PING', 'TIME', 'WELCOME'])
    const codes = new Set(vectors.flatMap(([, v]) => (v.error ? [v.error] : [])))
    expect([...codes].sort()).toEqual([
      'LINK_BAD_CBOR',
      'LINK_BAD_COBS',
      'LINK_BAD_CRC',
      'LINK_BAD_HEADER',
      'LINK_BAD_SCHEMA',
      'LINK_BAD_VERSION',
      'LINK_OVERSIZE',
      'LINK_TOO_SHORT',
      'LINK_UNKNOWN_TYPE',
    ])
  })

  it('the files on disk are what the generator makes (run `npm run vectors` after a change)', () => {
    for (const [file, make] of Object.entries(VECTOR_FILES)) {
      expect(JSON.parse(readFileSync(join(dir, file), 'utf8')), file).toEqual(JSON.parse(JSON.stringify(make())))
    }
  })

  describe.each(vectors)('%s: %o', (_file, v) => {
    it('decodes fed whole', () => expectVector(decodeAll([bytes(v.hex)]), v))

    it('decodes fed byte by byte', () => {
      const b = bytes(v.hex)
      expectVector(decodeAll([...b].map((x) => new Uint8Array([x]))), v)
    })

    it('decodes with trailing garbage, and the garbage is reported only once delimited', () => {
      const garbage = new Uint8Array([0x13, 0x37, 0xff, 0x42])
      const results = decodeAll([bytes(v.hex), garbage])
      expectVector(results, v)
      const more = decodeAll([bytes(v.hex), garbage, new Uint8Array([0])])
      expect(more).toHaveLength(2)
      expect(more[1]!.kind).toBe('error')
    })
  })

  const encodable = vectors.filter(([, v]) => v.message && !v.decodeOnly)
  it.each(encodable)('%s: %o encodes to the same bytes', (_file, v) => {
    expect(Buffer.from(encodeWire(v.message!)).toString('hex')).toBe(v.hex)
  })
})

describe('CRC-32C [LINK-3.1]', () => {
  /** Bit-at-a-time, as PROTOCOL.md gives it for small MCUs: a second, independent implementation. */
  function crcBitwise(data: Uint8Array): number {
    let crc = 0xffffffff
    for (const b of data) {
      crc ^= b
      for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1
    }
    return (crc ^ 0xffffffff) >>> 0
  }

  it('has the catalogue check value 0xE3069283 for "123456789"', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283)
  })

  it('matches the bitwise form over every vector frame', () => {
    for (const [, v] of vectors) {
      const b = bytes(v.hex)
      expect(crc32c(b)).toBe(crcBitwise(b))
    }
  })

  it('matches published iSCSI test patterns (RFC 3720 B.4)', () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa)
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43)
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e)
  })
})

describe('COBS [LINK-2.1]', () => {
  // Examples from Cheshire & Baker and the Wikipedia article.
  const cases: [string, string][] = [
    ['00', '0101'],
    ['0000', '010101'],
    ['001100', '01021101'],
    ['11223300', '0411223301'],
    ['11220033', '0311220233'],
  ]
  it.each(cases)('%s <-> %s', (plain, encoded) => {
    expect(Buffer.from(cobsEncode(bytes(plain))).toString('hex')).toBe(encoded)
    expect(Buffer.from(cobsDecode(bytes(encoded))).toString('hex')).toBe(plain)
  })

  it('round-trips a 254-byte run without zeros and longer blocks', () => {
    for (const n of [253, 254, 255, 508, 1000]) {
      const plain = Uint8Array.from({ length: n }, (_, i) => (i % 255) + 1)
      const enc = cobsEncode(plain)
      expect(enc.includes(0)).toBe(false)
      expect(cobsDecode(enc)).toEqual(plain)
    }
  })
})

describe('encoding our own messages', () => {
  it('refuses a message that fails its schema, naming the field (our bug, thrown)', () => {
    expect(() => encodeFrame({ dst: 0, src: 1, seq: 0, message: { type: 'HEARTBEAT', uptime: -1, mains: true } })).toThrow(LocalProtocolError)
    expect(() => encodeFrame({ dst: 0, src: 1, seq: 0, message: { type: 'HEARTBEAT', uptime: -1, mains: true } })).toThrow(/uptime/)
    expect(() => encodeFrame({ dst: 256, src: 1, seq: 0, message: { type: 'PING' } })).toThrow(/dst/)
  })

  it('counts text limits in UTF-8 bytes, not characters [LINK-5.8]', () => {
    const display = (text: string) => encodeFrame({ dst: 3, src: 0, seq: 0, message: { type: 'DISPLAY', id: 1, text, urgency: 'info' } })
    expect(() => display('暴'.repeat(60))).not.toThrow() // 180 bytes
    expect(() => display('暴'.repeat(61))).toThrow(/at most 180 bytes/) // 183 bytes in 61 characters
  })

  it('keeps every frame within MAX_FRAME and every wire frame within the MCU buffer', () => {
    const text = 'x'.repeat(180)
    const raw = encodeFrame({ dst: 3, src: 0, seq: 0, message: { type: 'DISPLAY', id: 0xffffffff, text, urgency: 'urgent', expires: 0xffffffff, part: 15, parts: 15 } })
    expect(raw.length).toBeLessThanOrEqual(MAX_FRAME)
    expect(cobsEncode(raw).length).toBeLessThanOrEqual(MAX_ENCODED)
    expect(decodeFrame(raw).kind).toBe('frame')
  })
})

describe('stream decoder memory [LINK-2.4]', () => {
  it('never holds more than MAX_ENCODED bytes, reports one error per undelimited run, and resynchronises', () => {
    const d = new FrameDecoder()
    const results: DecodeResult[] = []
    for (let i = 0; i < 10_000; i++) {
      d.push(new Uint8Array([0x55]))
      expect(d.buffered).toBeLessThanOrEqual(MAX_ENCODED)
      for (let r = d.next(); r; r = d.next()) results.push(r)
    }
    expect(results.map((r) => r.kind === 'error' && r.error.code)).toEqual(['LINK_OVERSIZE'])
    d.push(encodeWire({ dst: 0, src: 3, seq: 0, message: { type: 'PING' } }))
    const r = d.next()
    expect(r?.kind).toBe('frame')
  })
})
