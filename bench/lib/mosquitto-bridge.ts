/**
 * The baseline of the outage benchmark: what a careful system administrator builds instead
 * of our gateway. A local mosquitto on the board, with persistence, bridged to the
 * platform's broker; whatever runs on the board publishes to the local broker at QoS 1, and
 * the bridge forwards it upstream when the link allows, first in, first out.
 *
 * The bridge configuration, line by line (mosquitto.conf(5) of mosquitto 2.0):
 *
 *   persistence true            (startMosquitto) queued messages survive a broker restart
 *   autosave_interval 60        save the queue to disk every minute, not every 30 minutes
 *   max_queued_messages N       messages held per client (the bridge is one) above those in
 *                               flight. The default, 1000, DROPS every QoS 1 message beyond
 *                               it with one notice line in mosquitto's log and nothing to the
 *                               publisher (it got its PUBACK): a day's backlog would be lost
 *                               silently. Raised to hold the whole backlog.
 *   max_queued_bytes 0          (default) no byte limit on that queue
 *   connection platform         the bridge
 *   address HOST:PORT           the platform's broker (here: through the weak link)
 *   remote_clientid ID          fixed, so the platform's broker keeps the session
 *   cleansession false          persistent session on both sides: nothing queued is
 *                               thrown away when the link drops
 *   bridge_protocol_version mqttv311   as our gateway
 *   topic steppelink/v1/gw/# out 1     forward our topics upstream at QoS 1 (PUBACK per
 *                               message, resent after a lost link)
 *   keepalive_interval 60       (default) as our gateway's keepalive
 *   restart_timeout 5 30        (default) reconnect with jittered backoff, 5 s to 30 s
 *   notifications false         no $SYS bridge-state messages on a metered link
 *   max_inflight_messages 20    (default, global) QoS 1 messages in flight at once
 */

import { startMosquitto, type MosquittoBroker } from '../../device-sim/mosquitto.js'

export interface BridgeOptions {
  /** The platform's broker, as the bridge reaches it. */
  remote: { host: string; port: number }
  /** The bridge's client id at the platform's broker. */
  clientId: string
  /** Topic pattern forwarded upstream. */
  topic: string
  /** max_queued_messages: at least the backlog, or mosquitto drops the rest silently. */
  maxQueuedMessages: number
}

/** The bridge's mosquitto.conf lines (global options first: they must precede `connection`). */
export function bridgeConf(o: BridgeOptions): string[] {
  return [
    'autosave_interval 60',
    `max_queued_messages ${o.maxQueuedMessages}`,
    'max_queued_bytes 0',
    'max_inflight_messages 20',
    'connection platform',
    `address ${o.remote.host}:${o.remote.port}`,
    `remote_clientid ${o.clientId}`,
    'cleansession false',
    'bridge_protocol_version mqttv311',
    `topic ${o.topic} out 1`,
    'keepalive_interval 60',
    'restart_timeout 5 30',
    'notifications false',
  ]
}

/** Starts the local mosquitto, with persistence and the bridge; it connects the bridge at once. */
export function startBridgedMosquitto(o: BridgeOptions): Promise<MosquittoBroker> {
  return startMosquitto({ persistence: true, conf: bridgeConf(o) })
}
