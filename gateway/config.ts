/**
 * The gateway's configuration: defaults, then a config file (JSON or TOML), then the
 * password from the environment, then command-line flags, each overriding the one before.
 * The merged result is checked once, with one TypeBox schema, at this boundary; the rest
 * of the gateway takes a `GatewayConfig` and checks nothing again.
 *
 * Errors are for a person at a terminal on a board: each names the key (`mqtt.keepalive`),
 * what was expected, what was found and where it came from (the file, a flag, the
 * environment), and all of them are reported at once, so one edit fixes them all.
 *
 * Nothing here does I/O except the injected `readFile` (the config file, and the TLS files
 * of `mqtt.tls`, checked once here: tls.ts), and nothing here ever prints or returns a
 * password or a key.
 *
 * This file merges the layers and checks the result; the parts, in the order a value goes
 * through them: config-flags.ts (OPTIONS, the flags as a layer), config-file.ts (reading
 * and parsing the file), config-schema.ts (the schema and DEFAULTS), config-errors.ts
 * (schema errors as sentences), config-checks.ts (rules across keys, timingProblem), with
 * config-tree.ts (tables and dotted paths) and config-nearest.ts (did you mean) beside.
 */

import { crossChecks, tlsChecks } from './config-checks.js'
import { schemaErrors } from './config-errors.js'
import { defaultReadFile, readConfigFile, type ReadFile } from './config-file.js'
import { readFlags } from './config-flags.js'
import { DEFAULTS, GatewayConfigSchema, inSchemaOrder, PASSWORD_ENV, validator, type GatewayConfig } from './config-schema.js'
import { getPath, merge, setPath, type Tree } from './config-tree.js'

export { timingProblem } from './config-checks.js'
export type { ReadFile } from './config-file.js'
export { OPTIONS, wantsHelp, type GatewayOption } from './config-flags.js'
export { BAUD_RATES, BROKER_SCHEMES, DEFAULTS, GatewayConfigSchema, LOG_LEVELS, PASSWORD_ENV, type GatewayConfig, type LogLevel } from './config-schema.js'

export type LoadResult = { ok: true; config: GatewayConfig } | { ok: false; errors: string[] }

/**
 * Builds the configuration from flags (`argv`, without the subcommand name), the
 * environment (only `STEPPELINK_MQTT_PASSWORD`) and the file named by `--config`, read
 * with `readFile`. Never throws for bad input: every problem found is in `errors`, one
 * line each, ready to print.
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv, readFile: ReadFile = defaultReadFile): LoadResult {
  // 1. Flags, kept aside until the file is read: they are applied last.
  const read = readFlags(argv)
  if (!read.ok) return { ok: false, errors: read.errors }
  const { flags, file, sources } = read

  // 2. The file.
  let fromFile: Tree = {}
  if (file !== null) {
    const parsed = readConfigFile(file, readFile)
    if (!parsed.ok) return { ok: false, errors: [parsed.error] }
    fromFile = parsed.tree
  }

  // 3. The password from the environment; an empty variable counts as unset.
  const fromEnv: Tree = {}
  const password = env[PASSWORD_ENV]
  if (password !== undefined && password !== '') {
    setPath(fromEnv, 'mqtt.password', password)
    if (!sources.has('mqtt.password')) sources.set('mqtt.password', `from ${PASSWORD_ENV}`)
  }

  // Every section exists, so a missing required key is reported as `gateway.id`, not `gateway`.
  const skeleton: Tree = { gateway: {}, serial: {}, mqtt: {}, timing: {}, limits: {}, log: {}, household: {} }
  const merged = [structuredClone(DEFAULTS) as Tree, fromFile, fromEnv, flags].reduce<Tree>(merge, skeleton)

  const sourceOf = (at: string[]): string => {
    for (let i = at.length; i > 0; i--) {
      const s = sources.get(at.slice(0, i).join('.'))
      if (s) return ` (${s})`
    }
    return file !== null && getPath(fromFile, at.join('.')) !== undefined ? ` (in ${file})` : ''
  }

  const found = validator.Check(merged) ? [] : schemaErrors(merged, sourceOf)
  const bad = new Set(found.map((p) => p.path))
  const problems = [...found.map((p) => p.text), ...crossChecks(merged, bad, sourceOf), ...tlsChecks(merged, bad, sourceOf, readFile)]
  if (problems.length > 0) return { ok: false, errors: problems }
  return { ok: true, config: inSchemaOrder(GatewayConfigSchema, merged) as GatewayConfig }
}

/** A copy of the configuration that is safe to log or print: passwords become '***'. */
export function redact(config: GatewayConfig): GatewayConfig {
  const copy = structuredClone(config)
  if (copy.mqtt.password !== undefined) copy.mqtt.password = '***'
  if (copy.household.pin !== undefined) copy.household.pin = '***'
  copy.mqtt.brokers = copy.mqtt.brokers.map((b) => {
    const url = new URL(b)
    if (url.password === '') return b
    url.password = '***'
    return url.href
  })
  return copy
}
