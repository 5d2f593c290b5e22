/**
 * `steppelink keygen --out DIR`: a platform key pair for signed commands [MQTT-5.12].
 * Writes `platform.key` (the private key, PKCS#8 PEM, mode 0600: it signs commands, keep
 * it on the platform only) and `platform.pub` (the public key, 32 bytes in base64: give it
 * to every gateway as platformKeys.current or --platform-key), and prints the key id.
 * Refuses to overwrite an existing key.
 */

import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generatePlatformKey } from '../protocol/mqtt.js'
import { UsageError, parseArgsError, reportUsage } from './usage.js'

export const KEYGEN_HELP = `Usage: steppelink keygen --out DIR

Makes an Ed25519 key pair for signed commands (MQTT.md [MQTT-5.12]):
  DIR/platform.key   the private key (PEM, mode 0600): the console signs with it
                     (steppelink console --signing-key DIR/platform.key); keep it secret
  DIR/platform.pub   the public key (base64): give it to every gateway
                     (platformKeys.current in its config, or --platform-key)
and prints the key id, which the gateway's status and key-rotate name.

Options:
  --out DIR    where to write the two files (made if missing); existing keys are not overwritten
  --help, -h   this help`

export interface KeygenIo {
  stdout?: (line: string) => void
  stderr?: (line: string) => void
}

/** Writes a key pair into `dir`; returns its key id. Throws a UsageError if a key is there already. */
export function writeKeyPair(dir: string): { keyId: string; privatePath: string; publicPath: string } {
  const privatePath = join(dir, 'platform.key')
  const publicPath = join(dir, 'platform.pub')
  for (const p of [privatePath, publicPath]) if (existsSync(p)) throw new UsageError(`${p} exists: not overwritten (a key in use would be lost); choose another --out, or remove it first`)
  mkdirSync(dir, { recursive: true })
  const k = generatePlatformKey()
  writeFileSync(privatePath, k.privatePem, { mode: 0o600, flag: 'wx' })
  writeFileSync(publicPath, `${k.publicBase64}\n`, { mode: 0o644, flag: 'wx' })
  return { keyId: k.keyId, privatePath, publicPath }
}

export async function keygenCommand(args: string[], io: KeygenIo = {}): Promise<number> {
  const out = io.stdout ?? ((l: string) => console.log(l))
  const err = io.stderr ?? ((l: string) => console.error(l))
  try {
    let values: { out?: string | undefined; help?: boolean | undefined }
    try {
      values = parseArgs({ args, options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values
    } catch (e) {
      throw parseArgsError(e)
    }
    if (values.help) {
      out(KEYGEN_HELP)
      return 0
    }
    if (values.out === undefined || values.out === '') throw new UsageError('--out DIR is required: where to write platform.key and platform.pub')
    const k = writeKeyPair(values.out)
    out(`key id ${k.keyId}`)
    out(`private key ${k.privatePath} (mode 0600; the console signs with it: --signing-key)`)
    out(`public key  ${k.publicPath} (give it to every gateway: platformKeys.current, or --platform-key)`)
    return 0
  } catch (e) {
    return reportUsage(err, 'keygen', e)
  }
}
