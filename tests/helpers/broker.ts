/**
 * Real MQTT brokers for tests, on 127.0.0.1 only: aedes in process (fast, hookable) and
 * mosquitto as a child process (the broker most deployments run).
 */

export { startAedes, type AedesBroker } from '../../device-sim/broker.js'
export { freePort, MOSQUITTO_INSTALL, MOSQUITTO_PATH, startMosquitto, type MosquittoBroker } from '../../device-sim/mosquitto.js'
