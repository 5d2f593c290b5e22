/** The public API of steppelink/protocol: what firmware tools and platform integrators import. */
export * from './codec.js'
export * from './errors.js'
export * from './link.js'
export * from './messages.js'
export * as mqtt from './mqtt.js'
export { nextSessionState, SESSION_TRANSITIONS, type SessionState } from './session.js'
export * from './timing.js'
