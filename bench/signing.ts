/**
 * The cost of signed commands [MQTT-5.12]: microseconds per Ed25519 sign (the platform's
 * side) and per verify (the gateway's, on every command), and the bytes the envelope adds
 * to a typical command (a `resolved` with a text) in CBOR and in JSON, `aud`, `seq` and
 * `exp` included. The baseline of each size is the same command unsigned.
 */

import { generateKeyPairSync } from 'node:crypto'
import { decodePayload, encodePayload, openEnvelope, signCommand, verifyBody } from '../protocol/mqtt.js'
import { metric, round, type Benchmark, type Metric } from './lib/report.js'

const COMMAND = { v: 1, id: 'c-20260101-0004', type: 'resolved', alert: 'T4-00123:42', text: 'Taken to the banner hospital' }
const SIGNED = { ...COMMAND, aud: 'gw/gw-0017', seq: 1767253800000, exp: 1767254400000 }

/** Mean µs per call of `f` over `n` calls, after a warm-up. */
function perCallUs(n: number, f: () => void): number {
  for (let i = 0; i < Math.min(200, n); i++) f()
  const t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) f()
  return Number(process.hrtime.bigint() - t) / 1000 / n
}

export const benchmark: Benchmark = {
  name: 'signing',
  title: 'Signed commands: sign and verify cost, envelope bytes',
  async run(ctx) {
    const n = ctx.quick ? 2_000 : 20_000
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const out: Metric[] = []
    const signUs = perCallUs(n, () => signCommand(SIGNED, privateKey, 'cbor'))
    const payload = signCommand(SIGNED, privateKey, 'cbor')
    const verifyUs = perCallUs(n, () => {
      const o = openEnvelope(decodePayload(payload))
      if (o.kind !== 'signed' || !verifyBody(o.body, o.sig, publicKey)) throw new Error('does not verify')
    })
    ctx.log(`sign ${round(signUs)} µs, verify ${round(verifyUs)} µs (${n} each)`)
    out.push(metric({ name: 'signing.sign.us', value: round(signUs), unit: 'µs', baseline: null }))
    out.push(metric({ name: 'signing.verify.us', value: round(verifyUs), unit: 'µs', baseline: null, goal: 'under 1 ms per command', meets: (v) => v < 1000 }))
    for (const enc of ['cbor', 'json'] as const) {
      const plain = encodePayload(COMMAND, enc).length
      const signed = signCommand(SIGNED, privateKey, enc).length
      out.push(metric({ name: `signing.bytes.${enc}`, value: signed, unit: 'bytes', baseline: plain, baselineName: 'unsigned command' }))
      out.push(metric({ name: `signing.overhead.${enc}`, value: signed - plain, unit: 'bytes', baseline: null }))
    }
    return out
  },
}
