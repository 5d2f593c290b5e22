/**
 * The MQTT contract between a gateway and the platform: topics, payload schemas, and the
 * encoding of payloads and batches. MQTT.md is its prose form; a platform integrator can
 * import these schemas (`steppelink/protocol`) instead of copying them. What callers
 * import; the parts, one concern each:
 *
 * - mqtt-contract.ts        the version, the time stamp every payload shares
 * - mqtt-broker-url.ts      the broker URL schemes, and what is wrong with a URL
 * - mqtt-topics.ts          topics, the topic prefix and id rules [MQTT-2.x]
 * - mqtt-uplink.ts          uplink payloads: classes and kinds, alert, terminal status, birth, reply [MQTT-3.x]
 * - mqtt-gateway-status.ts  the gateway's status [MQTT-3.7]
 * - mqtt-commands.ts        downlink commands and parseCommand [MQTT-5.x]
 * - mqtt-encoding.ts        payloads in CBOR or JSON [MQTT-4.3]
 * - mqtt-batch.ts           batches: schema, limits, zstd, bounded decoding [MQTT-4.2]
 * - mqtt-acl.ts             topic permissions: the rules, mqttAccess, the mosquitto ACL [MQTT-2.7]-[MQTT-2.10]
 * - mqtt-signing.ts         signed commands: envelope, Ed25519, key ids [MQTT-5.12]
 * - mqtt-copies.ts          same id, different content: a republication or another item [MQTT-4.15]
 *
 * Design:
 * - MQTT 3.1.1, QoS 1 everywhere: any broker works (mosquitto, aedes, EMQX ...).
 * - PUBACK means only "the broker has it". An alarm counts as received by the platform
 *   when the platform's `receipt` command names its id; until then the gateway publishes
 *   it again, under the same id. [MQTT-4.1]
 * - Every uplink item has an `id` that is unique forever, so the platform deduplicates by
 *   id and republishing is always safe. [MQTT-3.2]
 * - Commands are an envelope { v, id, type, ... } whose unknown fields are ignored, so a
 *   signature, a timestamp and a nonce can be added later (`auth`) without breaking
 *   older gateways. [MQTT-5.1]
 */

// `names`, the helper the schemas share, is not part of the contract.
export { MQTT_CONTRACT_VERSION, Time } from './mqtt-contract.js'
export * from './mqtt-broker-url.js'
export * from './mqtt-topics.js'
export * from './mqtt-uplink.js'
export * from './mqtt-gateway-status.js'
export * from './mqtt-commands.js'
export * from './mqtt-encoding.js'
export * from './mqtt-batch.js'
export * from './mqtt-acl.js'
export * from './mqtt-signing.js'
export * from './mqtt-copies.js'
