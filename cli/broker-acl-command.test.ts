/**
 * `steppelink broker-acl` as an operator runs it (the compiled CLI; npm test builds first):
 * the shipped file without a list, a user block per gateway with an area from the list,
 * a wrong line named [MQTT-2.10].
 */

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..')
const bin = join(root, 'dist', 'cli', 'main.js')
const run = (...args: string[]) => spawnSync(process.execPath, [bin, 'broker-acl', ...args], { encoding: 'utf8', input: '' })
const dir = mkdtempSync(join(tmpdir(), 'steppelink-acl-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('steppelink broker-acl', () => {
  it('without a list of gateways writes the shipped deploy/mosquitto/acl', () => {
    const r = run()
    expect(r.status).toBe(0)
    expect(r.stdout).toBe(readFileSync(join(root, 'deploy', 'mosquitto', 'acl'), 'utf8'))
  })

  it('writes a user block for each gateway with an area, to --out', () => {
    const out = join(dir, 'acl')
    const r = run('--gateways', join(root, 'deploy', 'mosquitto', 'gateways.example.txt'), '--platform', 'platform', '--platform', 'platform-backup', '--out', out)
    expect(r.status).toBe(0)
    const acl = readFileSync(out, 'utf8')
    expect(acl).toContain('user xlg-abag-0042\ntopic read steppelink/v1/area/abag/cmd\n')
    expect(acl).toContain('user xlg-sumu-0007\ntopic read steppelink/v1/area/sumu-west/cmd\n')
    expect(acl).not.toContain('user xlg-0100')
    expect(acl.match(/^user platform(-backup)?$/gm)).toEqual(['user platform', 'user platform-backup'])
  })

  it('names a wrong line of the list, a gateway named like a platform user, a bad prefix', () => {
    const list = join(dir, 'bad.txt')
    writeFileSync(list, 'gw-1 north\ngw/2\n')
    expect(run('--gateways', list)).toMatchObject({ status: 1, stderr: `steppelink broker-acl: ${list}: line 2: gateway id "gw/2" does not match ^[A-Za-z0-9._:-]{1,64}$\n` })
    writeFileSync(list, 'platform north\n')
    expect(run('--gateways', list).stderr).toMatch(/gateway id "platform" is also a platform user name/)
    expect(run('--prefix', 'a/#')).toMatchObject({ status: 2 })
  })
})
