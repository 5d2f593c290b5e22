/** Topics [MQTT-2.x]: where each payload of the contract goes. */

export const DEFAULT_TOPIC_PREFIX = 'steppelink/v1'

export interface GatewayTopics {
  /** Birth and death, retained. */
  state: string
  /** One alarm-class item per message; needs a receipt. */
  alert: string
  /** One item of a lower class per message. */
  event: string
  /** A batch of lower-class items: zstd-compressed, or bare from a gateway without zstd. */
  batch: string
  /** Gateway status: terminals, store, drops, clock. Retained. */
  status: string
  /** Error reports for rejected commands, and command results. */
  reply: string
  /** Commands to this gateway. */
  command: string
  /** Commands to every gateway in an area (if the gateway has one). */
  areaCommand: string | null
  /** Commands to every gateway. */
  allCommand: string
}

/**
 * The topic prefix ([MQTT-2.1]): levels joined by '/', none empty, no '+', '#' or NUL, not
 * starting with '$' (brokers keep `$...` topics to themselves). The one rule the gateway's
 * configuration and the console check.
 */
export const TOPIC_PREFIX_PATTERN = '^(?!\\$)[^#+/\\u0000]+(/[^#+/\\u0000]+)*$'
export const TOPIC_PREFIX_RULE = 'levels joined by "/", none empty, no "+" or "#", not starting with "$"'

/** MQTT topic levels may not hold '+', '#', '/' or NUL; ids are narrowed to a safe set. */
export const TOPIC_ID_PATTERN = '^[A-Za-z0-9._:-]{1,64}$'

export function gatewayTopics(prefix: string, gateway: string, area: string | null = null): GatewayTopics {
  const g = `${prefix}/gw/${gateway}`
  return {
    state: `${g}/state`,
    alert: `${g}/alert`,
    event: `${g}/event`,
    batch: `${g}/batch`,
    status: `${g}/status`,
    reply: `${g}/reply`,
    command: `${g}/cmd`,
    areaCommand: area === null ? null : `${prefix}/area/${area}/cmd`,
    allCommand: `${prefix}/all/cmd`,
  }
}
