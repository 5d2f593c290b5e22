/**
 * The Uplink's options (each with its default and unit) and the state it reports. The rules
 * they cite ([UPLINK-n]) are in the theory of operation at the top of uplink.ts.
 */

import type mqtt from 'mqtt'
import type { Timers } from '../io/timers.js'
import type { TlsMaterial } from './tls.js'

export interface UplinkState {
  online: boolean
  /**
   * The broker this state is about: the one now connected, or the one just lost or that
   * just failed. null before the first attempt and once stopped.
   */
  broker: string | null
  /** One log line: what happened and what comes next. */
  reason?: string
  /** When offline with another attempt scheduled: its delay, ms. */
  retryInMs?: number
}

export interface UplinkOptions {
  /** Broker URLs (`mqtt://host:1883`, `mqtts://...`), tried in turn on failure. [UPLINK-7] */
  brokers: string[]
  /** Stable per gateway (`steppelink-gw-<id>`), so the broker finds the persistent session again. */
  clientId: string
  username?: string
  password?: string
  /**
   * TLS for mqtts:// (tls://, wss://) brokers: asked before every connection attempt, so
   * that certificate files renewed on disk take effect at the next reconnect. Must not
   * throw. The broker's certificate is always verified (`rejectUnauthorized: true`).
   * Default: none (plain TCP, or TLS against the public CAs for an mqtts:// URL).
   */
  tls?: () => TlsMaterial
  /** MQTT keepalive, s. Default 60. A silent link is noticed within 1.5 × this. [UPLINK-8] */
  keepaliveS?: number
  /** Command topics, subscribed with QoS 1 unless a resumed session has them. [UPLINK-4] */
  subscriptions: string[]
  /**
   * The death, registered as the will: retained, QoS 1. [UPLINK-5] A function is asked
   * again before every connection attempt, so that the death can name the session that
   * the birth of that connection will carry (the Sparkplug B bdSeq pattern).
   */
  will: { topic: string; payload: Buffer } | (() => { topic: string; payload: Buffer })
  /**
   * Called at every CONNACK (the caller counts its sessions inside); published retained,
   * QoS 1, before anything else. Must not throw. [UPLINK-4]
   */
  birth: () => { topic: string; payload: Buffer }
  backoff?: {
    /** First retry ceiling, ms. Default 1000. */
    initialMs?: number
    /** Largest retry ceiling, ms. Default 300000 (5 min). */
    maxMs?: number
    /** A connection online this long resets the backoff, ms. Default 10000. */
    stableMs?: number
    /** Largest retry ceiling while `urgent()` says an alarm waits, ms. Default 5000. */
    urgentMaxMs?: number
  }
  /**
   * Whether an alarm is waiting to go up: the retry ceiling is then at most urgentMaxMs, so
   * that after an outage of hours the alarm does not wait for a retry minutes away.
   * [UPLINK-6] Default: never.
   */
  urgent?: () => boolean
  /** No CONNACK within this, ms: the attempt fails. Default 30000 (TCP + CONNECT over 2G). */
  connectTimeoutMs?: number
  /** Bound on a graceful stop (death PUBACK, then the broker closing), ms. Default 5000. */
  stopTimeoutMs?: number
  /** Jitter source in [0, 1). Default Math.random. */
  random?: () => number
  /** Default: the global setTimeout / clearTimeout. mqtt.js keeps its own keepalive timers. */
  timers?: Timers
  /**
   * Something the operator should know that does not change the state: a subscription the
   * broker refused (commands on it will not arrive; alarms still go up). Default: ignored.
   */
  onWarning?: (message: string) => void
  /** Clock for how long the uplink has been down [UPLINK-6], ms. Default Date.now. */
  now?: () => number
  /** Default mqtt.connect. */
  connect?: typeof mqtt.connect
  /**
   * A command arrived; mqtt.js sends its PUBACK when this returns. May come before
   * `online` is true (the broker delivers a resumed session's queue right after CONNACK),
   * so a reply must go through the outbox, not straight to publish(). Must not throw.
   */
  onCommand: (topic: string, payload: Buffer, retained: boolean) => void
  onState: (s: UplinkState) => void
}
