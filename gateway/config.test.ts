import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify as toToml } from 'smol-toml'
import { describe, expect, it } from 'vitest'
import { DEFAULTS, OPTIONS, PASSWORD_ENV, loadConfig, wantsHelp } from './config.js'
import { FULL, REQUIRED_FLAGS, TLS_FLAG_PATHS, at, errors, files, ok, requiredExcept, tempDir } from './config.suite.js'

describe('defaults', () => {
  it('fills every optional key from DEFAULTS when only the required ones are given', () => {
    expect(ok(loadConfig(REQUIRED_FLAGS, {}))).toEqual({
      gateway: { id: 'gw-1' },
      serial: { path: '/dev/ttyUSB0', baud: 9600 },
      mqtt: { brokers: ['mqtt://broker.local'], prefix: 'steppelink/v1', encoding: 'cbor', keepalive: 60 },
      data: '/var/lib/steppelink',
      timing: { supervision: 30, receiptTimeout: 60, heartbeat: 10, statusInterval: 300 },
      limits: { maxRequestEvents: 10000, maxTroubleEvents: 10000, maxRequestAgeDays: 30, maxTroubleAgeDays: 7, maxStoreMB: 64, reserveMB: 16 },
      log: { level: 'info' },
    })
  })

  it('documents the store limits asked for', () => {
    expect(DEFAULTS.limits).toEqual({ maxRequestEvents: 10000, maxTroubleEvents: 10000, maxRequestAgeDays: 30, maxTroubleAgeDays: 7, maxStoreMB: 64, reserveMB: 16 })
  })

  it('gives the sections in the schema order, so the logged configuration reads like the docs', () => {
    const config = ok(loadConfig(REQUIRED_FLAGS, {}))
    expect(Object.keys(config)).toEqual(['gateway', 'serial', 'mqtt', 'data', 'timing', 'limits', 'log'])
    expect(Object.keys(config.serial)).toEqual(['path', 'baud'])
  })
})

describe('flags', () => {
  const cases: { flags: string[]; path: string; value: unknown }[] = [
    { flags: ['--serial', '/dev/ttyS1'], path: 'serial.path', value: '/dev/ttyS1' },
    { flags: ['--baud', '115200'], path: 'serial.baud', value: 115200 },
    { flags: ['--baud=230400'], path: 'serial.baud', value: 230400 },
    { flags: ['--broker', 'mqtts://a:8883'], path: 'mqtt.brokers', value: ['mqtt://broker.local', 'mqtts://a:8883'] },
    { flags: ['--id', 'abag.gw_7:x-1'], path: 'gateway.id', value: 'abag.gw_7:x-1' },
    { flags: ['--area', 'abag'], path: 'gateway.area', value: 'abag' },
    { flags: ['--data', './data'], path: 'data', value: './data' },
    { flags: ['--prefix', 'test/steppelink/v1'], path: 'mqtt.prefix', value: 'test/steppelink/v1' },
    { flags: ['--encoding', 'json'], path: 'mqtt.encoding', value: 'json' },
    { flags: ['--username', 'gw-1'], path: 'mqtt.username', value: 'gw-1' },
    { flags: ['--username', 'gw-1', '--password', 'flag-secret'], path: 'mqtt.password', value: 'flag-secret' },
    { flags: ['--keepalive', '30'], path: 'mqtt.keepalive', value: 30 },
    { flags: ['--supervision', '120'], path: 'timing.supervision', value: 120 },
    { flags: ['--receipt-timeout', '90'], path: 'timing.receiptTimeout', value: 90 },
    { flags: ['--heartbeat', '15'], path: 'timing.heartbeat', value: 15 },
    { flags: ['--status-interval', '60'], path: 'timing.statusInterval', value: 60 },
    { flags: ['--log-level', 'warn'], path: 'log.level', value: 'warn' },
    { flags: ['--platform-key', '/etc/steppelink/platform.pub'], path: 'platformKeys.current', value: '/etc/steppelink/platform.pub' },
  ]

  it.each(cases)('$flags sets $path', ({ flags, path, value }) => {
    expect(at(ok(loadConfig([...REQUIRED_FLAGS, ...flags], {})), path)).toEqual(value)
  })

  it('covers every option that sets a key', () => {
    const covered = new Set([...cases.map((c) => c.path), ...TLS_FLAG_PATHS])
    expect(OPTIONS.filter((o) => o.path !== null && !covered.has(o.path)).map((o) => o.flag)).toEqual([])
  })

  it('takes several brokers in the order given', () => {
    const config = ok(loadConfig([...REQUIRED_FLAGS, '--broker', 'mqtts://b:8883', '--broker', 'ws://c/mqtt'], {}))
    expect(config.mqtt.brokers).toEqual(['mqtt://broker.local', 'mqtts://b:8883', 'ws://c/mqtt'])
  })

  it('takes every broker URL scheme the uplink connects with, tls: too: one list for both (issue 11, item 3)', () => {
    const config = ok(loadConfig([...REQUIRED_FLAGS, '--broker', 'tls://b:8883', '--broker', 'ssl://c:8883'], {}))
    expect(config.mqtt.brokers).toEqual(['mqtt://broker.local', 'tls://b:8883', 'ssl://c:8883'])
  })

  it('lets the last of a repeated flag win', () => {
    expect(ok(loadConfig([...REQUIRED_FLAGS, '--keepalive', '30', '--keepalive', '40'], {})).mqtt.keepalive).toBe(40)
  })

  it('sees --help and -h anywhere', () => {
    expect(wantsHelp(['--help'])).toBe(true)
    expect(wantsHelp(['--serial', 'x', '-h', '--bogus'])).toBe(true)
    expect(wantsHelp(REQUIRED_FLAGS)).toBe(false)
  })
})

describe('config file', () => {
  const { password: _, ...mqttWithoutPassword } = FULL.mqtt
  const formats = [
    { name: 'JSON', path: '/etc/steppelink/gateway.json', text: JSON.stringify(FULL, null, 2) },
    { name: 'TOML', path: '/etc/steppelink/gateway.toml', text: toToml(FULL) },
    { name: 'JSON without a telling extension', path: '/etc/steppelink/gateway.conf', text: JSON.stringify(FULL) },
    { name: 'TOML without a telling extension', path: '/etc/steppelink/gateway', text: toToml(FULL) },
    { name: 'JSON with a byte order mark', path: '/etc/steppelink/gateway.json', text: `\uFEFF${JSON.stringify(FULL)}` },
  ]

  it.each(formats)('sets every key from $name', ({ path, text }) => {
    expect(ok(loadConfig(['--config', path], {}, files({ [path]: text })))).toEqual(FULL)
  })

  it('reads TOML as a person writes it (tables, comments, inline arrays)', () => {
    const text = `
      data = "/srv/steppelink"   # the store
      [gateway]
      id = "gw-1"
      [serial]
      path = "/dev/ttyUSB0"
      [mqtt]
      brokers = [
        "mqtts://a:8883",   # first
        "mqtts://b:8883",
      ]
      [limits]
      maxTroubleAgeDays = 2
    `
    const config = ok(loadConfig(['--config', 'gw.toml'], {}, files({ 'gw.toml': text })))
    expect(config.mqtt.brokers).toEqual(['mqtts://a:8883', 'mqtts://b:8883'])
    expect(config.limits).toEqual({ ...DEFAULTS.limits, maxTroubleAgeDays: 2 })
  })

  it('reads a real file from disk with the default readFile', () => {
    const dir = tempDir()
    const path = join(dir, 'gateway.toml')
    writeFileSync(path, toToml(FULL))
    expect(ok(loadConfig(['--config', path], {}))).toEqual(FULL)
  })

  it('replaces the list of brokers from the file with the flags, rather than adding to it', () => {
    const config = ok(loadConfig(['--config', 'f.json', '--broker', 'mqtt://local'], {}, files({ 'f.json': JSON.stringify(FULL) })))
    expect(config.mqtt.brokers).toEqual(['mqtt://local'])
  })

  it('keeps mqtt settings from the file that no flag touches', () => {
    const config = ok(loadConfig(['--config', 'f.json', '--keepalive', '30'], {}, files({ 'f.json': JSON.stringify({ ...FULL, mqtt: mqttWithoutPassword }) })))
    expect(config.mqtt).toEqual({ ...mqttWithoutPassword, keepalive: 30 })
  })
})

describe('precedence: defaults < file < environment < flags', () => {
  const file = files({
    'f.toml': toToml({ ...FULL, mqtt: { ...FULL.mqtt, keepalive: 120, password: 'from-file' } }),
  })
  const cases: { name: string; argv: string[]; env: NodeJS.ProcessEnv; path: string; value: unknown }[] = [
    { name: 'the default without a file', argv: REQUIRED_FLAGS, env: {}, path: 'mqtt.keepalive', value: 60 },
    { name: 'the file over the default', argv: ['--config', 'f.toml'], env: {}, path: 'mqtt.keepalive', value: 120 },
    { name: 'a flag over the file', argv: ['--config', 'f.toml', '--keepalive', '30'], env: {}, path: 'mqtt.keepalive', value: 30 },
    { name: 'a flag before --config still over the file', argv: ['--keepalive', '30', '--config', 'f.toml'], env: {}, path: 'mqtt.keepalive', value: 30 },
    { name: 'the password from the file', argv: ['--config', 'f.toml'], env: {}, path: 'mqtt.password', value: 'from-file' },
    { name: 'the environment over the file', argv: ['--config', 'f.toml'], env: { [PASSWORD_ENV]: 'from-env' }, path: 'mqtt.password', value: 'from-env' },
    { name: 'an empty variable as unset', argv: ['--config', 'f.toml'], env: { [PASSWORD_ENV]: '' }, path: 'mqtt.password', value: 'from-file' },
    { name: '--password over the environment', argv: ['--config', 'f.toml', '--password', 'from-flag'], env: { [PASSWORD_ENV]: 'from-env' }, path: 'mqtt.password', value: 'from-flag' },
  ]

  it.each(cases)('takes $name', ({ argv, env, path, value }) => {
    expect(at(ok(loadConfig(argv, env, file)), path)).toEqual(value)
  })

  it('takes the password from the environment without a file', () => {
    const config = ok(loadConfig([...REQUIRED_FLAGS, '--username', 'gw-1'], { [PASSWORD_ENV]: 's3cret', OTHER: 'x' }))
    expect(config.mqtt.password).toBe('s3cret')
  })
})

describe('errors', () => {
  const F = '/etc/steppelink.toml'
  const cases: { name: string; base?: string[]; argv?: string[]; file?: string; env?: NodeJS.ProcessEnv; errors: (string | RegExp)[] }[] = [
    // wrong type, out of range
    {
      name: 'a string for an integer, in the file',
      file: '[mqtt]\nkeepalive = "sixty"',
      errors: ['config error: mqtt.keepalive: expected an integer from 5 to 3600 (seconds), got "sixty" (in /etc/steppelink.toml)'],
    },
    {
      name: 'a word for an integer, from a flag',
      argv: ['--keepalive', 'sixty'],
      errors: ['config error: mqtt.keepalive: expected an integer from 5 to 3600 (seconds), got "sixty" (from --keepalive)'],
    },
    { name: 'a fraction', argv: ['--supervision', '30.5'], errors: ['config error: timing.supervision: expected an integer from 10 to 86400 (seconds), got 30.5 (from --supervision)'] },
    { name: 'below the range', argv: ['--keepalive', '2'], errors: ['config error: mqtt.keepalive: expected an integer from 5 to 3600 (seconds), got 2 (from --keepalive)'] },
    { name: 'above the range', file: '[limits]\nmaxRequestAgeDays = 4000', errors: [`config error: limits.maxRequestAgeDays: expected an integer from 1 to 3650 (days), got 4000 (in ${F})`] },
    { name: 'a negative reserve', file: '[limits]\nreserveMB = -1', errors: [`config error: limits.reserveMB: expected an integer from 0 to 1048576 (MB), got -1 (in ${F})`] },
    {
      name: 'a baud rate that is not standard',
      argv: ['--baud', '14400'],
      errors: ['config error: serial.baud: expected one of the baud rates 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, got 14400 (from --baud)'],
    },
    {
      name: 'a baud rate as a string in the file',
      file: '[serial]\nbaud = "9600"',
      errors: [/^config error: serial\.baud: expected one of the baud rates .*, got "9600" \(in \/etc\/steppelink\.toml\)$/],
    },
    { name: 'an unknown encoding', argv: ['--encoding', 'xml'], errors: ['config error: mqtt.encoding: expected one of cbor, json, got "xml" (from --encoding)'] },
    {
      name: 'an unknown log level',
      argv: ['--log-level', 'verbose'],
      errors: ['config error: log.level: expected one of fatal, error, warn, info, debug, trace, silent, got "verbose" (from --log-level)'],
    },
    {
      name: 'a value where a table belongs',
      file: 'mqtt = 5',
      errors: [`config error: mqtt: expected a table of MQTT settings (brokers, prefix, encoding, username, password, keepalive, tls), got 5 (in ${F})`],
    },
    {
      name: 'one broker as a string instead of a list',
      base: requiredExcept('--broker'),
      file: '[mqtt]\nbrokers = "mqtt://a"',
      errors: [`config error: mqtt.brokers: expected a list of one or more broker URLs, got "mqtt://a" (in ${F})`],
    },
    {
      name: 'an empty list of brokers',
      base: requiredExcept('--broker'),
      file: '[mqtt]\nbrokers = []',
      errors: [`config error: mqtt.brokers: expected a list of one or more broker URLs, got [] (in ${F})`],
    },
    {
      name: 'a TOML date where a string belongs',
      base: requiredExcept('--data'),
      file: 'data = 2024-01-01',
      errors: [`config error: data: expected a non-empty directory path for the store, got the date 2024-01-01 (in ${F})`],
    },
    // unknown keys
    {
      name: 'an unknown key with a near one',
      file: '[mqtt]\nkeepAlive = 60',
      errors: [`config error: mqtt.keepAlive: unknown key (in ${F}). Did you mean mqtt.keepalive? Known keys in mqtt: brokers, prefix, encoding, username, password, keepalive, tls`],
    },
    {
      name: 'a key in the wrong section',
      file: 'brokers = ["mqtt://a"]',
      errors: [`config error: brokers: unknown key (in ${F}). Did you mean mqtt.brokers? Known top-level keys: gateway, serial, mqtt, data, timing, limits, log, household, platformKeys`],
    },
    {
      name: 'a short unknown key two edits from a short one (foo, log): no guess',
      file: 'foo = 1',
      errors: [`config error: foo: unknown key (in ${F}). Known top-level keys: gateway, serial, mqtt, data, timing, limits, log, household, platformKeys`],
    },
    { name: 'an unknown key with nothing near', file: '[gateway]\ncolour = "red"', errors: [`config error: gateway.colour: unknown key (in ${F}). Known keys in gateway: id, area`] },
    {
      name: 'a snake_case key',
      file: '[timing]\nreceipt_timeout = 30',
      errors: [`config error: timing.receipt_timeout: unknown key (in ${F}). Did you mean timing.receiptTimeout? Known keys in timing: supervision, receiptTimeout, heartbeat, statusInterval`],
    },
    {
      name: 'an unknown table',
      file: '[store]\ndir = "/x"',
      errors: [`config error: store: unknown key (in ${F}). Known top-level keys: gateway, serial, mqtt, data, timing, limits, log, household, platformKeys`],
    },
    // URLs
    {
      name: 'a broker URL with the wrong scheme',
      argv: ['--broker', 'http://broker.local'],
      errors: ['config error: mqtt.brokers[1]: expected a broker URL such as mqtts://broker.example:8883 (mqtt:, mqtts:, tcp:, ssl:, tls:, ws: or wss:), got "http://broker.local" (from --broker)'],
    },
    {
      name: 'a broker that is no URL',
      base: requiredExcept('--broker'),
      file: '[mqtt]\nbrokers = ["mqtt://ok", "broker.local:1883"]',
      errors: [/^config error: mqtt\.brokers\[1\]: expected a broker URL .*, got "broker\.local:1883" \(in \/etc\/steppelink\.toml\)$/],
    },
    { name: 'a broker URL without a host', argv: ['--broker', 'mqtt:broker'], errors: [/^config error: mqtt\.brokers\[1\]: expected a broker URL .*, got "mqtt:broker" \(from --broker\)$/] },
    // ids and topics
    {
      name: 'an id with a slash',
      argv: ['--id', 'gw/1'],
      errors: [/^config error: gateway\.id: expected an id of 1 to 64 letters, digits, "\.", "_", ":" or "-" \(it is an MQTT topic level\), got "gw\/1" \(from --id\)$/],
    },
    { name: 'an id with a wildcard', argv: ['--id', 'gw+'], errors: [/^config error: gateway\.id: expected an id .*, got "gw\+"/] },
    { name: 'an id too long', argv: ['--id', 'x'.repeat(65)], errors: [/^config error: gateway\.id: expected an id .*, got "x{65}" \(from --id\)$/] },
    { name: 'an empty id', argv: ['--id', ''], errors: [/^config error: gateway\.id: expected an id .*, got "" \(from --id\)$/] },
    { name: 'an area with a space', argv: ['--area', 'a b'], errors: [/^config error: gateway\.area: expected an area name .*, got "a b" \(from --area\)$/] },
    { name: 'a prefix with a wildcard', argv: ['--prefix', 'a/#'], errors: [/^config error: mqtt\.prefix: expected an MQTT topic prefix .*, got "a\/#" \(from --prefix\)$/] },
    { name: 'a prefix with an empty level', argv: ['--prefix', '/steppelink'], errors: [/^config error: mqtt\.prefix: expected .*, got "\/steppelink"/] },
    { name: 'a prefix in the broker namespace', argv: ['--prefix', '$SYS/x'], errors: [/^config error: mqtt\.prefix: expected .*, got "\$SYS\/x"/] },
    { name: 'an empty serial path', argv: ['--serial', ''], errors: ['config error: serial.path: expected a non-empty serial port path such as /dev/ttyUSB0, got "" (from --serial)'] },
    { name: 'an empty data directory', base: requiredExcept('--data'), file: 'data = ""', errors: [`config error: data: expected a non-empty directory path for the store, got "" (in ${F})`] },
    // across keys
    {
      name: 'a supervision shorter than two heartbeats',
      argv: ['--supervision', '30', '--heartbeat', '20'],
      errors: [
        'config error: timing.supervision: 30 s is less than twice timing.heartbeat (20 s), so one lost HEARTBEAT would raise "terminal lost"; raise supervision or lower heartbeat (from --supervision)',
      ],
    },
    {
      name: 'a password without a user name',
      env: { [PASSWORD_ENV]: 'x' },
      errors: ['config error: mqtt.password is set but mqtt.username is not: MQTT sends a password only with a user name; give --username NAME or set mqtt.username'],
    },
    // passwords are never echoed
    {
      name: 'a password of the wrong type, without its value',
      file: '[mqtt]\nusername = "u"\npassword = 123456',
      errors: [`config error: mqtt.password: expected a non-empty password, got a number (in ${F})`],
    },
    // flags
    { name: 'an unknown flag, with the near one', argv: ['--keep-alive', '30'], errors: ['unknown option --keep-alive; did you mean --keepalive?'] },
    { name: 'a camelCase flag', argv: ['--receiptTimeout', '30'], errors: ['unknown option --receiptTimeout; did you mean --receipt-timeout?'] },
    { name: 'an unknown flag with nothing near', argv: ['--colour'], errors: ['unknown option --colour'] },
    { name: "the console's TLS flag (issue 12)", argv: ['--cert', 'gw.crt'], errors: ['unknown option --cert; did you mean --mqtt-cert?'] },
    { name: 'a mistyped TLS flag', argv: ['--mqtt-crt', 'gw.crt'], errors: ['unknown option --mqtt-crt; did you mean --mqtt-cert?'] },
    { name: 'a long flag three edits off is still a guess', argv: ['--recieptTimeot', '30'], errors: ['unknown option --recieptTimeot; did you mean --receipt-timeout?'] },
    { name: 'a stray argument', argv: ['/dev/ttyUSB1'], errors: ['unexpected argument "/dev/ttyUSB1": every value follows its flag, e.g. --serial /dev/ttyUSB0'] },
    { name: 'a flag without its value at the end', argv: ['--baud'], errors: ['--baud needs a value: --baud N'] },
    {
      name: 'a flag followed by another flag',
      argv: ['--area', '--baud', '9600'],
      errors: ['--area needs a value: --area AREA', 'unexpected argument "9600": every value follows its flag, e.g. --serial /dev/ttyUSB0'],
    },
  ]

  it.each(cases)('names $name', ({ base = REQUIRED_FLAGS, argv = [], file, env = {}, errors: expected }) => {
    const args = [...base, ...(file === undefined ? [] : ['--config', F]), ...argv]
    const got = errors(loadConfig(args, env, files(file === undefined ? {} : { [F]: file })))
    expect(got).toHaveLength(expected.length)
    expected.forEach((e, i) => {
      if (typeof e === 'string') expect(got[i]).toBe(e)
      else expect(got[i]).toMatch(e)
    })
  })

  it('names every missing required key with its flag and its key', () => {
    expect(errors(loadConfig([], {}))).toEqual([
      'config error: gateway.id: missing; give --id ID or set gateway.id in the config file',
      'config error: serial.path: missing; give --serial PATH or set serial.path in the config file',
      'config error: mqtt.brokers: missing; give --broker URL (once per broker) or set mqtt.brokers in the config file',
      'config error: data: missing; give --data DIR or set data in the config file',
    ])
  })

  it('reports all the errors of a file at once, in the order of the schema', () => {
    const text = [
      'data = ""',
      'colour = 1',
      '[gateway]',
      'id = "a/b"',
      '[serial]',
      'path = "/dev/ttyUSB0"',
      'baud = 9601',
      '[mqtt]',
      'brokers = ["http://x", "mqtt://ok", "ftp://y"]',
      'encoding = "xml"',
      'keepalive = "sixty"',
      '[timing]',
      'supervision = 0',
      'heartbeat = 1',
      'receiptTimeout = 1',
      'statusInterval = 1',
      '[limits]',
      'maxRequestEvents = 0',
      'maxTroubleEvents = 0',
      'maxRequestAgeDays = 0',
      'maxTroubleAgeDays = 0',
      'maxStoreMB = 0',
      'reserveMB = -1',
      '[log]',
      'level = "loud"',
    ].join('\n')
    const got = errors(loadConfig(['--config', 'bad.toml'], {}, files({ 'bad.toml': text })))
    const keys = got.map((e) => e.match(/^config error: ([^: ]+)/)?.[1])
    expect(keys).toEqual([
      'colour',
      'gateway.id',
      'serial.baud',
      'mqtt.brokers[0]',
      'mqtt.brokers[2]',
      'mqtt.encoding',
      'mqtt.keepalive',
      'data',
      'timing.supervision',
      'timing.receiptTimeout',
      'timing.heartbeat',
      'timing.statusInterval',
      'limits.maxRequestEvents',
      'limits.maxTroubleEvents',
      'limits.maxRequestAgeDays',
      'limits.maxTroubleAgeDays',
      'limits.maxStoreMB',
      'limits.reserveMB',
      'log.level',
    ])
    expect(got.every((e) => e.endsWith('(in bad.toml)') || e.includes('(in bad.toml).'))).toBe(true)
  })
})
