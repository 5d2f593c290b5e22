import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { makeTestPki } from '../tests/helpers/tls-certs.js'
import { PASSWORD_ENV, loadConfig, redact } from './config.js'
import { REQUIRED_FLAGS, TLS_FLAG_PATHS, at, errors, files, ok, requiredExcept, tempDir } from './config.suite.js'

describe('errors reading the file', () => {
  it('names a file that is not there, with the system reason', () => {
    const path = join(tmpdir(), 'steppelink-no-such-dir', 'gateway.toml')
    expect(errors(loadConfig(['--config', path], {}))).toEqual([`config error: cannot read the config file ${path}: ENOENT: no such file or directory, open '${path}'`])
  })

  it('names a directory given as the file', () => {
    const dir = tempDir()
    expect(errors(loadConfig(['--config', dir], {}))).toEqual([expect.stringMatching(new RegExp(`^config error: cannot read the config file ${dir}: EISDIR`))])
  })

  const malformed: { name: string; path: string; text: string; error: string | RegExp }[] = [
    { name: 'TOML with a doubled =', path: 'gw.toml', text: '[serial]\npath = "/dev/ttyUSB0"\nbaud = = 9600\n', error: 'config error: gw.toml is not valid TOML: invalid value at line 3, column 8' },
    { name: 'TOML with an unclosed string', path: 'gw.toml', text: '[gateway]\nid = "gw-1\n', error: /^config error: gw\.toml is not valid TOML: .* at line 2, column \d+$/ },
    { name: 'TOML with a key given twice', path: 'gw.toml', text: '[gateway]\nid = "a"\nid = "b"\n', error: /^config error: gw\.toml is not valid TOML: .* at line 3, column \d+$/ },
    // The JSON reasons are jsonc-parser's, not V8's (whose wording quotes the file); the line and column are computed by us.
    {
      name: 'JSON with a missing comma',
      path: 'gw.json',
      text: '{\n  "data": "/x",\n  "gateway": {"id": "g"}\n  "serial": {}\n}',
      error: "config error: gw.json is not valid JSON: expected ',' between values at line 4, column 3",
    },
    {
      name: 'JSON with a trailing comma',
      path: 'gw.json',
      text: '{\n  "data": "/x",\n}',
      error: 'config error: gw.json is not valid JSON: expected a property name in double quotes (a trailing comma?) at line 3, column 1',
    },
    { name: 'an empty JSON file', path: 'gw.json', text: '', error: 'config error: gw.json is not valid JSON: expected a value at line 1, column 1' },
    {
      name: 'JSON with a comment',
      path: 'gw.json',
      text: '{\n  // the box\n  "data": "/x"\n}',
      error: 'config error: gw.json is not valid JSON: a comment (JSON has none; use a .toml file for comments) at line 2, column 3',
    },
    { name: 'broken JSON without a telling extension', path: 'gw.conf', text: '{"data": }', error: /^config error: gw\.conf is not valid JSON: / },
    { name: 'broken TOML without a telling extension', path: 'gw.conf', text: 'data = ', error: /^config error: gw\.conf is not valid TOML: .* at line 1, column \d+$/ },
    {
      name: 'JSON that is not an object',
      path: 'gw.json',
      text: '["mqtt://a"]',
      error: 'config error: gw.json: expected a JSON object with the keys gateway, serial, mqtt, data, timing, limits, log; got a list',
    },
    { name: 'JSON null', path: 'gw.json', text: 'null', error: 'config error: gw.json: expected a JSON object with the keys gateway, serial, mqtt, data, timing, limits, log; got null' },
  ]

  it('never quotes the file: a mistake in the password does not print the password', () => {
    const text = '{\n  "data": "/x",\n  "mqtt": {"password": hunter2-secret}\n}'
    const got = errors(loadConfig(['--config', 'gw.json'], {}, files({ 'gw.json': text })))
    expect(got).toEqual(['config error: gw.json is not valid JSON: a value that is not JSON (a string needs double quotes) at line 3, column 24'])
    expect(got.join('')).not.toMatch(/hunter|secret/)
  })

  it.each(malformed)('reports $name with where it is', ({ path, text, error }) => {
    const got = errors(loadConfig(['--config', path], {}, files({ [path]: text })))
    expect(got).toHaveLength(1)
    if (typeof error === 'string') expect(got[0]).toBe(error)
    else expect(got[0]).toMatch(error)
  })
})

describe('redact', () => {
  const config = ok(loadConfig([...REQUIRED_FLAGS, '--broker', 'mqtts://gw:url-secret@b:8883', '--username', 'gw'], { [PASSWORD_ENV]: 'env-secret' }))

  it('replaces the password and passwords inside broker URLs with ***', () => {
    const safe = redact(config)
    expect(safe.mqtt.password).toBe('***')
    expect(safe.mqtt.brokers).toEqual(['mqtt://broker.local', 'mqtts://gw:***@b:8883'])
    expect(JSON.stringify(safe)).not.toMatch(/secret/)
  })

  it('leaves everything else as it was, and the original untouched', () => {
    const safe = redact(config)
    expect({ ...safe, mqtt: { ...safe.mqtt, password: undefined, brokers: [] } }).toEqual({ ...config, mqtt: { ...config.mqtt, password: undefined, brokers: [] } })
    expect(config.mqtt.password).toBe('env-secret')
    expect(config.mqtt.brokers[1]).toBe('mqtts://gw:url-secret@b:8883')
  })

  it('adds no password where there was none', () => {
    expect(redact(ok(loadConfig(REQUIRED_FLAGS, {}))).mqtt).not.toHaveProperty('password')
  })
})

describe('TLS files: mqtt.tls, checked once at start (issue 12)', () => {
  const pki = makeTestPki()
  afterAll(() => pki.remove())
  const TLS_BASE = [...requiredExcept('--broker'), '--broker', 'mqtts://110.example.cn:8883']
  const tlsFlags = (cert = pki.client) => ['--mqtt-ca', pki.ca.cert, '--mqtt-cert', cert.cert, '--mqtt-key', cert.key]

  it('takes --mqtt-ca, --mqtt-cert, --mqtt-key and --mqtt-servername into mqtt.tls', () => {
    const config = ok(loadConfig([...TLS_BASE, ...tlsFlags(), '--mqtt-servername', 'broker.internal'], {}))
    expect(config.mqtt.tls).toEqual({ ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key, servername: 'broker.internal' })
    expect(TLS_FLAG_PATHS.every((path) => at(config, path) !== undefined)).toBe(true)
  })

  it('takes them from the file, a CA alone too (the broker checked, no client certificate)', () => {
    const file = pki.write('gw.toml', `[mqtt]\nbrokers = ["tls://b:8883"]\n[mqtt.tls]\nca = ${JSON.stringify(pki.ca.cert)}\n`)
    expect(ok(loadConfig([...requiredExcept('--broker'), '--config', file], {})).mqtt.tls).toEqual({ ca: pki.ca.cert })
  })

  it('takes an expired certificate at start: its expiry is logged, not a config error (the clock may be wrong)', () => {
    expect(ok(loadConfig([...TLS_BASE, ...tlsFlags(pki.expiredClient)], {})).mqtt.tls?.cert).toBe(pki.expiredClient.cert)
  })

  it('refuses TLS options with an mqtt:// broker, naming it', () => {
    expect(errors(loadConfig([...REQUIRED_FLAGS, '--mqtt-ca', pki.ca.cert], {}))).toEqual([
      'config error: mqtt.tls: TLS options need an mqtts:// or tls:// broker URL; mqtt.brokers[0] is "mqtt://broker.local" (from --broker). Use mqtts://host:8883, or leave out the TLS options',
    ])
  })

  it('names a file that is not there, with the flag it came from', () => {
    expect(errors(loadConfig([...TLS_BASE, '--mqtt-ca', '/etc/steppelink/nope.crt'], {}))).toEqual([
      "config error: mqtt.tls.ca: cannot read /etc/steppelink/nope.crt (ENOENT: no such file or directory, open '/etc/steppelink/nope.crt'); check the path, and that the user the gateway runs as may read it (from --mqtt-ca)",
    ])
  })

  it('names a file that is not PEM', () => {
    const der = pki.write('client.der', '0\x82\x01\x0a binary')
    expect(errors(loadConfig([...TLS_BASE, '--mqtt-cert', der, '--mqtt-key', pki.client.key], {}))).toEqual([
      `config error: mqtt.tls.cert: ${der} is not a certificate in PEM form (no "-----BEGIN CERTIFICATE-----" line); convert a DER file with: openssl x509 -inform DER -in FILE -out FILE.pem (from --mqtt-cert)`,
    ])
  })

  it('names a key given as the certificate, and a certificate given as the key', () => {
    expect(errors(loadConfig([...TLS_BASE, '--mqtt-cert', pki.client.key, '--mqtt-key', pki.client.cert], {}))).toEqual([
      `config error: mqtt.tls.cert: ${pki.client.key} holds a private key, not a certificate; give the certificate file (PEM, "-----BEGIN CERTIFICATE-----") (from --mqtt-cert)`,
      `config error: mqtt.tls.key: ${pki.client.cert} holds a certificate, not a private key; give the key file ("-----BEGIN PRIVATE KEY-----") (from --mqtt-key)`,
    ])
  })

  it('names a certificate and a key that are not a pair', () => {
    expect(errors(loadConfig([...TLS_BASE, '--mqtt-cert', pki.client.cert, '--mqtt-key', pki.foreignClient.key], {}))).toEqual([
      `config error: mqtt.tls.key: ${pki.foreignClient.key} is not the private key of the certificate ${pki.client.cert} (CN gw-test); give the key the certificate was made for (from --mqtt-key)`,
    ])
  })

  it('names a certificate without its key, and a key without its certificate', () => {
    expect(errors(loadConfig([...TLS_BASE, '--mqtt-cert', pki.client.cert], {}))).toEqual([
      'config error: mqtt.tls.cert is set but mqtt.tls.key is not: a client certificate needs its private key; give --mqtt-key FILE or set mqtt.tls.key',
    ])
    expect(errors(loadConfig([...TLS_BASE, '--mqtt-key', pki.client.key], {}))).toEqual([
      'config error: mqtt.tls.key is set but mqtt.tls.cert is not: give the client certificate too, --mqtt-cert FILE or mqtt.tls.cert',
    ])
  })

  it('names a key encrypted with a passphrase, which a service cannot type', () => {
    const key = join(pki.dir, 'client.enc.key')
    execFileSync('openssl', ['pkey', '-in', pki.client.key, '-out', key, '-aes256', '-passout', 'pass:secret'])
    expect(errors(loadConfig([...TLS_BASE, '--mqtt-cert', pki.client.cert, '--mqtt-key', key], {}))).toEqual([
      `config error: mqtt.tls.key: ${key} is encrypted with a passphrase, which the gateway cannot ask for; write it out unencrypted (openssl pkey -in KEY -out KEY.plain) and keep that file mode 0600 (from --mqtt-key)`,
    ])
  })

  it('names an unknown key in mqtt.tls with the near one, in the file', () => {
    const file = pki.write('typo.toml', '[mqtt.tls]\ncafile = "/x"\n')
    expect(errors(loadConfig([...TLS_BASE, '--config', file], {}))).toEqual([`config error: mqtt.tls.cafile: unknown key (in ${file}). Known keys in mqtt.tls: ca, cert, key, servername`])
  })
})
