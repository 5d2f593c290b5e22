/**
 * Signed commands [MQTT-5.12]: the envelope in both encodings, verification, key ids, and
 * a vector a platform in another language can check its code against (RFC 8032 test 1's
 * key: Ed25519 is deterministic, so the signature is fixed).
 */

import { generateKeyPairSync, sign } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  SIGNING_DOMAIN,
  SIGNING_VECTOR,
  audienceOfTopic,
  decodePayload,
  generatePlatformKey,
  keyId,
  openEnvelope,
  parseCommand,
  parsePublicKey,
  privateKeyFromSeed,
  publicKeyFromRaw,
  rawPublicKey,
  signCommand,
  verifyBody,
  wrapSigned,
} from './mqtt.js'

const VECTOR = SIGNING_VECTOR

const key = privateKeyFromSeed(Buffer.from(VECTOR.seed, 'hex'))
const command = { v: 1, id: 'c-1', type: 'resolved', alert: 'T4-00123:42', aud: 'gw/gw-0017', seq: 1767252645000, exp: 1767253245000 }

describe('signed commands [MQTT-5.12]', () => {
  it('vector: RFC 8032 key, key id, the signature over the domain prefix and the body bytes', () => {
    expect(rawPublicKey(key).toString('hex')).toBe(VECTOR.publicKey)
    expect(keyId(key)).toBe(VECTOR.keyId)
    expect(keyId(Buffer.from(VECTOR.publicKey, 'hex'))).toBe(VECTOR.keyId)
    expect(SIGNING_DOMAIN.toString('hex')).toBe(`${Buffer.from('steppelink-command-v1').toString('hex')}00`)
    const sig = sign(null, Buffer.concat([SIGNING_DOMAIN, Buffer.from(VECTOR.body)]), key)
    expect(sig.toString('hex')).toBe(VECTOR.sig)
    const envelope = JSON.parse(wrapSigned(Buffer.from(VECTOR.body), key, 'json').toString())
    expect(envelope).toEqual({ v: 1, type: 'signed', key: VECTOR.keyId, body: Buffer.from(VECTOR.body).toString('base64'), sig: Buffer.from(VECTOR.sig, 'hex').toString('base64') })
    expect(signCommand(command, key, 'json').toString()).toBe(JSON.stringify(envelope))
  })

  it('opens and verifies in both encodings; the body parses as the command', () => {
    const pub = publicKeyFromRaw(Buffer.from(VECTOR.publicKey, 'hex'))
    for (const encoding of ['json', 'cbor'] as const) {
      const payload = signCommand(command, key, encoding)
      const opened = openEnvelope(decodePayload(payload))
      if (opened.kind !== 'signed') throw new Error(`not opened: ${opened.kind}`)
      expect(opened.key).toBe(VECTOR.keyId)
      expect(verifyBody(opened.body, opened.sig, pub)).toBe(true)
      const parsed = parseCommand(opened.body)
      expect(parsed.ok && parsed.command).toMatchObject(command)
      // CBOR: body and sig are byte strings (major type 2), not arrays or base64.
      if (encoding === 'cbor') expect(decodePayload(payload)).toMatchObject({ body: expect.any(Uint8Array), sig: expect.any(Uint8Array) })
    }
  })

  it('a changed body, another key, or a signature without the domain prefix does not verify', () => {
    const pub = rawPublicKey(key)
    const opened = openEnvelope(decodePayload(signCommand(command, key, 'json')))
    if (opened.kind !== 'signed') throw new Error('not opened')
    const changed = Buffer.from(opened.body.toString().replace('T4-00123:42', 'T4-00123:43'))
    expect(verifyBody(changed, opened.sig, publicKeyFromRaw(pub))).toBe(false)
    const other = generateKeyPairSync('ed25519').publicKey
    expect(verifyBody(opened.body, opened.sig, other)).toBe(false)
    const bare = sign(null, opened.body, key)
    expect(verifyBody(opened.body, bare, publicKeyFromRaw(pub))).toBe(false)
    expect(verifyBody(opened.body, Buffer.alloc(64), publicKeyFromRaw(pub))).toBe(false)
  })

  it('tells plain commands and broken envelopes apart', () => {
    expect(openEnvelope({ v: 1, id: 'x', type: 'rebirth' })).toEqual({ kind: 'plain' })
    expect(openEnvelope(null)).toEqual({ kind: 'plain' })
    expect(openEnvelope({ v: 1, type: 'signed', key: 'nope', body: 'e30=', sig: 'AA==' })).toMatchObject({ kind: 'broken', message: expect.stringContaining('/key') })
    expect(openEnvelope({ v: 1, type: 'signed', key: VECTOR.keyId, body: 'e30=', sig: 'AA==' })).toMatchObject({ kind: 'broken', message: expect.stringContaining('/sig') })
    expect(openEnvelope({ v: 1, type: 'signed', key: VECTOR.keyId, body: 5, sig: 'AA==' })).toMatchObject({ kind: 'broken', message: expect.stringContaining('/body') })
  })

  it('audiences of the three command topics', () => {
    expect(audienceOfTopic('steppelink/v1', 'steppelink/v1/gw/gw-1/cmd')).toBe('gw/gw-1')
    expect(audienceOfTopic('steppelink/v1', 'steppelink/v1/area/sumu-7/cmd')).toBe('area/sumu-7')
    expect(audienceOfTopic('steppelink/v1', 'steppelink/v1/all/cmd')).toBe('all')
    expect(audienceOfTopic('steppelink/v1', 'steppelink/v1/gw/gw-1/state')).toBeNull()
    expect(audienceOfTopic('steppelink/v1', 'other/gw/gw-1/cmd')).toBeNull()
  })

  it('keygen: the public key in base64 reads back, with the same key id', () => {
    const k = generatePlatformKey()
    expect(k.publicBase64).toHaveLength(44)
    expect(keyId(parsePublicKey(k.publicBase64))).toBe(k.keyId)
    expect(() => parsePublicKey('hello')).toThrow(/32 bytes in base64/)
  })
})
