/**
 * What the MQTT contract's tests share (mqtt-*.test.ts): MQTT.md itself, the two encodings,
 * a strict reader of plain CBOR independent of cbor-x [MQTT-4.3], and the fixtures (an alarm,
 * a terminal status) that the encoding, batch and uplink schema tests encode. Not a test
 * file itself; tsconfig.json leaves *.suite.ts out of the build, and no-io.test.ts out of
 * the protocol's shipped files.
 */

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { encodePayload, type Encoding, type TerminalStatus, type UplinkEvent } from './mqtt.js'

export const spec = readFileSync(join(import.meta.dirname, 'MQTT.md'), 'utf8')
export const ENCODINGS: Encoding[] = ['json', 'cbor']
export const utf8 = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'))

/**
 * A strict reader of the CBOR the contract promises [MQTT-4.3], independent of cbor-x:
 * maps with text keys, text, integers, booleans, null, arrays, and (only if `floats`)
 * floats with an integral value; no tags, no byte strings, no indefinite lengths, nothing
 * after the item. If it reads a payload, so does any CBOR decoder, as plain data.
 */
export function readPlainCbor(bytes: Uint8Array, { floats = false } = {}): unknown {
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

export const T = 1767252600000
export const alarm: UplinkEvent = {
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
export const status = (terminal: string, n: number): TerminalStatus => ({
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
/** A command or a value as the platform writes it, in JSON and in CBOR. */
export const json = (o: unknown) => utf8(JSON.stringify(o))
export const cbor = (o: unknown) => new Uint8Array(encodePayload(o, 'cbor'))
