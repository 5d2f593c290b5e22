/**
 * The two brokers the scale benchmark compares, each in a process of its own so that /proc
 * gives each one's CPU and memory alone: aedes in a small Node child (device-sim/broker.ts
 * `startAedes`, in-memory persistence, its defaults) and mosquitto (device-sim/mosquitto.ts,
 * in-memory too, so neither writes to disk).
 */

import { readFileSync } from 'node:fs'
import { startMosquitto } from '../../device-sim/mosquitto.js'
import { FleetChild } from './fleet-child.js'

export type BrokerName = 'aedes' | 'mosquitto'
export const BROKERS: readonly BrokerName[] = ['aedes', 'mosquitto']

export interface ScaleBroker {
  name: BrokerName
  url: string
  pid: number
  close(): Promise<void>
}

/**
 * mosquitto's settings for a fleet: no cap on connections (-1, the default, said
 * explicitly), a queue per client large enough for the platform's session in a reconnect
 * storm (MQTT.md [MQTT-2.6]: the default 1000 would drop QoS 1 messages to a platform that
 * falls behind), and no log line per connection (aedes logs none either).
 */
export const MOSQUITTO_FLEET_CONF = ['max_connections -1', 'max_queued_messages 100000', 'connection_messages false']

export async function startScaleBroker(name: BrokerName): Promise<ScaleBroker> {
  if (name === 'mosquitto') {
    const m = await startMosquitto({ conf: MOSQUITTO_FLEET_CONF })
    const pid = m.pid
    if (pid === undefined) throw new Error('mosquitto: no pid')
    return { name, url: m.url, pid, close: () => m.close() }
  }
  const child = new FleetChild('aedes', 'aedes broker')
  try {
    const ready = await child.next('ready', 10_000)
    if (ready.url === undefined) throw new Error('aedes broker: no url')
    return { name, url: ready.url, pid: child.pid, close: () => child.stop() }
  } catch (e) {
    await child.stop()
    throw e
  }
}

/** The soft limit on open files of a process (/proc/PID/limits): the cap on its connections. */
export function openFilesLimit(pid: number): number {
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8')
  const soft = /Max open files\s+(\S+)/.exec(limits)?.[1]
  return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft)
}

/**
 * The kernel's count of connections dropped because a listener's accept queue was full
 * (TcpExt ListenOverflows, /proc/net/netstat): a broker with a short listen backlog loses
 * connections of a burst here, and the client sees a reset or a retransmitted SYN.
 * Counted for the whole network namespace, so other processes' overflows count too.
 */
export function listenOverflows(): number | null {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n')
    const i = lines.findIndex((l) => l.startsWith('TcpExt:'))
    const names = lines[i]?.split(/\s+/) ?? []
    const values = lines[i + 1]?.split(/\s+/) ?? []
    const k = names.indexOf('ListenOverflows')
    return k < 0 || values[k] === undefined ? null : Number(values[k])
  } catch {
    return null
  }
}
