import { describe, expect, it } from 'vitest'
import { DEFAULTS, OPTIONS, PASSWORD_ENV, loadConfig, type GatewayConfig } from '../gateway/config.js'
import type { Logger } from '../gateway/log.js'
import { EXAMPLE_CONFIG_TOML, gatewayCommand, type GatewayCommandIo } from './gateway-command.js'

/** Runs the command with everything captured; `run` stands in for gateway/main.ts. */
async function run(args: string[], io: Partial<GatewayCommandIo> = {}) {
  const out: string[] = []
  const err: string[] = []
  const logs: string[] = []
  const runs: { config: GatewayConfig; log: Logger }[] = []
  const code = await gatewayCommand(args, {
    stdout: (t) => void out.push(t),
    stderr: (t) => void err.push(t),
    env: {},
    readFile: (path) => {
      throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' })
    },
    logDestination: { write: (line) => void logs.push(line) },
    run: async (config, log) => {
      runs.push({ config, log })
      return 0
    },
    ...io,
  })
  return { code, stdout: out.join('\n'), stderrLines: err.join('\n').split('\n'), logs, runs }
}

const REQUIRED = ['--serial', '/dev/ttyUSB0', '--broker', 'mqtt://broker.local', '--id', 'gw-1', '--data', '/var/lib/steppelink']

describe('steppelink gateway --help', () => {
  it.each([['--help'], ['-h'], ['--keep-alive', '3', '--help']])('prints help and exits 0 for %s, whatever else is wrong', async (...args) => {
    const r = await run(args)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage: steppelink gateway --serial PATH --broker URL/)
    expect(r.runs).toHaveLength(0)
  })

  it('documents every option with its default or as required', async () => {
    const { stdout } = await run(['--help'])
    for (const o of OPTIONS) {
      const line = stdout.split('\n').find((l) => l.startsWith(`  --${o.flag} ${o.arg} `))
      expect(line, `--${o.flag}`).toBeDefined()
      if (o.path !== null) expect(line).toMatch(/\((required|default .+|default: none)\)$/)
    }
    expect(stdout).toMatch(/--keepalive S +MQTT keepalive, seconds \(5-3600\) \(default 60\)/)
    expect(stdout).toMatch(/--serial PATH +.*\(required\)/)
  })

  it('documents every store limit with its default and unit', async () => {
    const { stdout } = await run(['--help'])
    for (const [key, value] of Object.entries(DEFAULTS.limits)) expect(stdout).toMatch(new RegExp(`^  ${key} +.*, (events|days|MB) \\(default ${value}\\)$`, 'm'))
  })

  it('documents the password variable', async () => {
    expect((await run(['--help'])).stdout).toContain(PASSWORD_ENV)
  })

  it('shows an example config file that is itself valid and complete', () => {
    const r = loadConfig(['--config', 'gateway.toml'], {}, () => EXAMPLE_CONFIG_TOML)
    expect(r.ok && r.config.gateway.id).toBe('xlg-abag-0042')
    // Every key of the schema appears in it (password as a comment).
    const keys = [...EXAMPLE_CONFIG_TOML.matchAll(/^#? ?(\w+) = /gm)].map((m) => m[1])
    expect(keys.sort()).toEqual(
      ['data', 'id', 'area', 'path', 'baud', 'brokers', 'prefix', 'encoding', 'username', 'password', 'keepalive']
        .concat(Object.keys(DEFAULTS.timing), Object.keys(DEFAULTS.limits), ['level'], ['enabled', 'listen', 'port', 'pin'])
        .sort(),
    )
  })
})

describe('steppelink gateway: configuration errors', () => {
  const cases: { name: string; args: string[]; files?: Record<string, string>; errors: string[] }[] = [
    {
      name: 'nothing given',
      args: [],
      errors: [
        'steppelink gateway: config error: gateway.id: missing; give --id ID or set gateway.id in the config file',
        'steppelink gateway: config error: serial.path: missing; give --serial PATH or set serial.path in the config file',
        'steppelink gateway: config error: mqtt.brokers: missing; give --broker URL (once per broker) or set mqtt.brokers in the config file',
        'steppelink gateway: config error: data: missing; give --data DIR or set data in the config file',
      ],
    },
    { name: 'an unknown flag', args: [...REQUIRED, '--keep-alive', '30'], errors: ['steppelink gateway: unknown option --keep-alive; did you mean --keepalive?'] },
    {
      name: 'a bad value in the file',
      args: ['--config', '/etc/steppelink.toml'],
      files: { '/etc/steppelink.toml': 'data = "/d"\n[gateway]\nid = "gw-1"\n[serial]\npath = "/dev/ttyUSB0"\n[mqtt]\nbrokers = ["mqtt://b"]\nkeepalive = "sixty"\n' },
      errors: ['steppelink gateway: config error: mqtt.keepalive: expected an integer from 5 to 3600 (seconds), got "sixty" (in /etc/steppelink.toml)'],
    },
    {
      name: 'an unreadable file',
      args: [...REQUIRED, '--config', '/etc/nope.toml'],
      errors: ["steppelink gateway: config error: cannot read the config file /etc/nope.toml: ENOENT: no such file or directory, open '/etc/nope.toml'"],
    },
    {
      name: 'a malformed file',
      args: [...REQUIRED, '--config', 'gw.toml'],
      files: { 'gw.toml': '[mqtt]\nkeepalive = = 60\n' },
      errors: ['steppelink gateway: config error: gw.toml is not valid TOML: invalid value at line 2, column 13'],
    },
  ]

  it.each(cases)('prints each error on its line, then where help is, and exits 2: $name', async ({ args, files = {}, errors }) => {
    const r = await run(args, {
      readFile: (path) => {
        const text = files[path]
        if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`)
        return text
      },
    })
    expect(r.code).toBe(2)
    expect(r.stderrLines).toEqual([...errors, "See 'steppelink gateway --help'."])
    expect(r.stdout).toBe('')
    expect(r.logs).toEqual([])
    expect(r.runs).toHaveLength(0)
  })

  it('never prints a password it was given, even when something else is wrong', async () => {
    const r = await run(['--password', 'flag-secret', '--keepalive', '1'], { env: { [PASSWORD_ENV]: 'env-secret' } })
    expect(r.code).toBe(2)
    expect(r.stderrLines.join('\n')).not.toMatch(/secret/)
  })
})

describe('steppelink gateway: starting', () => {
  it('logs the effective configuration without passwords, then runs the gateway with it and exits with its code', async () => {
    const r = await run([...REQUIRED, '--username', 'gw-1', '--broker', 'mqtts://gw-1:url-secret@backup:8883', '--log-level', 'debug'], {
      env: { [PASSWORD_ENV]: 'env-secret' },
    })
    expect(r.code).toBe(0)
    expect(r.logs).toHaveLength(1)
    expect(r.logs.join('')).not.toMatch(/secret/)
    const line = JSON.parse(r.logs[0]!) as { level: string; msg: string; config: GatewayConfig }
    expect(line.level).toBe('info')
    expect(line.config.mqtt.password).toBe('***')
    expect(line.config.mqtt.brokers).toEqual(['mqtt://broker.local', 'mqtts://gw-1:***@backup:8883'])
    // The gateway gets the real configuration, and a logger at the configured level.
    expect(r.runs).toHaveLength(1)
    expect(r.runs[0]!.config.mqtt.password).toBe('env-secret')
    r.runs[0]!.log.debug({ n: 1 }, 'from the gateway')
    expect(JSON.parse(r.logs[1]!)).toMatchObject({ level: 'debug', n: 1, msg: 'from the gateway' })
  })

  it('exits with the code the gateway gives', async () => {
    expect((await run(REQUIRED, { run: async () => 3 })).code).toBe(3)
  })
})
