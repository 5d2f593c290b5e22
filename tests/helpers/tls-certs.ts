/**
 * A private certificate authority for the TLS tests, made with `openssl` in a temporary
 * directory, as an operator would make one for a board (README, "TLS with a private CA"):
 * a CA; a server certificate for 127.0.0.1 and localhost; a client certificate; an expired
 * client certificate; and, from a second, foreign CA, a client and a server certificate.
 *
 * `openssl x509 -days` cannot backdate a certificate and OpenSSL 3.0 has no
 * `-not_before`/`-not_after`, so every leaf is signed by `openssl ca`, which takes
 * `-startdate` and `-enddate`. Keys are P-256 (fast to make). Nothing here depends on the
 * system's openssl.cnf: each command gets a small config of its own.
 */

import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A certificate and its key, as file paths. */
export interface CertFiles {
  cert: string
  key: string
}

export interface TestPki {
  dir: string
  /** The private CA's certificate (the gateway's mqtt.tls.ca, mosquitto's cafile) and key. */
  ca: CertFiles
  /** For 127.0.0.1 and localhost, signed by `ca`. */
  server: CertFiles
  /** CN=gw-test, signed by `ca`, valid from a day ago for `clientDays` (default 365) days. */
  client: CertFiles
  /** CN=gw-expired, signed by `ca`, valid in January 2020 only. */
  expiredClient: CertFiles
  /** A second CA nobody here trusts. */
  foreignCa: CertFiles
  /** CN=gw-foreign, signed by `foreignCa`. */
  foreignClient: CertFiles
  /** For 127.0.0.1 and localhost, signed by `foreignCa`. */
  foreignServer: CertFiles
  /** Client certificates signed by `ca`, one for each CN asked for in `clients`. */
  clients: Readonly<Record<string, CertFiles>>
  /** Writes `text` to a file in `dir` and returns its path. */
  write(name: string, text: string): string
  remove(): void
}

const REQ_CONF = ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', 'CN = unused', ''].join('\n')

/** openssl's date format for -startdate/-enddate: YYYYMMDDHHMMSSZ. */
const asn1Time = (ms: number) => `${new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`

export function makeTestPki(opts: { clientDays?: number; clients?: readonly string[] } = {}): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'steppelink-pki-'))
  const file = (name: string) => join(dir, name)
  const write = (name: string, text: string) => {
    writeFileSync(file(name), text)
    return file(name)
  }
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  write('req.cnf', REQ_CONF)

  const makeCa = (name: string, cn: string): CertFiles => {
    const cert = file(`${name}.crt`)
    const key = file(`${name}.key`)
    openssl(
      'req',
      '-x509',
      '-config',
      file('req.cnf'),
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '3650',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    )
    // The database `openssl ca` keeps for this CA.
    write(`${name}.index`, '')
    write(`${name}.serial`, '1000\n')
    write(
      `${name}.cnf`,
      [
        '[ca]',
        `default_ca = ${name}`,
        `[${name}]`,
        `database = ${file(`${name}.index`)}`,
        `serial = ${file(`${name}.serial`)}`,
        `new_certs_dir = ${dir}`,
        'default_md = sha256',
        'policy = any',
        'unique_subject = no',
        'email_in_dn = no',
        '[any]',
        'commonName = supplied',
        '',
      ].join('\n'),
    )
    return { cert, key }
  }

  const DAY = 86_400_000
  const now = Date.now()
  const makeLeaf = (ca: string, name: string, cn: string, kind: 'server' | 'client', from: number, to: number): CertFiles => {
    const cert = file(`${name}.crt`)
    const key = file(`${name}.key`)
    const csr = file(`${name}.csr`)
    openssl('req', '-new', '-config', file('req.cnf'), '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`)
    const ext = write(
      `${name}.ext`,
      kind === 'server'
        ? 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n'
        : 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n',
    )
    openssl(
      'ca',
      '-config',
      file(`${ca}.cnf`),
      '-batch',
      '-notext',
      '-cert',
      file(`${ca}.crt`),
      '-keyfile',
      file(`${ca}.key`),
      '-in',
      csr,
      '-out',
      cert,
      '-extfile',
      ext,
      '-startdate',
      asn1Time(from),
      '-enddate',
      asn1Time(to),
    )
    return { cert, key }
  }

  const ca = makeCa('ca', 'Steppelink Test CA')
  const foreignCa = makeCa('foreign-ca', 'Someone Else CA')
  return {
    dir,
    ca,
    server: makeLeaf('ca', 'server', 'localhost', 'server', now - DAY, now + 365 * DAY),
    client: makeLeaf('ca', 'client', 'gw-test', 'client', now - DAY, now + (opts.clientDays ?? 365) * DAY),
    expiredClient: makeLeaf('ca', 'expired-client', 'gw-expired', 'client', Date.UTC(2020, 0, 1), Date.UTC(2020, 1, 1)),
    foreignCa,
    foreignClient: makeLeaf('foreign-ca', 'foreign-client', 'gw-foreign', 'client', now - DAY, now + 365 * DAY),
    foreignServer: makeLeaf('foreign-ca', 'foreign-server', 'localhost', 'server', now - DAY, now + 365 * DAY),
    clients: Object.fromEntries((opts.clients ?? []).map((cn) => [cn, makeLeaf('ca', `client-${cn}`, cn, 'client', now - DAY, now + 365 * DAY)])),
    write,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}
