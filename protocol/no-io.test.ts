/**
 * The protocol does no I/O and owns no timers (STYLE.md 1): every file of protocol/ that the
 * package ships imports only its siblings and the few dependencies that compute (encoding,
 * schemas, compression), and never reads the clock, starts a timer or touches the process.
 * Tools that write files or need a devDependency (the vector generator, the fuzzer) live in
 * tools/; the in-memory serial line in device-sim/.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }

/** Dependencies that only compute; the reference compressor is imported when first used. */
const PURE_DEPENDENCIES = ['cbor-x', 'fzstd', 'typebox', '@mongodb-js/zstd']
/** Node's own modules that only compute: hashes and signatures ([MQTT-5.12]). */
const PURE_BUILTINS = ['node:crypto']

/** Globals that wait, read the clock, or reach outside the process's memory. */
const FORBIDDEN_GLOBALS = [
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
  'queueMicrotask',
  'process',
  'performance',
  'fetch',
  'require',
  'globalThis',
  'WebSocket',
  'XMLHttpRequest',
]

/** The protocol's shipped sources: every .ts under protocol/ but the tests and their shared fixtures (*.suite.ts, never built). */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return sources(path)
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.suite.ts') ? [path] : []
  })
}
const SOURCES = sources(import.meta.dirname)

const packageOf = (specifier: string) =>
  specifier
    .split('/')
    .slice(0, specifier.startsWith('@') ? 2 : 1)
    .join('/')

/** What a file at `file` does that the protocol must not: each as `what` (at line n). */
function problems(file: string, text = readFileSync(file, 'utf8')): string[] {
  const found: string[] = []
  for (const { fileName: specifier } of ts.preProcessFile(text, true, true).importedFiles) {
    if (specifier.startsWith('.')) {
      const target = resolve(file, '..', specifier)
      if (relative(import.meta.dirname, target).startsWith('..')) found.push(`imports ${specifier}, outside protocol/`)
    } else if (!PURE_DEPENDENCIES.includes(packageOf(specifier)) && !PURE_BUILTINS.includes(specifier)) {
      found.push(`imports ${specifier}`)
    }
  }
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true)
  const at = (node: ts.Node) => `line ${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node) && FORBIDDEN_GLOBALS.includes(node.text)) {
      const parent = node.parent
      const isMemberName =
        (ts.isPropertyAccessExpression(parent) && parent.name === node) ||
        (ts.isPropertyAssignment(parent) && parent.name === node) ||
        ts.isPropertySignature(parent) ||
        ts.isPropertyDeclaration(parent) ||
        ts.isMethodDeclaration(parent)
      if (!isMemberName) found.push(`uses ${node.text} (${at(node)})`)
    }
    if (ts.isPropertyAccessExpression(node) && node.getText(source) === 'Date.now') found.push(`reads the clock: Date.now (${at(node)})`)
    if (ts.isNewExpression(node) && node.expression.getText(source) === 'Date' && (node.arguments?.length ?? 0) === 0) found.push(`reads the clock: new Date() (${at(node)})`)
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

describe('protocol/ does no I/O and owns no timers', () => {
  it('checks every shipped file of the folder', () => {
    const names = SOURCES.map((f) => relative(import.meta.dirname, f))
    for (const f of ['index.ts', 'link-end.ts', 'mqtt.ts', 'mqtt-batch.ts', 'codec.ts']) expect(names).toContain(f)
    for (const f of ['fuzz.ts', 'vectors-gen.ts', 'testing.ts']) expect(names).not.toContain(f)
  })

  it('uses only dependencies that compute, and each is a dependency of the package', () => {
    for (const d of PURE_DEPENDENCIES) expect(Object.keys(pkg.dependencies), d).toContain(d)
  })

  it.each(SOURCES.map((f) => [relative(root, f), f]))('%s: no I/O module, no devDependency, no timer, no clock', (_, file) => {
    expect(problems(file)).toEqual([])
  })

  it('would catch a tool put back: the fuzzer and the vector generator fail it', () => {
    const putBack = (path: string) => problems(join(import.meta.dirname, 'put-back.ts'), readFileSync(join(root, path), 'utf8'))
    expect(putBack('tools/fuzz.ts')).toEqual(expect.arrayContaining(['imports fast-check', 'imports node:url']))
    expect(putBack('tools/fuzz.ts').some((p) => p.startsWith('uses process'))).toBe(true)
    expect(putBack('tools/vectors-gen.ts')).toEqual(expect.arrayContaining(['imports node:fs', 'imports node:path', 'imports node:url']))
  })

  it('tells a use from a name: timers and the clock are caught, a field called process is not', () => {
    const code = [
      "import { Gateway } from '../gateway/gateway.js'",
      'const t = setTimeout(() => {}, 1)',
      'const now = Date.now() + new Date().getTime() + new Date(0).getTime()',
      'const o = { process: 1, performance: 2 }',
      'o.process += o.performance',
    ].join('\n')
    expect(problems(join(import.meta.dirname, 'example.ts'), code)).toEqual([
      'imports ../gateway/gateway.js, outside protocol/',
      'uses setTimeout (line 2)',
      'reads the clock: Date.now (line 3)',
      'reads the clock: new Date() (line 3)',
    ])
  })
})
