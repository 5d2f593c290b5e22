/**
 * The config file: read through the injected `readFile`, parsed as JSON or TOML, and a
 * syntax error said with its line and column.
 */

import { readFileSync } from 'node:fs'
import { parse as parseToml, TomlError } from 'smol-toml'
import { isTree, kindOf, type Tree } from './config-tree.js'

export type ReadFile = (path: string) => string

export const defaultReadFile: ReadFile = (path) => readFileSync(path, 'utf8')

/** The file's tables, or the one error that stops loading: unreadable, not JSON or TOML, or not a table. */
export function readConfigFile(file: string, readFile: ReadFile): { ok: true; tree: Tree } | { ok: false; error: string } {
  let text: string
  try {
    text = readFile(file).replace(/^\uFEFF/, '')
  } catch (e) {
    return { ok: false, error: `config error: cannot read the config file ${file}: ${(e as Error).message}` }
  }
  // No telling extension: a file that starts with '{' is meant to be JSON, anything else TOML.
  const ext = file.toLowerCase().match(/\.(json|toml)$/)?.[1]
  const format = ext === 'json' || (ext === undefined && text.trimStart().startsWith('{')) ? 'JSON' : 'TOML'
  let value: unknown
  try {
    value = format === 'JSON' ? JSON.parse(text) : parseToml(text)
  } catch (e) {
    return { ok: false, error: `config error: ${file} is not valid ${format}: ${syntaxError(e, text)}` }
  }
  if (!isTree(value)) {
    return { ok: false, error: `config error: ${file}: expected a ${format} object with the keys gateway, serial, mqtt, data, timing, limits, log; got ${kindOf(value)}` }
  }
  return { ok: true, tree: value }
}

/** The parser's reason and where, as "line L, column C" for both JSON and TOML. */
function syntaxError(e: unknown, text: string): string {
  if (e instanceof TomlError) {
    const reason = (e.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '')
    return `${reason} at line ${e.line}, column ${e.column}`
  }
  if (!(e instanceof SyntaxError)) throw e
  // V8 gives a position (its wording changes between Node versions); line and column are ours.
  const m = e.message.match(/ at position (\d+)/)
  const reason = e.message.replace(/ in JSON at position \d+.*$/, '').replace(/ at position \d+.*$/, '')
  if (!m) return reason
  const before = text.slice(0, Number(m[1]))
  const line = before.split('\n').length
  const column = before.length - before.lastIndexOf('\n')
  return `${reason} at line ${line}, column ${column}`
}
