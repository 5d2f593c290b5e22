import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openPtyEnd, openPtyPair, type PtyEnd, type PtyPair } from './pty.js'
import { requireTool, waitUntil } from './system.js'

/** All 256 byte values, twice: raw mode must pass 0x00, CR, LF, XON/XOFF and 0xff untouched. */
const EVERY_BYTE = new Uint8Array([...Array(512).keys()].map((i) => i % 256))

describe('requireTool', () => {
  let scratch: string | null = null
  afterEach(() => {
    if (scratch !== null) rmSync(scratch, { recursive: true, force: true })
    scratch = null
  })

  it('finds socat and returns its absolute path', () => {
    const path = requireTool('socat')
    expect(isAbsolute(path)).toBe(true)
    expect(path.endsWith('/socat')).toBe(true)
  })

  it('fails with the exact install line when the tool is missing', () => {
    expect(() => requireTool('socat', { dirs: [] })).toThrow(new Error('apt-get update && apt-get install -y socat'))
    expect(() => requireTool('mosquitto', { dirs: [] })).toThrow(new Error('apt-get update && apt-get install -y mosquitto'))
  })

  it('takes the first executable of that name in search order, skipping files that are not executable', () => {
    scratch = mkdtempSync(join(tmpdir(), 'steppelink-tool-'))
    const plain = join(scratch, 'plain')
    const exec = join(scratch, 'exec')
    for (const [dir, mode] of [
      [plain, 0o644],
      [exec, 0o755],
    ] as const) {
      mkdirSync(dir)
      writeFileSync(join(dir, 'mosquitto'), '#!/bin/sh\n')
      // Even root needs an x bit for X_OK, so this holds when the tests run as root.
      chmodSync(join(dir, 'mosquitto'), mode)
    }
    expect(requireTool('mosquitto', { dirs: [plain, exec] })).toBe(join(exec, 'mosquitto'))
    expect(() => requireTool('mosquitto', { dirs: [plain] })).toThrow('apt-get update && apt-get install -y mosquitto')
  })
})

describe('waitUntil', () => {
  it('resolves as soon as the condition holds', async () => {
    let n = 0
    await waitUntil(() => ++n >= 3, { intervalMs: 1 })
    expect(n).toBe(3)
  })

  it('rejects after the deadline, naming what it waited for', async () => {
    await expect(waitUntil(() => false, { timeoutMs: 20, what: 'the moon' })).rejects.toThrow('timed out after 20 ms waiting for the moon')
  })
})

describe('openPtyPair (real socat)', () => {
  let pair: PtyPair | null = null
  const ends: PtyEnd[] = []
  afterEach(async () => {
    await Promise.all(ends.splice(0).map((e) => e.close()))
    await pair?.close()
    pair = null
  })

  async function exchange(p: PtyPair): Promise<void> {
    const a = await openPtyEnd(p.a)
    const b = await openPtyEnd(p.b)
    ends.push(a, b)
    await a.write(EVERY_BYTE)
    await waitUntil(() => b.received().length >= EVERY_BYTE.length, { what: 'bytes a -> b' })
    expect(b.received()).toEqual(EVERY_BYTE)
    await b.write(EVERY_BYTE.slice().reverse())
    await waitUntil(() => a.received().length >= EVERY_BYTE.length, { what: 'bytes b -> a' })
    expect(a.received()).toEqual(EVERY_BYTE.slice().reverse())
  }

  it('links two ptys through symlinks and carries every byte value both ways', async () => {
    pair = await openPtyPair()
    expect(pair.alive).toBe(true)
    for (const link of [pair.a, pair.b]) {
      expect(lstatSync(link).isSymbolicLink()).toBe(true)
      expect(readlinkSync(link)).toMatch(/^\/dev\/pts\/\d+$/)
    }
    await exchange(pair)
  })

  it('kill() unplugs: the ends hang up and the links vanish; replug() brings them back at the same paths', async () => {
    pair = await openPtyPair()
    const a = await openPtyEnd(pair.a)
    ends.push(a)
    await a.write(new Uint8Array([1, 2, 3]))

    await pair.kill()
    expect(pair.alive).toBe(false)
    expect(existsSync(pair.a)).toBe(false)
    expect(existsSync(pair.b)).toBe(false)
    await waitUntil(() => a.closed, { what: 'the old end to hang up' })
    await pair.kill() // nothing left to kill: a no-op

    await pair.replug()
    expect(pair.alive).toBe(true)
    await exchange(pair)
    await expect(pair.replug()).rejects.toThrow('kill() first')
  })

  it('close() stops socat, removes the directory, and may be called twice', async () => {
    pair = await openPtyPair()
    const { dir } = pair
    await pair.close()
    expect(pair.alive).toBe(false)
    expect(existsSync(dir)).toBe(false)
    await pair.close()
    await expect(pair.replug()).rejects.toThrow('after close()')
  })
})
