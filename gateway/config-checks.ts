/** Rules of the configuration that span keys, which the schema cannot say. */

import type { ReadFile } from './config-file.js'
import { getPath, isTree, type Tree } from './config-tree.js'
import { tlsProblems, type TlsSettings } from './tls.js'

/**
 * The rule between the terminal's heartbeat and the gateway's supervision, seconds: what
 * is wrong, or null. The config file and the platform's `config` command both obey it.
 */
export function timingProblem(supervisionS: number, heartbeatS: number): string | null {
  if (supervisionS >= 2 * heartbeatS) return null
  return `${supervisionS} s is less than twice timing.heartbeat (${heartbeatS} s), so one lost HEARTBEAT would raise "terminal lost"; raise supervision or lower heartbeat`
}

/** Rules that span keys; each runs only when the keys it reads passed the schema (`bad` holds those that did not). */
export function crossChecks(merged: Tree, bad: Set<string>, sourceOf: (at: string[]) => string): string[] {
  const errors: string[] = []
  const supervision = getPath(merged, 'timing.supervision')
  const heartbeat = getPath(merged, 'timing.heartbeat')
  const valid = (...paths: string[]) => paths.every((p) => ![...bad].some((b) => b === p || p.startsWith(`${b}.`)))
  const timing = valid('timing.supervision', 'timing.heartbeat') && typeof supervision === 'number' && typeof heartbeat === 'number' ? timingProblem(supervision, heartbeat) : null
  if (timing !== null) errors.push(`config error: timing.supervision: ${timing}${sourceOf(['timing', 'supervision'])}`)
  if (valid('mqtt.password') && getPath(merged, 'mqtt.password') !== undefined && getPath(merged, 'mqtt.username') === undefined) {
    errors.push('config error: mqtt.password is set but mqtt.username is not: MQTT sends a password only with a user name; give --username NAME or set mqtt.username')
  }
  return errors
}

/**
 * The TLS files of `mqtt.tls`, looked at once at start (tls.ts, tlsProblems): they can be
 * read, are PEM, the certificate and key are a pair, and the brokers speak TLS. Runs only
 * when `mqtt.tls` and `mqtt.brokers` passed the schema.
 */
export function tlsChecks(merged: Tree, bad: Set<string>, sourceOf: (at: string[]) => string, readFile: ReadFile): string[] {
  const tls = getPath(merged, 'mqtt.tls')
  const brokers = getPath(merged, 'mqtt.brokers')
  if (!isTree(tls) || !Array.isArray(brokers)) return []
  if ([...bad].some((b) => b === 'mqtt' || b.startsWith('mqtt.tls') || b.startsWith('mqtt.brokers'))) return []
  return tlsProblems(tls as TlsSettings, brokers as string[], readFile, sourceOf)
}
