/**
 * Signed commands [MQTT-5.12]: the platform signs each command with Ed25519 (Node's own
 * crypto, no dependency) and the gateway verifies it before acting.
 *
 * Theory of operation:
 * - No canonical encoding is needed: the signature covers bytes, not a value. The payload
 *   on a command topic is an *envelope* `{v: 1, type: "signed", key, body, sig}`, where
 *   `body` is the exact bytes of a complete command payload (JSON or CBOR, [MQTT-4.3]) and
 *   `sig` the Ed25519 signature of SIGNING_DOMAIN followed by those bytes. A platform in any
 *   language encodes its command once, signs the bytes, and wraps them. In a CBOR envelope
 *   `body` and `sig` are byte strings; in a JSON one, base64 texts.
 * - The body carries, besides the command, `aud` (whom it is for: `gw/<id>`, `area/<area>`
 *   or `all`, matching the topic it is published on), `seq` (an integer per audience that
 *   only grows) and `exp` (UNIX ms after which it must not be applied). The signature binds
 *   them to the command, so a command cannot be moved to another audience, replayed once
 *   its sequence number was taken, or applied late.
 * - The domain prefix keeps a signature over a command from being valid for anything else
 *   the same key may ever sign.
 * - A key is named by its *key id*: the first 8 bytes of SHA-256 of the 32-byte raw public
 *   key, in hex (16 characters).
 */

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import Type from 'typebox'
import { MQTT_CONTRACT_VERSION } from './mqtt-contract.js'
import { decodePayload, encodePayload, type Encoding } from './mqtt-encoding.js'

/** What every signature covers before the body: the purpose and the version. [MQTT-5.12] */
export const SIGNING_DOMAIN = Buffer.from('steppelink-command-v1\0', 'latin1')
/** An Ed25519 signature, bytes. */
export const SIGNATURE_BYTES = 64
/** A key id: hex of the first 8 bytes of SHA-256 of the raw public key. */
export const KEY_ID_PATTERN = /^[0-9a-f]{16}$/

/**
 * A vector for a platform's own code [MQTT-5.12]: RFC 8032 section 7.1 TEST 1's key (seed
 * and public key), its key id, a JSON command body and its signature (Ed25519 is
 * deterministic). Checked by mqtt-signing.test.ts; quoted in MQTT.md.
 */
export const SIGNING_VECTOR = {
  seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
  publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
  keyId: '21fe31dfa154a261',
  body: '{"v":1,"id":"c-1","type":"resolved","alert":"T4-00123:42","aud":"gw/gw-0017","seq":1767252645000,"exp":1767253245000}',
  sig: '9dc2a0d0bc5bcaecae9b0f0234b3dfbbe3e52890435166ef2146a212043cc203d6fa80354cf7081f703a78d89bc9c62e14540f83ad49ff13dc4063878ad5f505',
}

/** The DER head of an Ed25519 SubjectPublicKeyInfo (RFC 8410): followed by the 32 raw bytes. */
const SPKI_HEAD = Buffer.from('302a300506032b6570032100', 'hex')
/** The DER head of an Ed25519 PKCS#8 private key (RFC 8410): followed by the 32-byte seed. */
const PKCS8_HEAD = Buffer.from('302e020100300506032b657004220420', 'hex')

/** The 32 raw bytes of an Ed25519 public key (or of the public half of a private key). */
export function rawPublicKey(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  const der = pub.export({ type: 'spki', format: 'der' })
  return Buffer.from(der.subarray(der.length - 32))
}

/** An Ed25519 public key from its 32 raw bytes. Throws a RangeError on another length. */
export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new RangeError(`an Ed25519 public key is 32 bytes, got ${raw.length}`)
  return createPublicKey({ key: Buffer.concat([SPKI_HEAD, raw]), format: 'der', type: 'spki' })
}

/** An Ed25519 private key from its 32-byte seed (test vectors). */
export function privateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new RangeError(`an Ed25519 seed is 32 bytes, got ${seed.length}`)
  return createPrivateKey({ key: Buffer.concat([PKCS8_HEAD, seed]), format: 'der', type: 'pkcs8' })
}

/** The key id of a public key (or of a private key's public half). [MQTT-5.12] */
export function keyId(key: KeyObject | Uint8Array): string {
  const raw = key instanceof Uint8Array ? key : rawPublicKey(key)
  return createHash('sha256').update(raw).digest().subarray(0, 8).toString('hex')
}

/** A new Ed25519 key pair, as `steppelink keygen` writes it: the private key PKCS#8 PEM, the public key raw base64. */
export function generatePlatformKey(): { privatePem: string; publicBase64: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const raw = rawPublicKey(publicKey)
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicBase64: raw.toString('base64'), keyId: keyId(raw) }
}

/**
 * A public key from text: a PEM (SPKI) block, or the 32 raw bytes in base64 (what
 * platform.pub holds). Throws an Error saying what was expected.
 */
export function parsePublicKey(text: string): KeyObject {
  const t = text.trim()
  if (t.startsWith('-----BEGIN')) {
    const k = createPublicKey(t)
    if (k.asymmetricKeyType !== 'ed25519') throw new Error(`a ${k.asymmetricKeyType} key; an Ed25519 key is needed`)
    return k
  }
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=?$/.test(t)) throw new Error('not an Ed25519 public key: expected 32 bytes in base64 (44 characters, as platform.pub holds) or a PEM block')
  return publicKeyFromRaw(Buffer.from(t, 'base64'))
}

/** A private key from its PEM (PKCS#8, as platform.key holds). Throws an Error saying what was expected. */
export function parsePrivateKey(text: string): KeyObject {
  const k = createPrivateKey(text)
  if (k.asymmetricKeyType !== 'ed25519') throw new Error(`a ${k.asymmetricKeyType} key; an Ed25519 private key is needed`)
  return k
}

/** The bytes a signature covers. */
function signedBytes(body: Uint8Array): Buffer {
  return Buffer.concat([SIGNING_DOMAIN, body])
}

/** The audience of a command topic ([MQTT-5.4]): `gw/<id>`, `area/<area>` or `all`; null for any other topic. */
export function audienceOfTopic(prefix: string, topic: string): string | null {
  if (!topic.startsWith(`${prefix}/`) || !topic.endsWith('/cmd')) return null
  const mid = topic.slice(prefix.length + 1, -'/cmd'.length)
  if (mid === 'all') return 'all'
  const [kind, name, ...rest] = mid.split('/')
  if (rest.length === 0 && name && (kind === 'gw' || kind === 'area')) return `${kind}/${name}`
  return null
}

const bytes = (description: string) =>
  Type.Refine(
    Type.Unknown({ description }),
    (v: unknown) => v instanceof Uint8Array || (typeof v === 'string' && v.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(v)),
    () => 'must be bytes: a CBOR byte string, or base64 in JSON',
  )

/** The signed envelope on a command topic [MQTT-5.12]. */
export const SignedCommand = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    type: Type.Literal('signed'),
    key: Type.String({ pattern: KEY_ID_PATTERN.source, description: 'key id of the signing key: hex of the first 8 bytes of SHA-256 of its raw public key' }),
    body: bytes('the exact bytes of a complete command payload, with aud, seq and exp'),
    sig: bytes('Ed25519 signature, 64 bytes, of "steppelink-command-v1\\0" followed by body'),
  },
  { additionalProperties: true },
)

/** What the platform adds to a command it signs. [MQTT-5.12] */
export interface SigningFields {
  aud: string
  seq: number
  exp: number
}

/**
 * A signed command payload [MQTT-5.12]: `command` (with `aud`, `seq`, `exp`) encoded in
 * `encoding` as the body, signed with `key`, wrapped in the envelope in the same encoding.
 */
export function signCommand(command: Record<string, unknown> & SigningFields, key: KeyObject, encoding: Encoding): Buffer {
  const body = encodePayload(command, encoding)
  return wrapSigned(body, key, encoding)
}

/** The envelope around `body` (bytes of a command payload), signed with `key`. */
export function wrapSigned(body: Uint8Array, key: KeyObject, encoding: Encoding): Buffer {
  const sig = sign(null, signedBytes(body), key)
  const b = Buffer.from(body)
  const envelope = { v: MQTT_CONTRACT_VERSION, type: 'signed', key: keyId(key), body: encoding === 'json' ? b.toString('base64') : b, sig: encoding === 'json' ? sig.toString('base64') : sig }
  return encodePayload(envelope, encoding)
}

/** A payload on a command topic opened: a signed envelope, a plain command, or a broken envelope. */
export type Opened = { kind: 'plain' } | { kind: 'signed'; key: string; body: Buffer; sig: Buffer } | { kind: 'broken'; message: string }

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

function bytesOf(v: unknown): Buffer | null {
  if (v instanceof Uint8Array) return Buffer.from(v)
  if (typeof v === 'string' && v.length % 4 === 0 && BASE64.test(v)) return Buffer.from(v, 'base64')
  return null
}

/**
 * Whether a decoded payload is a signed envelope, and its parts. Only the envelope is
 * looked at: the body is not decoded until its signature is verified. [MQTT-5.12]
 */
export function openEnvelope(value: unknown): Opened {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { kind: 'plain' }
  const v = value as Record<string, unknown>
  if (v.type !== 'signed') return { kind: 'plain' }
  if (v.v !== MQTT_CONTRACT_VERSION) return { kind: 'broken', message: `signed envelope of contract version ${String(v.v)}, this gateway speaks ${MQTT_CONTRACT_VERSION}` }
  if (typeof v.key !== 'string' || !KEY_ID_PATTERN.test(v.key)) return { kind: 'broken', message: 'signed envelope: /key must be a key id, 16 hex digits' }
  const body = bytesOf(v.body)
  if (body === null || body.length === 0) return { kind: 'broken', message: 'signed envelope: /body must be the bytes of a command (a CBOR byte string, or base64 in JSON)' }
  const sig = bytesOf(v.sig)
  if (sig === null || sig.length !== SIGNATURE_BYTES) return { kind: 'broken', message: `signed envelope: /sig must be ${SIGNATURE_BYTES} bytes (a CBOR byte string, or base64 in JSON)` }
  return { kind: 'signed', key: v.key, body, sig }
}

/** Whether `sig` is `key`'s signature of `body`. Never throws. */
export function verifyBody(body: Uint8Array, sig: Uint8Array, key: KeyObject): boolean {
  try {
    return verify(null, signedBytes(body), key, sig)
  } catch {
    return false
  }
}

/** Decodes a payload for openEnvelope; undefined when it does not decode (parseCommand then says why). */
export function tryDecode(payload: Uint8Array): unknown {
  try {
    return decodePayload(payload)
  } catch {
    return undefined
  }
}
