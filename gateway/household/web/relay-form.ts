/**
 * A relay as the page's form and the local API send it: the form's fields, read from a
 * POST (or the API's JSON), then the one rule of a relay (checkRelay in ../model.ts) and
 * the gateway, through submitRelay, the one way both ask it. A refusal names its fields,
 * so the page can mark each in its own words (formProblems) and keep what was typed, and
 * the API can answer the rule's errors as they are.
 */

import type { Logger } from '../../log.js'
import { checkRelay, type HouseholdService, type RelayInputField, type RelayProblem, type RelayResult, relayRefused } from '../model.js'
import type { StringKey } from './strings.js'

/** The form's text fields, in the order of the form. */
export const RELAY_FIELDS = ['forName', 'forPhone', 'where', 'what', 'text', 'by'] as const
export type RelayField = (typeof RELAY_FIELDS)[number]

// The form has a field for each field of the rule, and no other (a change to one without the other does not compile).
const _sameFields: Record<RelayField, RelayInputField> & Record<RelayInputField, RelayField> = { forName: 'forName', forPhone: 'forPhone', where: 'where', what: 'what', text: 'text', by: 'by' }
void _sameFields

/** What was typed, as typed (every field a string, so the form can show it again). */
export type RelayTyped = Record<RelayField, string>

export interface FieldProblem {
  key: StringKey
  vars?: Record<string, string | number>
}

/** The page's words for each problem the rule finds (web/strings.ts has them in both languages). */
const PROBLEM_KEY: Readonly<Record<RelayProblem, StringKey>> = {
  unknownKind: 'err.unknownKind',
  required: 'err.required',
  tooLong: 'err.tooLong',
  badChar: 'err.badChar',
  phone: 'err.phone',
}

export function typedFrom(get: (name: string) => string | undefined): RelayTyped {
  const typed = {} as RelayTyped
  for (const f of RELAY_FIELDS) typed[f] = (get(f) ?? '').replace(/\r\n?/g, '\n')
  return typed
}

/**
 * A refused relay's problems, at their fields, in the page's words: the rule's problems
 * by their code (`text` required for `other` has its own sentence); anything else the
 * gateway refuses (a field without a problem the rule knows) in the gateway's words.
 */
export function formProblems(refusal: Extract<RelayResult, { ok: false }>): Partial<Record<RelayField, FieldProblem>> {
  type Refused = { field?: string | undefined; problem?: RelayProblem | undefined; bytes?: number | undefined; limit?: number | undefined; message: string }
  const unknownKind = refusal.code === 'RELAY_UNKNOWN_KIND'
  const errors: readonly Refused[] = refusal.errors ?? [{ field: refusal.field, problem: refusal.problem ?? (unknownKind ? 'unknownKind' : undefined), message: refusal.message }]
  const problems: Partial<Record<RelayField, FieldProblem>> = {}
  for (const e of errors) {
    const field: RelayField = (RELAY_FIELDS as readonly (string | undefined)[]).includes(e.field) ? (e.field as RelayField) : unknownKind ? 'what' : 'text'
    problems[field] ??= problemOf(e, field)
  }
  return problems

  function problemOf(e: Refused, field: RelayField): FieldProblem {
    if (e.problem === 'tooLong' && e.bytes !== undefined && e.limit !== undefined) return { key: 'err.tooLong', vars: { n: e.bytes, max: e.limit } }
    if (e.problem === 'required' && field === 'text') return { key: 'err.textForOther' }
    if (e.problem !== undefined && e.problem !== 'tooLong') return { key: PROBLEM_KEY[e.problem] }
    return { key: 'err.gateway', vars: { message: e.message } }
  }
}

/** An idempotency key for a form as it is rendered: the same form sent twice makes one relay. */
export const IDEMPOTENCY_KEY = /^[A-Za-z0-9_-]{16,64}$/

/**
 * Checks a relay with the rule and, if it holds, asks the gateway to store it: the one
 * way the page and the local API relay. A relay() that throws (it should not: the
 * service answers STORE_FAILED itself) is logged and answered STORE_FAILED, NOT saved,
 * so the member is told to call 110 by phone rather than shown a 500.
 */
export function submitRelay(household: HouseholdService, sent: unknown, key: string, log: Logger | null, from: 'the page' | 'the local API'): RelayResult {
  const check = checkRelay(sent)
  if (!check.ok) return relayRefused(check.errors)
  try {
    return household.relay(check.input, key)
  } catch (err) {
    log?.error({ err, from }, `relay from ${from}: relay() threw; the relay was NOT saved`)
    return { ok: false, code: 'STORE_FAILED', message: err instanceof Error ? err.message : String(err) }
  }
}
