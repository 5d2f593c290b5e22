/**
 * What the ledger's tests share: real SQLite files in a temp directory (removed after each
 * test), fake times, and uplink copies as a gateway publishes them.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import type { UplinkEvent } from '../../protocol/mqtt.js'
import { SqliteLedger, type SqliteLedgerOptions } from './sqlite-ledger.js'

/** 2026-01-01 08:00 UTC: the fake day starts here. */
export const T0 = Date.UTC(2026, 0, 1, 8, 0, 0)
export const S = 1000
export const MIN = 60 * S
export const H = 60 * MIN

const dirs: string[] = []
const open: SqliteLedger[] = []
afterEach(async () => {
  for (const l of open.splice(0)) await l.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** A fresh directory for ledger files, removed after the test. */
export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'steppelink-ledger-'))
  dirs.push(d)
  return d
}

/** A ledger on a new file (or `path`), closed after the test. */
export function ledgerAt(path: string, opts: SqliteLedgerOptions = {}): SqliteLedger {
  const l = SqliteLedger.open(path, { at: T0, ...opts })
  open.push(l)
  return l
}

export function newLedger(opts: SqliteLedgerOptions = {}): { ledger: SqliteLedger; path: string } {
  const path = join(tempDir(), 'ledger.db')
  return { ledger: ledgerAt(path, opts), path }
}

/** An alarm as gateway gw-0017 publishes it: the big button of terminal T4-00123, event `n`. */
export function alarm(n: number, over: Partial<UplinkEvent> = {}): UplinkEvent {
  return {
    v: 1,
    id: `T4-00123:${n}`,
    class: 'alarm',
    kind: 'emergency',
    code: 101,
    restore: false,
    gateway: 'gw-0017',
    terminal: 'T4-00123',
    address: 3,
    number: n,
    time: { at: T0, estimated: false },
    received: T0,
    attempt: 1,
    stage: 'sent',
    ...over,
  }
}

/** A call-back request of terminal T4-00456 on gw-0020. */
export function callback(n: number, over: Partial<UplinkEvent> = {}): UplinkEvent {
  return alarm(n, { id: `T4-00456:${n}`, class: 'request', kind: 'callback', code: 901, gateway: 'gw-0020', terminal: 'T4-00456', address: 5, ...over })
}

/** A relay by the center household of gw-0017 for a neighbour [MQTT-3.11]: a request of kind `relay`. */
export function relay(id: string, over: Partial<UplinkEvent> = {}): UplinkEvent {
  return alarm(0, {
    id,
    class: 'request',
    kind: 'relay',
    code: null,
    terminal: null,
    address: null,
    number: null,
    text: 'the sheep of Bayar are lost at the winter camp',
    relay: { what: 'livestock', for: { name: 'Bayar', phone: '13900000001', where: 'winter camp by the well' }, by: { household: 'Dorj', member: 'Tsetseg' } },
    ...over,
  })
}
