/**
 * The platform keys of the configuration (`platformKeys`, `--platform-key`) read into key
 * objects [MQTT-5.12] [MQTT-5.13]. Each value is a file (platform.pub from `steppelink
 * keygen`, or a PEM file) or the key itself: 32 bytes in base64, or a PEM block.
 */

import { readFileSync } from 'node:fs'
import { keyId, parsePublicKey } from '../protocol/mqtt.js'
import type { PlatformKeys } from './commands/auth.js'
import type { GatewayConfig } from './config.js'

/** Whether a configured value is the key itself rather than a path to it. */
const inline = (value: string) => value.trim().startsWith('-----BEGIN') || /^[A-Za-z0-9+/]{43}=$/.test(value.trim())

/** One key; throws an Error that says what is wrong and what to do. */
function readKey(value: string, at: string): ReturnType<typeof parsePublicKey> {
  let text = value
  if (!inline(value)) {
    try {
      text = readFileSync(value, 'utf8')
    } catch (err) {
      throw new Error(`${at}: cannot read the platform key file ${value}: ${(err as Error).message}. Give the path of platform.pub (steppelink keygen writes it), or the key itself in base64`)
    }
  }
  try {
    return parsePublicKey(text)
  } catch (err) {
    throw new Error(`${at}: ${inline(value) ? 'the value' : value} is not a platform public key: ${(err as Error).message}`)
  }
}

/** The configured keys, or null without any; throws an Error naming the key that is wrong. */
export function readPlatformKeys(config: Pick<GatewayConfig, 'platformKeys'>): PlatformKeys | null {
  const c = config.platformKeys
  if (!c) return null
  const current = readKey(c.current, 'platformKeys.current')
  if (c.next === undefined) return { current }
  const next = readKey(c.next, 'platformKeys.next')
  if (keyId(next) === keyId(current)) throw new Error(`platformKeys.next is the same key as platformKeys.current (${keyId(current)}): give the new key as next, or leave next out`)
  return { current, next }
}
