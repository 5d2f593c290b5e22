import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

// Runs the compiled CLI as a board would (npm test builds first).
const bin = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js')
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', input: '' })

describe('steppelink CLI', () => {
  it('prints help listing its commands', () => {
    const r = run('--help')
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/Usage: steppelink <command>/)
    expect(r.stdout).toMatch(/decode/)
  })

  it('names an unknown command and exits 2', () => {
    const r = run('fly')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/unknown command 'fly'/)
  })

  it('encodes a frame and decodes it back', () => {
    const frame = { dst: 0, src: 3, seq: 0, message: { type: 'EVENT', number: 1, kind: 'fire', boot: 1, uptime: 5 } }
    const enc = run('encode', JSON.stringify(frame))
    expect(enc.status).toBe(0)
    const dec = run('decode', enc.stdout.trim())
    expect(dec.status).toBe(0)
    expect(JSON.parse(dec.stdout)).toEqual(frame)
  })

  it('reports a corrupt frame with its stable code and exits 1', () => {
    const r = run('decode', '00 02 01 03 03 20 02 a4 10 18 2a 01 18 64 04 11 05 19 0e 10 e4 86 3d 82 00')
    expect(r.status).toBe(1)
    expect(JSON.parse(r.stdout).error).toBe('LINK_BAD_CRC')
  })

  it('refuses a message that fails its schema, naming the field', () => {
    const r = run('encode', '{"dst":0,"src":3,"seq":0,"message":{"type":"HEARTBEAT","uptime":-5,"mains":true}}')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/LINK_BAD_MESSAGE.*uptime/)
  })

  it('runs the link demo to the end over a noisy line', () => {
    const r = run('demo', '--line-only', '--noise', '1e-3', '--presses', '3')
    expect(r.status).toBe(0)
    expect(r.stdout.match(/LEDs show alert #\d: stored/g)).toHaveLength(3)
  })
})
