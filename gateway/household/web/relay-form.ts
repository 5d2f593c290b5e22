/**
 * The relay form's fields, read from a POST (or the local API's JSON) and checked before
 * the gateway is asked: each problem names its field, so the page can mark it and keep
 * what was typed. Limits are RELAY_LIMITS (bytes of UTF-8, as the serial link counts);
 * the gateway's own check (HouseholdService.relay) stays the last word, and a field it
 * refuses is shown the same way.
 */

import { RELAY_LIMITS, RELAY_WHATS, type RelayInput, type RelayWhat } from '../model.js'
import type { StringKey } from './strings.js'

/** The form's text fields, in the order of the form. */
export const RELAY_FIELDS = ['forName', 'forPhone', 'where', 'what', 'text', 'by'] as const
export type RelayField = (typeof RELAY_FIELDS)[number]

/** What was typed, as typed (every field a string, so the form can show it again). */
export type RelayTyped = Record<RelayField, string>

export interface FieldProblem {
  key: StringKey
  vars?: Record<string, string | number>
}

export type RelayCheck = { ok: true; input: RelayInput } | { ok: false; problems: Partial<Record<RelayField, FieldProblem>> }

// Control characters (C0, DEL, C1) but the line feed of a multi-line text.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/
const PHONE = /^[0-9 +()-]*$/

export function typedFrom(get: (name: string) => string | undefined): RelayTyped {
  const typed = {} as RelayTyped
  for (const f of RELAY_FIELDS) typed[f] = (get(f) ?? '').replace(/\r\n?/g, '\n')
  return typed
}

export function checkRelay(typed: RelayTyped): RelayCheck {
  const problems: Partial<Record<RelayField, FieldProblem>> = {}
  const v = Object.fromEntries(RELAY_FIELDS.map((f) => [f, f === 'text' ? typed[f].trim() : typed[f].trim().replace(/\n/g, ' ')])) as RelayTyped
  if (!(RELAY_WHATS as readonly string[]).includes(v.what)) problems.what = { key: 'err.unknownKind' }
  for (const f of ['forName', 'forPhone', 'where', 'text', 'by'] as const) {
    const bytes = Buffer.byteLength(v[f], 'utf8')
    if (bytes > RELAY_LIMITS[f]) problems[f] = { key: 'err.tooLong', vars: { n: bytes, max: RELAY_LIMITS[f] } }
    else if (CONTROL.test(v[f])) problems[f] = { key: 'err.badChar' }
  }
  if (v.forName === '' && !problems.forName) problems.forName = { key: 'err.required' }
  if (!problems.forPhone && !PHONE.test(v.forPhone)) problems.forPhone = { key: 'err.phone' }
  if (v.what === 'other' && v.text === '' && !problems.text) problems.text = { key: 'err.textForOther' }
  if (Object.keys(problems).length > 0) return { ok: false, problems }
  return {
    ok: true,
    input: {
      what: v.what as RelayWhat,
      forName: v.forName,
      text: v.text,
      ...(v.forPhone !== '' ? { forPhone: v.forPhone } : {}),
      ...(v.where !== '' ? { where: v.where } : {}),
      ...(v.by !== '' ? { by: v.by } : {}),
    },
  }
}

/** An idempotency key for a form as it is rendered: the same form sent twice makes one relay. */
export const IDEMPOTENCY_KEY = /^[A-Za-z0-9_-]{16,64}$/
