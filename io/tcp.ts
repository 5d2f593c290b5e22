import type { MqttClient } from 'mqtt'

/**
 * Turns Nagle's algorithm off on an MQTT client's TCP socket (mqtt.js leaves it on, and
 * has no option for it). With it on, an alarm's PUBLISH written just after the PUBACK of a
 * command waits for the broker's delayed ACK, 40 ms or more (measured by the latency
 * benchmark: 13 of 30 alarms at 115200 baud reached the platform 8 to 30 ms late). Our
 * packets are small and each one matters on its own, which is the case Nagle is wrong for.
 * The gateway's uplink and the platform's console both use it.
 */
export function noDelay(client: MqttClient): void {
  const stream = client.stream as { setNoDelay?: (on: boolean) => unknown } | undefined
  stream?.setNoDelay?.(true)
}
