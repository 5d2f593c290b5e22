/**
 * What the package ships: no tool (tools/: the fuzzer, the vector generator), no benchmark,
 * and nothing built from a file that needs a devDependency, which an installed package
 * does not have.
 *
 * Asks npm itself (`npm pack --dry-run --json`), about a copy of package.json beside an
 * empty file for every file the build writes (tsconfig.json, and bench/tsconfig.json for
 * `npm run bench`), so the answer does not depend on whether, or how long ago, dist/ was
 * built. The files from an older build that no source makes any more are removed before
 * packing (`prepack`).
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { devDependencies: Record<string, string>; scripts: Record<string, string> }

interface Output {
  /** The source, relative to the repository: tools/fuzz.ts. */
  source: string
  /** What the build writes from it, relative to the repository: dist/tools/fuzz.js. */
  output: string
}

/** Every file tsc writes for a project, from the project's own configuration. */
function outputs(project: string): Output[] {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(root, project),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(`${project}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)
      },
    },
  )
  if (!config) throw new Error(`${project}: cannot be read`)
  return config.fileNames.flatMap((source) => ts.getOutputFileNames(config, source, false).map((output) => ({ source: relative(root, source), output: relative(root, output) })))
}

const packageOf = (specifier: string) =>
  specifier
    .split('/')
    .slice(0, specifier.startsWith('@') ? 2 : 1)
    .join('/')
const devImports = (source: string) =>
  ts
    .preProcessFile(readFileSync(join(root, source), 'utf8'), true, true)
    .importedFiles.map((f) => packageOf(f.fileName))
    .filter((name) => Object.hasOwn(pkg.devDependencies, name))

const BUILT = [...outputs('tsconfig.json'), ...outputs('bench/tsconfig.json')]
let dir = ''
let shipped = new Set<string>()

describe('the package ships no tool', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'steppelink-pack-'))
    writeFileSync(join(dir, 'package.json'), readFileSync(join(root, 'package.json')))
    for (const { output } of BUILT) {
      mkdirSync(join(dir, dirname(output)), { recursive: true })
      writeFileSync(join(dir, output), '')
    }
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`npm pack --dry-run failed (status ${r.status}): ${r.stderr}`)
    const [result] = JSON.parse(r.stdout) as { files: { path: string }[] }[]
    shipped = new Set(result!.files.map((f) => f.path))
  })

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('ships the protocol, the CLI and the gateway (the check sees the build)', () => {
    for (const f of ['dist/protocol/index.js', 'dist/protocol/index.d.ts', 'dist/protocol/mqtt.js', 'dist/cli/main.js', 'dist/gateway/main.js', 'dist/device-sim/sim-line.js']) {
      expect(shipped, f).toContain(f)
    }
  })

  it('ships nothing built from tools/ or bench/, though the build writes both to dist/', () => {
    for (const folder of ['tools/', 'bench/']) {
      const built = BUILT.filter((b) => b.source.startsWith(folder))
      expect(built.length, `${folder} is built`).toBeGreaterThan(0)
      for (const { output } of built) expect(shipped, output).not.toContain(output)
    }
    const tools = BUILT.filter((b) => b.source.startsWith('tools/')).map((b) => b.output)
    expect(tools).toEqual(expect.arrayContaining(['dist/tools/fuzz.js', 'dist/tools/vectors-gen.js']))
  })

  it('ships no fuzzer, no vector generator, no test', () => {
    for (const path of shipped) {
      expect(path, path).not.toMatch(/(^|\/)(fuzz|vectors-gen|testing)\.(js|d\.ts)$/)
      expect(path, path).not.toMatch(/\.(test|suite)\./)
    }
  })

  it('ships nothing built from a file that imports a devDependency (fast-check, vitest, typescript)', () => {
    const needy = BUILT.filter((b) => shipped.has(b.output) && b.output.endsWith('.js')).flatMap((b) => devImports(b.source).map((d) => `${b.source} imports ${d}`))
    expect(needy).toEqual([])
    expect(devImports('tools/fuzz.ts')).toContain('fast-check')
  })

  it('removes what an older build left in dist/ before packing', () => {
    expect(pkg.scripts.prepack).toMatch(/rmSync\('dist'/)
    expect(pkg.scripts.prepare).toBe('npm run build')
  })
})
