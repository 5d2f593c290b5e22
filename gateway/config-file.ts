/**
 * The config file: read through the injected `readFile`, parsed as JSON or TOML, and a
 * syntax error said with its line and column.
 */

import { readFileSync } from 'node:fs'
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser'
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

/**
 * The parser's reason and where, as "line L, column C" for both JSON and TOML.
 *
 * A JSON error is never V8's own message: on Node 20 and later that quotes the text around
 * the mistake, and the text around a mistake in `mqtt.password` is the password. jsonc-parser
 * says what it expected and at which offset, and quotes nothing.
 */
function syntaxError(e: unknown, text: string): string {
  if (e instanceof TomlError) {
    const reason = (e.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '')
    return `${reason} at line ${e.line}, column ${e.column}`
  }
  if (!(e instanceof SyntaxError)) throw e
  const errors: ParseError[] = []
  parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false })
  const first = errors[0]
  if (first === undefined) {
    // Something JSON.parse refuses and jsonc-parser accepts (a raw control character in a
    // string): say where if V8 said, never what.
    const at = e.message.match(/ at position (\d+)/)
    return at ? `a character JSON does not allow ${where(text, Number(at[1]))}` : 'a character JSON does not allow'
  }
  return `${JSON_REASONS[printParseErrorCode(first.error)] ?? printParseErrorCode(first.error)} ${where(text, first.offset)}`
}

function where(text: string, offset: number): string {
  const before = text.slice(0, offset)
  const line = before.split('\n').length
  const column = before.length - before.lastIndexOf('\n')
  return `at line ${line}, column ${column}`
}

const JSON_REASONS: Record<string, string> = {
  InvalidSymbol: 'a value that is not JSON (a string needs double quotes)',
  InvalidNumberFormat: 'a number JSON cannot read',
  PropertyNameExpected: 'expected a property name in double quotes (a trailing comma?)',
  ValueExpected: 'expected a value',
  ColonExpected: "expected ':' after the property name",
  CommaExpected: "expected ',' between values",
  CloseBraceExpected: "expected ',' or '}' (is a closing brace missing?)",
  CloseBracketExpected: "expected ',' or ']' (is a closing bracket missing?)",
  EndOfFileExpected: 'more text after the JSON object ended',
  InvalidCommentToken: 'a comment (JSON has none; use a .toml file for comments)',
  UnexpectedEndOfComment: 'a comment that does not end',
  UnexpectedEndOfString: 'a string that does not end (a missing closing quote?)',
  UnexpectedEndOfNumber: 'a number that does not end',
  InvalidUnicode: 'a \\u escape that is not four hex digits',
  InvalidEscapeCharacter: 'a backslash escape JSON does not have',
  InvalidCharacter: 'a character JSON does not allow inside a string',
}
