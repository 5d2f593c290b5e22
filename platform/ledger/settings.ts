/**
 * The ledger's settings: the deadlines per class and per kind, the escalation levels, and
 * when a deadline counts as near. One TypeBox schema, as platform/options.ts does for the
 * console: every field says what it must be in words, and checkSettings() refuses the first
 * field that does not fit with that text. The settings are kept in the ledger file (every
 * desk on one file counts the same deadlines) and each change is in the audit trail.
 *
 * Why strict (no fields beyond the schema): the settings are written by people; a misspelt
 * `acknowlegeS` that was silently ignored would leave an alarm on the 90 s default while
 * the centre believes it changed it.
 */

import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import { LedgerError } from './errors.js'

/** At most a year: a deadline longer than that is a typo (ms given as seconds). */
const MAX_DEADLINE_S = 366 * 86_400
const seconds = (what: string) => Type.Integer({ minimum: 1, maximum: MAX_DEADLINE_S, description: `${what}: whole seconds from 1 to ${MAX_DEADLINE_S}` })
const orNone = (what: string) => Type.Union([seconds(what), Type.Null()], { description: `${what}: whole seconds from 1 to ${MAX_DEADLINE_S}, or null for none` })

/** The deadlines of one class or kind; a field left out is the class's (or the default's). */
export const DeadlineSettings = Type.Object(
  {
    /** An operator must acknowledge (or take further) within this; null: no such deadline. */
    acknowledgeS: Type.Optional(orNone('acknowledge within')),
    /** The case must be resolved within this; null: no such deadline. */
    handleS: Type.Optional(orNone('handle (resolve) within')),
  },
  { additionalProperties: false },
)
export type DeadlineSettings = Static<typeof DeadlineSettings>

export const Contact = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, description: 'a name, 1-100 characters' }),
    phone: Type.String({ minLength: 1, maxLength: 32, description: 'a phone number, 1-32 characters' }),
  },
  { additionalProperties: false },
)
export type Contact = Static<typeof Contact>

/** One level a case can be escalated to, lowest first in the list. */
export const EscalationLevel = Type.Object(
  {
    /**
     * Shown to the herder: "escalated to the <name>". Unique in the list. At most 24
     * characters, so that the text stays within the 120 bytes a terminal shows [MQTT-4.7]
     * in any script (17 + 24 x 4 bytes).
     */
    name: Type.String({ minLength: 1, maxLength: 24, description: 'a level name, 1-24 characters' }),
    /** The level must resolve the case within this from the escalation: the new expectation at the button. */
    deadlineS: seconds('the level resolves within'),
    /** Who to call at this level. */
    contacts: Type.Array(Contact, { maxItems: 20, description: 'at most 20 contacts, each { name, phone }' }),
  },
  { additionalProperties: false },
)
export type EscalationLevel = Static<typeof EscalationLevel>

export const LedgerSettings = Type.Object(
  {
    /** The deadlines of alarms and of requests, and per kind (`fire`, `callback`, `relay` ...) over those of its class. */
    deadlines: Type.Object(
      {
        alarm: DeadlineSettings,
        request: DeadlineSettings,
        kinds: Type.Record(Type.String({ minLength: 1, maxLength: 40 }), DeadlineSettings, { description: 'per kind: { acknowledgeS?, handleS? }' }),
      },
      { additionalProperties: false },
    ),
    /** The levels, lowest first: at least one, names unique. */
    levels: Type.Array(EscalationLevel, { minItems: 1, maxItems: 10, description: '1-10 levels, lowest first' }),
    /** When a deadline passes with a level above, overdue() says to escalate to it (the caller does). */
    autoEscalate: Type.Boolean({ description: 'true or false' }),
    /** A deadline is `near` once less than this share of its time is left (0.25: the last quarter). */
    nearShare: Type.Number({ minimum: 0, maximum: 1, description: 'a share from 0 to 1' }),
  },
  { additionalProperties: false },
)
export type LedgerSettings = Static<typeof LedgerSettings>

/**
 * The defaults: the usual bound of alarm-receiving centres for an alarm nobody acknowledged
 * (90 s), the field reports' 24 h for a request (an errand done on someone's behalf), and
 * village -> township -> county. The contacts are the centre's to fill in.
 */
export const LEDGER_DEFAULTS: LedgerSettings = {
  deadlines: {
    alarm: { acknowledgeS: 90, handleS: null },
    request: { acknowledgeS: null, handleS: 86_400 },
    kinds: {},
  },
  levels: [
    { name: 'village', deadlineS: 4 * 3600, contacts: [] },
    { name: 'township', deadlineS: 12 * 3600, contacts: [] },
    { name: 'county', deadlineS: 24 * 3600, contacts: [] },
  ],
  autoEscalate: true,
  nearShare: 0.25,
}

const check = Compile(LedgerSettings)

/** Throws LEDGER_BAD_SETTINGS naming the first field that does not fit (`levels/1/deadlineS: ...`). */
export function checkSettings(s: unknown): asserts s is LedgerSettings {
  if (!check.Check(s)) {
    // `schema is false` is the echo of an additionalProperties error: report the field instead.
    const e = [...check.Errors(s)].find((x) => x.keyword !== 'boolean')
    const where = e?.instancePath.replace(/^\//, '') || 'settings'
    const extra = e?.keyword === 'additionalProperties' ? ` (${(e.params as { additionalProperties?: string[] }).additionalProperties?.join(', ')})` : ''
    throw new LedgerError('LEDGER_BAD_SETTINGS', `${where}: ${e?.message ?? 'does not fit the ledger settings'}${extra}`)
  }
  const names = s.levels.map((l) => l.name)
  const twice = names.find((n, i) => names.indexOf(n) !== i)
  if (twice !== undefined) throw new LedgerError('LEDGER_BAD_SETTINGS', `levels: the name '${twice}' is given twice; each level needs its own name`)
}

/** Defaults with `patch` over them (its `deadlines` merged per class; `levels` replaced whole), checked. */
export function withSettings(base: LedgerSettings, patch: LedgerSettingsPatch): LedgerSettings {
  const d = patch.deadlines
  const s = {
    ...base,
    ...patch,
    deadlines: {
      alarm: { ...base.deadlines.alarm, ...d?.alarm },
      request: { ...base.deadlines.request, ...d?.request },
      kinds: { ...base.deadlines.kinds, ...d?.kinds },
    },
  }
  checkSettings(s)
  return structuredClone(s)
}

/** What a caller may give: any part of the settings. */
export interface LedgerSettingsPatch {
  deadlines?: { alarm?: DeadlineSettings; request?: DeadlineSettings; kinds?: Record<string, DeadlineSettings> }
  levels?: EscalationLevel[]
  autoEscalate?: boolean
  nearShare?: number
}

/** The deadlines of a case of this class and kind, in ms (null: none): the kind's over the class's. */
export function deadlinesFor(s: LedgerSettings, cls: 'alarm' | 'request', kind: string): { acknowledgeMs: number | null; handleMs: number | null } {
  const k = Object.hasOwn(s.deadlines.kinds, kind) ? s.deadlines.kinds[kind] : undefined
  const c = s.deadlines[cls]
  const pick = (field: 'acknowledgeS' | 'handleS') => {
    const v = k?.[field] !== undefined ? k[field] : c[field]
    return v === undefined || v === null ? null : v * 1000
  }
  return { acknowledgeMs: pick('acknowledgeS'), handleMs: pick('handleS') }
}
