/**
 * Same id, different content [MQTT-4.15]: whether a second copy of an alert (or any uplink
 * event) under an id already seen is a republication of the same item or another item
 * under that id (a forgery, most likely: a compromised broker, or a client past the ACL,
 * that published first under a terminal's next id).
 *
 * What changes between republications of one item (gateway/outbox.ts uplinkEvent):
 * - `attempt` and `stage`: per publication, never compared;
 * - `time` and `received` (the same moment): computed at each publication from the raw
 *   clock and the offset ([MQTT-3.5]). An item stored with the platform's offset keeps its
 *   time; one stored before the gateway's clock was set is `estimated` (its raw clock) until
 *   a `time` of the same boot corrects it, and a later `time` of that boot corrects it again
 *   by a slightly different offset (the delivery delay is ignored). So: two estimated times
 *   are the same raw clock and must be equal; two corrected ones must be within
 *   COPY_TIME_TOLERANCE_MS. An estimated first copy and a corrected later one is what a
 *   gateway does after a power cut with the link down: it boots without the time, stores
 *   the alarm, publishes it with its raw clock when the link comes back, and republishes it
 *   corrected once the platform's `time` has come (a slow receipt is enough). That is common
 *   on the grassland, so it is a republication while the case is open: the operator's
 *   answers under the id reach the button whichever copy came first. On a case already
 *   resolved it is a conflict: there a forgery published ahead of the press with an
 *   estimated time would make the real emergency a copy of a closed case. The other way
 *   round (corrected first, estimated later) never happens honestly: the gateway stores
 *   each item's offset with it.
 * Every other field of the schema is written once, when the gateway stores the item, and
 * must be equal. Fields this version does not know are not compared.
 */

import type { UplinkEvent } from './mqtt-uplink.js'
import { UplinkEvent as UplinkEventSchema } from './mqtt-uplink.js'

/** Fields that differ between publications of one item. [MQTT-4.15] */
export const PER_PUBLICATION_FIELDS = ['attempt', 'stage'] as const

/** How far two corrected times of one item may be apart: offsets of one boot differ by delivery delays. [MQTT-4.15] */
export const COPY_TIME_TOLERANCE_MS = 60_000

/** The fields that identify an item: every field of the schema but the per-publication ones and the time, compared on its own. */
export const IDENTIFYING_FIELDS: readonly string[] = Object.keys(UplinkEventSchema.properties).filter(
  (k) => !(PER_PUBLICATION_FIELDS as readonly string[]).includes(k) && k !== 'time' && k !== 'received',
)

/**
 * The fields in which `later` is not a republication of `first` (the same id): empty when it
 * is one. `time` and `received` follow the time rule above; `open`: the case is not resolved.
 */
export function differingContent(first: UplinkEvent, later: UplinkEvent, opts: { open?: boolean } = {}): string[] {
  const differs: string[] = []
  const a = first as Record<string, unknown>
  const b = later as Record<string, unknown>
  for (const k of IDENTIFYING_FIELDS) if (!sameValue(a[k], b[k])) differs.push(k)
  const open = opts.open === true
  if (!sameMoment(first.time, later.time, first.time.at, later.time.at, open)) differs.push('time')
  if (!sameMoment(first.time, later.time, first.received, later.received, open)) differs.push('received')
  return differs
}

function sameMoment(ta: UplinkEvent['time'], tb: UplinkEvent['time'], a: number, b: number, open: boolean): boolean {
  // Estimated first, corrected later: the gateway set its clock between two publications.
  if (ta.estimated && !tb.estimated) return open
  if (ta.estimated !== tb.estimated) return false
  return ta.estimated ? a === b : Math.abs(a - b) <= COPY_TIME_TOLERANCE_MS
}

/** Deep equality of decoded payload values (maps compared by their keys, in any order). */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.length !== kb.length) return false
  return ka.every((k) => Object.hasOwn(b, k) && sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}
