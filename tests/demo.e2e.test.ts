/**
 * `npm start -- --once` as a user runs it: the compiled CLI as a child process brings up
 * broker, gateway, terminal on a pseudo-terminal and console, and an alarm goes to
 * "resolved". The same path, once more with the serial line in memory (no socat).
 */

import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DEMO_STAGES } from '../cli/demo.js'
import { requireTool } from './helpers/system.js'

const BIN = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js')

function demo(...args: string[]) {
  return spawnSync(process.execPath, [BIN, 'demo', '--once', '--timeout', '45', ...args], { encoding: 'utf8', timeout: 90_000 })
}

describe('the one-command demo', () => {
  it('runs one alarm from press to resolved over a real pseudo-terminal, with each stage timed', () => {
    requireTool('socat')
    const r = demo()
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/pseudo-terminal pair \(socat\)/)
    const summary = r.stdout.split('\n').find((l) => l.startsWith('alarm #1:'))!
    for (const stage of DEMO_STAGES) expect(summary).toMatch(new RegExp(`${stage} \\d+ ms`))
    for (const stage of ['stored', 'received', 'acknowledged', 'dispatched', 'resolved']) expect(r.stdout).toContain(`terminal  shows: ${stage}`)
  })

  it('does without socat: the serial line in memory', () => {
    const r = demo('--memory-serial')
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/serial line in memory/)
    expect(r.stdout).toContain('terminal  shows: resolved')
  })

  it('names a bad option and exits 2', () => {
    const r = spawnSync(process.execPath, [BIN, 'demo', '--link', 'carrier-pigeon'], { encoding: 'utf8' })
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/--link must be one of perfect, gprs/)
  })
})
