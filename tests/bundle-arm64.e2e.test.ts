/**
 * The arm64 bundle, what a Raspberry Pi gets, run on this x64 machine under Debian's
 * qemu-user-static with no network (issue 14): scripts/bundle-qemu.sh checks that the
 * bundled aarch64 Node.js starts, that `steppelink selftest` finds every native module
 * loading for aarch64 (better-sqlite3 cross-compiled by scripts/bundle.mjs; serialport's,
 * zstd's and cbor-extract's prebuilt ones) and a store opening, and that
 * `steppelink demo --once --memory-serial` carries an alarm to resolved. The bundle is
 * $STEPPELINK_BUNDLE_ARM64, or built now (the runtime and the compiled better-sqlite3 are
 * cached after the first build).
 */

import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { buildBundle } from './helpers/bundle.js'

const ROOT = resolve(import.meta.dirname, '..')
for (const [path, pkg] of [
  ['/usr/bin/qemu-aarch64-static', 'qemu-user-static'],
  ['/usr/bin/aarch64-linux-gnu-g++', 'g++-aarch64-linux-gnu'],
]) {
  if (!existsSync(path!)) throw new Error(`apt-get update && apt-get install -y ${pkg}`)
}

describe('the arm64 bundle under emulation, with no network (issue 14)', () => {
  const work = mkdtempSync(join(tmpdir(), 'steppelink-arm64-'))
  afterAll(() => rmSync(work, { recursive: true, force: true }))

  it('the runtime starts, every native module loads, a store opens, and demo --once reaches resolved', () => {
    let bundle = process.env.STEPPELINK_BUNDLE_ARM64
    if (!bundle) {
      bundle = buildBundle('arm64', work).bundle
    }
    const r = spawnSync('bash', [join(ROOT, 'scripts', 'bundle-qemu.sh'), bundle], { encoding: 'utf8', timeout: 900_000 })
    const out = `${r.stdout}${r.stderr}`
    expect(r.status, out.slice(-4000)).toBe(0)
    expect(out).toMatch(/network in this namespace: lo\s/)
    expect(out).toMatch(/^v\d+\.\d+\.\d+$/m)
    expect(out).toMatch(/STEP runtime: ok/)
    expect(out).toMatch(/on Node\.js v\d+\.\d+\.\d+, linux-arm64/)
    for (const id of ['store', 'serial', 'zstd', 'cbor']) expect(out).toMatch(new RegExp(`^ok\\s+${id}\\s`, 'm'))
    expect(out).toMatch(/STEP selftest: ok/)
    expect(out).toMatch(/terminal {2}shows: resolved/)
    expect(out).toMatch(/STEP demo: ok/)
  }, 1_200_000)
})
