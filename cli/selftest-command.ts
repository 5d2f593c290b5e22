/**
 * `steppelink selftest`: does this program run on this machine? The runtime starts, every
 * native module loads for this architecture and does its job once (better-sqlite3 opens a
 * scratch store and keeps an alarm through a close, serialport's binding loads, zstd
 * compresses a batch the platform can read, cbor-extract decodes), and, with `--data DIR`,
 * whether this version can open the store already in DIR.
 *
 * The board installer (deploy/install.sh) runs it from a new release before switching to
 * it, and from the previous release before rolling back to it; the arm64 bundle's check
 * under emulation (scripts/bundle-qemu.sh) runs it too. Unlike `doctor` it looks at no
 * configuration, device or broker: it answers "is this copy of Steppelink whole and built
 * for this board", which is what an installer must know before it stops a running gateway.
 *
 * Exit status: 0 whole; 1 something failed to load or work (each line says what); 2 called
 * wrong; 3 the store in `--data` was written by a newer Steppelink (its layout is unknown
 * here: this version would refuse to start on it).
 */

import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { version } from '../gateway/version.js'

export const SELFTEST_STORE_NEWER = 3

interface Check {
  id: string
  ok: boolean
  text: string
}

const USAGE = `Usage: steppelink selftest [--data DIR] [--json]

Checks that this copy of Steppelink runs on this machine: the Node.js runtime, and each
native module (better-sqlite3, serialport, zstd, cbor-extract) loading and working once.

  --data DIR   also read the store in DIR (gateway.db) and say whether this version can open it
  --json       one JSON object: { "ok", "node", "arch", "checks": [{ "id", "ok", "text" }], "store" }

Exit status: 0 all well; 1 something failed; 2 called wrong; 3 the store in DIR was written by
a newer version (its layout is unknown to this one).`

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]!

async function attempt(id: string, run: () => Promise<string> | string): Promise<Check> {
  try {
    return { id, ok: true, text: await run() }
  } catch (err) {
    return { id, ok: false, text: errorText(err) }
  }
}

/** The C library the runtime runs on, from Node's own report (glibc's version, or none: musl). */
function libc(): string {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
  return header?.glibcVersionRuntime ? `glibc ${header.glibcVersionRuntime}` : 'no glibc (musl?)'
}

async function storeCheck(): Promise<string> {
  const { SqliteStore } = await import('../gateway/sqlite-store.js')
  const dir = mkdtempSync(join(tmpdir(), 'steppelink-selftest-'))
  try {
    const path = join(dir, 'gateway.db')
    const event = {
      id: 'selftest:1',
      terminal: 'SELFTEST',
      address: 1,
      number: 1,
      cls: 'alarm' as const,
      body: { v: 1, kind: 'panic' },
      receivedAt: Date.now(),
      boot: 1,
      offset: null,
    }
    const first = new SqliteStore({ path, freeSpace: () => Number.MAX_SAFE_INTEGER })
    first.addEvent(event)
    first.close()
    // Opened again: the alarm must have reached the file, not only a cache.
    const again = new SqliteStore({ path, freeSpace: () => Number.MAX_SAFE_INTEGER })
    const kept = again.get(event.id)
    again.close()
    if (!kept) throw new Error('a scratch store lost an alarm across a close')
    const require = createRequire(import.meta.url)
    const pkg = require('better-sqlite3/package.json') as { version: string }
    return `better-sqlite3 ${pkg.version} loads; a scratch store kept an alarm through a close`
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function serialCheck(): Promise<string> {
  // The native binding loads when the package is imported (node-gyp-build picks the prebuild
  // for this platform and architecture, or throws).
  const bindings = (await import('@serialport/bindings-cpp')) as { autoDetect: () => unknown }
  bindings.autoDetect()
  await import('serialport')
  const require = createRequire(import.meta.url)
  const pkg = require('@serialport/bindings-cpp/package.json') as { version: string }
  return `@serialport/bindings-cpp ${pkg.version} loads for linux-${process.arch}`
}

async function zstdCheck(): Promise<string> {
  const { findCompression } = await import('../gateway/compression.js')
  const found = await findCompression()
  if (found.codec === 'none') throw new Error(`no zstd: ${found.error}`)
  // Node's own zstd would do for the platform, but the bundle ships the binding: its absence
  // means the bundle was built for another architecture or lost a file.
  if (found.via !== '@mongodb-js/zstd') throw new Error(`@mongodb-js/zstd does not load (node:zlib's zstd would be used instead)`)
  return '@mongodb-js/zstd compresses a batch the platform reads back'
}

async function cborCheck(): Promise<string> {
  const cbor = (await import('cbor-x')) as { isNativeAccelerationEnabled?: boolean }
  const { encodeFrame, decodeFrame } = await import('../protocol/codec.js')
  // The codec's own round trip decides; the native extractor only makes decoding faster.
  const back = decodeFrame(encodeFrame({ dst: 0, src: 1, seq: 7, message: { type: 'HEARTBEAT', uptime: 60, mains: true } }))
  if (back.kind !== 'frame' || back.frame.seq !== 7 || back.frame.message.type !== 'HEARTBEAT') {
    throw new Error('the serial codec could not read back a frame it wrote')
  }
  if (cbor.isNativeAccelerationEnabled !== true) throw new Error('cbor-extract does not load (cbor-x decodes in JavaScript instead)')
  return 'cbor-extract loads; the serial codec reads back what it writes'
}

interface StoreFinding {
  path: string
  layout: number | null
  opens: boolean
  /** Written by a newer Steppelink: this version would refuse it (STORE_NEWER). */
  newer: boolean
  text: string
}

/** Reads the store's marks read-only, without migrating or locking it out from a running gateway. */
async function existingStore(data: string): Promise<StoreFinding> {
  const path = join(data, 'gateway.db')
  const { SCHEMA_VERSION, APPLICATION_ID } = await import('../gateway/sqlite-db.js')
  if (!existsSync(path)) return { path, layout: null, opens: true, newer: false, text: `no store at ${path} yet: the gateway makes one at its first start` }
  const { default: Database } = await import('better-sqlite3')
  const db = new Database(path, { readonly: true, fileMustExist: true, timeout: 2000 })
  try {
    const app = db.pragma('application_id', { simple: true }) as number
    const layout = db.pragma('user_version', { simple: true }) as number
    if (app !== 0 && app !== APPLICATION_ID) {
      return { path, layout, opens: false, newer: false, text: `${path} is not a Steppelink store (application id ${app})` }
    }
    if (layout > SCHEMA_VERSION) {
      return {
        path,
        layout,
        opens: false,
        newer: true,
        text: `the store ${path} has layout ${layout}, written by a newer Steppelink; this version (${version()}) opens layouts up to ${SCHEMA_VERSION}`,
      }
    }
    const note = layout < SCHEMA_VERSION ? `; this version brings it to layout ${SCHEMA_VERSION} at its first start` : ''
    return { path, layout, opens: true, newer: false, text: `the store ${path} has layout ${layout}: this version opens it${note}` }
  } finally {
    db.close()
  }
}

export async function selftestCommand(args: string[]): Promise<number> {
  let values: { data?: string; json?: boolean; help?: boolean }
  try {
    values = parseArgs({ args, options: { data: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }).values
  } catch (err) {
    console.error(`steppelink selftest: ${errorText(err)}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const checks: Check[] = [
    { id: 'runtime', ok: true, text: `Steppelink ${version()} on Node.js ${process.version}, linux-${process.arch}, ${libc()}` },
    await attempt('store', storeCheck),
    await attempt('serial', serialCheck),
    await attempt('zstd', zstdCheck),
    await attempt('cbor', cborCheck),
  ]
  let store: StoreFinding | undefined
  if (values.data !== undefined) {
    try {
      store = await existingStore(values.data)
    } catch (err) {
      store = { path: join(values.data, 'gateway.db'), layout: null, opens: false, newer: false, text: `the store in ${values.data} cannot be read: ${errorText(err)}` }
    }
  }
  const whole = checks.every((c) => c.ok)
  const newer = store?.newer === true
  const ok = whole && (store === undefined || store.opens)
  if (values.json) {
    console.log(JSON.stringify({ ok, version: version(), node: process.version, arch: process.arch, checks, store: store ?? null }))
  } else {
    for (const c of checks) console.log(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.id.padEnd(7)}  ${c.text}`)
    if (store) console.log(`${store.opens ? 'ok  ' : 'FAIL'}  ${'data'.padEnd(7)}  ${store.text}`)
    console.log(
      ok
        ? 'WHOLE: this copy of Steppelink runs on this machine.'
        : whole
          ? 'The program is whole, but the store cannot be opened by this version (see the data line).'
          : `NOT WHOLE: reinstall from a bundle built for this architecture (linux-${process.arch}).`,
    )
  }
  if (!whole) return 1
  if (newer) return SELFTEST_STORE_NEWER
  return ok ? 0 : 1
}
