/**
 * Bounds of the store, shared by the store and the configuration (which must not load
 * SQLite to print its help). They bound only the lower classes: alarms are never dropped
 * to make room. When a limit is reached the oldest items go first, and by size the lowest
 * class first (status, then trouble, then requests).
 */
export interface Limits {
  /** Most request-class events kept (call-back requests, relays). */
  maxRequestEvents: number
  /** Most trouble-class events kept. */
  maxTroubleEvents: number
  /** Oldest request-class event kept, days. */
  maxRequestAgeDays: number
  /** Oldest trouble-class event kept, days. */
  maxTroubleAgeDays: number
  /** Most bytes of event bodies kept for the lower classes together, MB. */
  maxStoreMB: number
  /** Free disk space kept for alarms: below it, lower classes are refused, MB. */
  reserveMB: number
}

export const DEFAULT_LIMITS: Limits = {
  maxRequestEvents: 10_000,
  maxTroubleEvents: 10_000,
  maxRequestAgeDays: 30,
  maxTroubleAgeDays: 7,
  maxStoreMB: 64,
  reserveMB: 16,
}
