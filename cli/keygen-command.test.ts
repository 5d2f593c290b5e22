/** `steppelink keygen` [MQTT-5.12]: the two files, their modes, no overwrite; the gateway reads what it writes. */

import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { readPlatformKeys } from '../gateway/platform-keys.js'
import { keyId } from '../protocol/mqtt.js'
import { keygenCommand } from './keygen-command.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('steppelink keygen', () => {
  it('writes platform.key (0600) and platform.pub, prints the key id, and will not overwrite them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steppelink-keygen-'))
    dirs.push(dir)
    const out: string[] = []
    const err: string[] = []
    const io = { stdout: (l: string) => out.push(l), stderr: (l: string) => err.push(l) }
    expect(await keygenCommand(['--out', join(dir, 'k')], io)).toBe(0)
    const id = /^key id ([0-9a-f]{16})$/.exec(out[0]!)?.[1]
    expect(id).toBeDefined()
    expect(statSync(join(dir, 'k', 'platform.key')).mode & 0o777).toBe(0o600)
    const pub = readFileSync(join(dir, 'k', 'platform.pub'), 'utf8').trim()
    // The gateway takes the file, or its text.
    expect(keyId(readPlatformKeys({ platformKeys: { current: join(dir, 'k', 'platform.pub') } })!.current)).toBe(id)
    expect(keyId(readPlatformKeys({ platformKeys: { current: pub } })!.current)).toBe(id)
    expect(await keygenCommand(['--out', join(dir, 'k')], io)).toBe(2)
    expect(err.at(-1)).toMatch(/platform\.key exists: not overwritten/)
    expect(await keygenCommand([], io)).toBe(2)
    expect(err.at(-1)).toMatch(/--out DIR is required/)
  })

  it('the gateway says which platform key is wrong, and how', () => {
    expect(() => readPlatformKeys({ platformKeys: { current: '/nonexistent/platform.pub' } })).toThrow(/platformKeys.current: cannot read the platform key file/)
    expect(() => readPlatformKeys({ platformKeys: { current: `${'A'.repeat(43)}=`, next: `${'A'.repeat(43)}=` } })).toThrow(/platformKeys.next is the same key/)
    expect(readPlatformKeys({})).toBeNull()
  })
})
