/** Which broker URLs a gateway and the console connect to. */

/**
 * Broker URL schemes, as mqtt.js connects with them: plain TCP (`mqtt:`, `tcp:`), TLS
 * (`mqtts:`, `ssl:`, `tls:`), WebSocket (`ws:`) and WebSocket over TLS (`wss:`). The one
 * list the gateway's configuration, its uplink and the console check against.
 */
export const BROKER_URL_SCHEMES = ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:', 'ws:', 'wss:'] as const

/** What is wrong with a broker URL (not a URL, no host, a scheme not in BROKER_URL_SCHEMES), or null. */
export function brokerUrlProblem(url: string): string | null {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return 'not a URL'
  }
  if (!(BROKER_URL_SCHEMES as readonly string[]).includes(parsed.protocol)) return `scheme ${parsed.protocol} is not one of ${BROKER_URL_SCHEMES.join(' ')}`
  if (parsed.hostname === '') return 'no host'
  return null
}
