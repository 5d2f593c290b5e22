/**
 * Schema errors as sentences for a person at a board: each names the key, what was
 * expected, what was found (never a password) and where it came from, in the order of the
 * schema (and of the help and the docs).
 */

import { Settings } from 'typebox/system'
import { OPTIONS } from './config-flags.js'
import { nearest } from './config-nearest.js'
import { GatewayConfigSchema, leafPaths, propertiesOf, schemaAt, validator } from './config-schema.js'
import { getPath, kindOf, type Tree } from './config-tree.js'

export interface Problem {
  /** Dotted path of the key, '' for the whole document. */
  path: string
  text: string
}

export function schemaErrors(value: Tree, sourceOf: (at: string[]) => string): Problem[] {
  const out: { at: string[]; text: string }[] = []
  const seen = new Set<string>()
  for (const e of allErrors(value)) {
    const at = e.instancePath
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    if (e.keyword === 'required') {
      for (const key of (e.params as { requiredProperties: string[] }).requiredProperties) out.push({ at: [...at, key], text: missing([...at, key]) })
      continue
    }
    if (e.keyword === 'additionalProperties') {
      for (const key of (e.params as { additionalProperties: string[] }).additionalProperties) out.push({ at: [...at, key], text: unknownKey(at, key, sourceOf) })
      continue
    }
    const schema = schemaAt(at)
    // No schema: the key itself is unknown, reported by its parent's additionalProperties.
    if (schema === undefined || seen.has(e.instancePath)) continue
    seen.add(e.instancePath)
    out.push({ at, text: `config error: ${dotted(at)}: expected ${String((schema as { description?: string }).description)}, got ${show(at, getPath(value, at.join('.')))}${sourceOf(at)}` })
  }
  // In the order of the schema (and of the help and the docs), whatever order TypeBox found them in.
  const order = leafPaths(GatewayConfigSchema, [])
  const rank = ({ at }: { at: string[] }) => {
    // An unknown key ranks with its section; an unknown section comes first.
    const keys = at.filter((k) => !/^\d+$/.test(k))
    for (let n = keys.length; n > 0; n--) {
      const known = keys.slice(0, n).join('.')
      const i = order.findIndex((leaf) => leaf === known || leaf.startsWith(`${known}.`))
      if (i !== -1) return i
    }
    return -1
  }
  return out
    .map((p, i) => ({ ...p, i, rank: rank(p) }))
    .sort((a, b) => a.rank - b.rank || a.i - b.i)
    .map(({ at, text }) => ({ path: at.filter((k) => !/^\d+$/.test(k)).join('.'), text }))
}

/** TypeBox keeps 8 errors by default (a guard for untrusted input); a config file is ours. */
function allErrors(value: unknown) {
  const { maxErrors } = Settings.Get()
  Settings.Set({ maxErrors: 200 })
  try {
    return validator.Errors(value)
  } finally {
    Settings.Set({ maxErrors })
  }
}

function missing(at: string[]): string {
  const path = at.join('.')
  const option = OPTIONS.find((o) => o.path === path)
  const flag = option ? `--${option.flag} ${option.arg}${option.value === 'list' ? ' (once per broker)' : ''} or ` : ''
  return `config error: ${path}: missing; give ${flag}set ${path} in the config file`
}

function unknownKey(at: string[], key: string, sourceOf: (at: string[]) => string): string {
  const known = Object.keys(propertiesOf(schemaAt(at)))
  const near = nearest(key, known)
  // A key put in the wrong section: `brokers` at the top instead of in `mqtt`.
  const elsewhere = near === null ? leafPaths(GatewayConfigSchema, []).find((p) => p.split('.').pop()?.toLowerCase() === key.toLowerCase()) : undefined
  const guess = near !== null ? dotted([...at, near]) : elsewhere
  const where = at.length === 0 ? 'top-level keys' : `keys in ${dotted(at)}`
  return `config error: ${dotted([...at, key])}: unknown key${sourceOf([...at, key])}.${guess ? ` Did you mean ${guess}?` : ''} Known ${where}: ${known.join(', ')}`
}

/** `mqtt.brokers[1]` from ['mqtt', 'brokers', '1']. */
function dotted(at: string[]): string {
  return at.reduce((s, k) => (/^\d+$/.test(k) ? `${s}[${k}]` : s === '' ? k : `${s}.${k}`), '')
}

function show(at: string[], value: unknown): string {
  // A mistyped password is still a password: say what kind of thing it was, never what.
  if (at.at(-1) === 'password' || at.join('.') === 'household.pin') return kindOf(value)
  if (value instanceof Date) return `the date ${value.toISOString()}`
  if (typeof value === 'bigint') return String(value)
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}
