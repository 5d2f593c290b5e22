/**
 * What the gateway configuration's tests share (config.test.ts, config-files.test.ts): an
 * in-memory file system, temporary directories removed after each file, the required
 * flags, and readers of a LoadResult.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import type { GatewayConfig, LoadResult } from './config.js'

/** An in-memory file system for `readFile`: unknown paths fail as the real one does. */
export function files(map: Record<string, string>) {
  return (path: string): string => {
    const text = map[path]
    if (text === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' })
    return text
  }
}

export const tempDirs: string[] = []
export const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'steppelink-config-'))
  tempDirs.push(dir)
  return dir
}
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true })
})

/** The keys the TLS flags set, covered by the TLS tests below (they need real files). */
export const TLS_FLAG_PATHS = ['mqtt.tls.ca', 'mqtt.tls.cert', 'mqtt.tls.key', 'mqtt.tls.servername']

export const REQUIRED_FLAGS = ['--serial', '/dev/ttyUSB0', '--broker', 'mqtt://broker.local', '--id', 'gw-1', '--data', '/var/lib/steppelink']

/** The required flags but those named, e.g. when the file under test sets the brokers itself. */
export const requiredExcept = (...flags: string[]) => REQUIRED_FLAGS.flatMap((f, i) => (i % 2 === 0 && !flags.includes(f) ? [f, REQUIRED_FLAGS[i + 1]!] : []))

export function ok(r: LoadResult): GatewayConfig {
  if (!r.ok) throw new Error(`expected a config, got errors:\n${r.errors.join('\n')}`)
  return r.config
}

export function errors(r: LoadResult): string[] {
  if (r.ok) throw new Error('expected errors, got a config')
  return r.errors
}

export function at(config: GatewayConfig, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], config)
}

/** Every key set to something other than its default. */
export const FULL: GatewayConfig = {
  gateway: { id: 'xlg-abag-0042', area: 'abag' },
  serial: { path: '/dev/ttyAMA0', baud: 115200 },
  mqtt: {
    brokers: ['mqtts://110.example.cn:8883', 'wss://backup.example.cn/mqtt'],
    prefix: 'xlg/steppelink/v1',
    encoding: 'json',
    username: 'xlg-abag-0042',
    password: 'file-secret',
    keepalive: 120,
  },
  data: '/srv/steppelink',
  timing: { supervision: 90, receiptTimeout: 45, heartbeat: 30, statusInterval: 600 },
  limits: { maxRequestEvents: 500, maxTroubleEvents: 200, maxRequestAgeDays: 14, maxTroubleAgeDays: 3, maxStoreMB: 32, reserveMB: 8 },
  log: { level: 'debug' },
  household: { enabled: false, listen: '192.168.4.1', port: 8081, pin: '246810' },
}
