/**
 * The console signs what it sends [MQTT-5.12]: aud from the topic, seq growing without
 * state on disk, exp an hour on; the payload verifies with the public key and its body is
 * the checked command. Here, not in platform/, because it reads the key the way the gateway
 * does (gateway/platform-keys.ts): the platform folder imports nothing from gateway/.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { writeKeyPair } from '../cli/keygen-command.js'
import { readPlatformKeys } from '../gateway/platform-keys.js'
import { decodePayload, openEnvelope, parseCommand, verifyBody } from '../protocol/mqtt.js'
import { COMMAND_VALIDITY_MS, checkedCommand, commandPayload, signerFromFile } from '../platform/commands.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'steppelink-keys-'))
  dirs.push(d)
  return d
}

describe('console: signed commands [MQTT-5.12]', () => {
  it('signs each command for the audience of its topic, with a growing seq and an exp, verifiable with platform.pub', () => {
    const dir = tmp()
    const k = writeKeyPair(dir)
    const keys = readPlatformKeys({ platformKeys: { current: k.publicPath } })!
    const now = () => 1_767_252_645_000
    const signer = signerFromFile(k.privatePath, 'steppelink/v1', now)!
    expect(signer.keyId).toBe(k.keyId)
    const c = checkedCommand({ v: 1, id: 'c-1', type: 'status-request' })
    const seen: number[] = []
    for (const [topic, aud] of [
      ['steppelink/v1/gw/gw-0017/cmd', 'gw/gw-0017'],
      ['steppelink/v1/area/abag-03/cmd', 'area/abag-03'],
      ['steppelink/v1/all/cmd', 'all'],
    ] as const) {
      const opened = openEnvelope(decodePayload(commandPayload(c, topic, signer)))
      if (opened.kind !== 'signed') throw new Error('not signed')
      expect(opened.key).toBe(k.keyId)
      expect(verifyBody(opened.body, opened.sig, keys.current)).toBe(true)
      const parsed = parseCommand(opened.body)
      if (!parsed.ok) throw new Error(parsed.message)
      expect(parsed.command).toMatchObject({ ...c, aud, exp: now() + COMMAND_VALIDITY_MS })
      seen.push(parsed.command.seq!)
    }
    // The clock stood still: seq still grows.
    expect(seen).toEqual([now(), now() + 1, now() + 2])
    // Without a signer, the command goes as before.
    expect(decodePayload(commandPayload(c, 'steppelink/v1/all/cmd', null))).toEqual(c)
  })

  it('says what is wrong with a signing key file', () => {
    const dir = tmp()
    expect(() => signerFromFile(join(dir, 'nope.key'), 'steppelink/v1', Date.now)).toThrow(/cannot read the signing key/)
    const k = writeKeyPair(dir)
    expect(() => signerFromFile(k.publicPath, 'steppelink/v1', Date.now)).toThrow(/not a platform private key/)
  })
})
