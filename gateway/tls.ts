/**
 * TLS to the platform's broker with a private CA (issue 12): the files of `mqtt.tls`
 * checked at start (config errors), read again before every connection attempt so that an
 * operator can renew the certificate by copying new files without a restart, and the
 * client certificate's expiry judged against the gateway's clock.
 *
 * Renewal: the files are read at each attempt (a few kB, on a reconnect, not per message).
 * A certificate that changed is logged with its subject and expiry. Files that cannot be
 * used at a later attempt (half copied, a key that does not match the new certificate)
 * are logged, and the last good ones are used until they can: a renewal in progress never
 * takes the gateway offline by itself.
 *
 * Expiry: the board may have no real-time clock, so the expiry is judged only against a
 * time the gateway can stand behind: the clock synchronised by the platform's `time`
 * ([MQTT-4.13]), or its own clock when that reads a time after the certificate was issued
 * (set by NTP or fake-hwclock; a board that booted in 1970 reads before it). Until then
 * nothing is said. A warning at start and then once a day while it expires within 30 days;
 * an error once it has expired.
 */

import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Timers } from '../io/timers.js'

/** `mqtt.tls` of the configuration: file paths, PEM, and the name to expect on the broker's certificate. */
export interface TlsSettings {
  ca?: string
  cert?: string
  key?: string
  servername?: string
}

/** What one connection attempt gives mqtt.js (and so tls.connect). */
export interface TlsMaterial {
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
  servername?: string
}

/** What the gateway knows of its client certificate. */
export interface CertInfo {
  /** The subject's CN (or the whole subject if it has none). */
  subject: string
  /** Not before / not after, ms since the epoch. */
  validFrom: number
  validTo: number
  /** SHA-256 fingerprint: whether the file changed. */
  fingerprint: string
}

/** Warn this long before the client certificate expires. */
export const EXPIRY_WARNING_MS = 30 * 86_400_000
/** How often the expiry is looked at again once judged. */
export const EXPIRY_CHECK_MS = 86_400_000
/** While the clock cannot be trusted yet: look again this often. */
export const EXPIRY_RETRY_MS = 60_000

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g
const PEM_KEY = /-----BEGIN ((RSA |EC |ENCRYPTED )?PRIVATE KEY)-----/

export function certInfo(pem: string | Buffer): CertInfo {
  const x = new X509Certificate(pem)
  const cn = x.subject.split('\n').find((l) => l.startsWith('CN='))
  return { subject: cn ? cn.slice(3) : x.subject.replace(/\n/g, ', '), validFrom: Date.parse(x.validFrom), validTo: Date.parse(x.validTo), fingerprint: x.fingerprint256 }
}

const BROKER_TLS_SCHEMES = new Set(['mqtts:', 'tls:', 'ssl:', 'wss:'])

/** Whether a broker URL runs over TLS. */
export const isTlsUrl = (url: string): boolean => {
  try {
    return BROKER_TLS_SCHEMES.has(new URL(url).protocol)
  } catch {
    return false
  }
}

export type ReadText = (path: string) => string

/**
 * What is wrong with the TLS settings, each as a sentence that says what to do; none if
 * they can be used. `where(key)` says where a key came from (` (from --mqtt-cert)`).
 */
export function tlsProblems(tls: TlsSettings, brokers: readonly string[], readFile: ReadText, where: (at: string[]) => string = () => ''): string[] {
  const problems: string[] = []
  const err = (key: keyof TlsSettings, text: string) => problems.push(`config error: mqtt.tls.${key}: ${text}${where(['mqtt', 'tls', key])}`)
  const plain = brokers.map((b, i) => ({ b, i })).filter(({ b }) => !isTlsUrl(b))
  if (plain.length > 0 && Object.keys(tls).length > 0) {
    const named = plain.map(({ b, i }) => `mqtt.brokers[${i}] is ${JSON.stringify(b)}`).join(', ')
    problems.push(`config error: mqtt.tls: TLS options need an mqtts:// or tls:// broker URL; ${named}${where(['mqtt', 'brokers'])}. Use mqtts://host:8883, or leave out the TLS options`)
  }
  if (tls.cert !== undefined && tls.key === undefined)
    problems.push('config error: mqtt.tls.cert is set but mqtt.tls.key is not: a client certificate needs its private key; give --mqtt-key FILE or set mqtt.tls.key')
  if (tls.key !== undefined && tls.cert === undefined) problems.push('config error: mqtt.tls.key is set but mqtt.tls.cert is not: give the client certificate too, --mqtt-cert FILE or mqtt.tls.cert')

  const read = (key: 'ca' | 'cert' | 'key'): string | null => {
    const path = tls[key]
    if (path === undefined) return null
    try {
      return readFile(path)
    } catch (e) {
      err(key, `cannot read ${path} (${(e as Error).message}); check the path, and that the user the gateway runs as may read it`)
      return null
    }
  }
  const certs = (key: 'ca' | 'cert', text: string | null, what: string): X509Certificate[] | null => {
    if (text === null) return null
    const path = tls[key]
    if (PEM_KEY.test(text) && !text.includes('-----BEGIN CERTIFICATE-----')) {
      err(key, `${path} holds a private key, not ${what}; give the certificate file (PEM, "-----BEGIN CERTIFICATE-----")`)
      return null
    }
    const blocks = text.match(PEM_CERT) ?? []
    if (blocks.length === 0) {
      err(key, `${path} is not ${what} in PEM form (no "-----BEGIN CERTIFICATE-----" line); convert a DER file with: openssl x509 -inform DER -in FILE -out FILE.pem`)
      return null
    }
    try {
      return blocks.map((b) => new X509Certificate(b))
    } catch (e) {
      err(key, `${path} has a PEM block that is not a valid certificate (${(e as Error).message}); make it again, or copy it whole`)
      return null
    }
  }

  certs('ca', read('ca'), 'a CA certificate')
  const cert = certs('cert', read('cert'), 'a certificate')?.[0] ?? null
  const keyText = read('key')
  let key: KeyObject | null = null
  if (keyText !== null) {
    const path = tls.key
    if (!PEM_KEY.test(keyText)) {
      const isCert = keyText.includes('-----BEGIN CERTIFICATE-----')
      err(
        'key',
        isCert
          ? `${path} holds a certificate, not a private key; give the key file ("-----BEGIN PRIVATE KEY-----")`
          : `${path} is not a private key in PEM form (no "-----BEGIN PRIVATE KEY-----" line)`,
      )
    } else {
      // Node asks for no passphrase: it fails with "interrupted or cancelled", which says nothing.
      const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyText)
      try {
        if (!encrypted) key = createPrivateKey(keyText)
      } catch (e) {
        err('key', `${path} is not a private key the gateway can read (${(e as Error).message})`)
      }
      if (encrypted) {
        err('key', `${path} is encrypted with a passphrase, which the gateway cannot ask for; write it out unencrypted (openssl pkey -in KEY -out KEY.plain) and keep that file mode 0600`)
      }
    }
  }
  if (cert !== null && key !== null && !cert.checkPrivateKey(key)) {
    err('key', `${tls.key} is not the private key of the certificate ${tls.cert} (CN ${certInfo(cert.toString()).subject}); give the key the certificate was made for`)
  }
  return problems
}

/** The default reader of certificate files. */
const readBuffer = (path: string): Buffer => readFileSync(path)

/**
 * The TLS files, read again before every connection attempt (a renewal takes effect at the
 * next reconnect, without a restart). Never throws after a first good load.
 */
export class TlsFiles {
  #last: TlsMaterial | null = null
  #client: CertInfo | null = null

  constructor(
    readonly settings: TlsSettings,
    private readonly o: {
      readFile?: (path: string) => Buffer
      /** The client certificate is not the one read before (it was renewed). */
      onChange?: (info: CertInfo, before: CertInfo) => void
      /** The files could not be used at an attempt; the last good ones are. */
      onError?: (message: string) => void
    } = {},
  ) {}

  /** The client certificate last read, or null without one. */
  get client(): CertInfo | null {
    return this.#client
  }

  /**
   * The material for one attempt. At the first call a problem throws (the config checks
   * have seen the files, so that is a race); later, the last good material is kept.
   */
  load(): TlsMaterial {
    try {
      const m = this.#read()
      this.#last = m
      return m
    } catch (e) {
      if (this.#last === null) throw e
      this.o.onError?.(`cannot use the TLS files now (${(e as Error).message}); connecting with the ones read before. If a renewal is being copied, this passes`)
      return this.#last
    }
  }

  #read(): TlsMaterial {
    const read = this.o.readFile ?? readBuffer
    const { ca, cert, key, servername } = this.settings
    const m: TlsMaterial = {
      ...(ca !== undefined ? { ca: read(ca) } : {}),
      ...(cert !== undefined ? { cert: read(cert) } : {}),
      ...(key !== undefined ? { key: read(key) } : {}),
      ...(servername !== undefined ? { servername } : {}),
    }
    if (m.cert !== undefined) {
      const info = certInfo(m.cert)
      if (m.key !== undefined && !new X509Certificate(m.cert).checkPrivateKey(createPrivateKey(m.key))) {
        throw new Error(`${key} is not the private key of ${cert}`)
      }
      const before = this.#client
      this.#client = info
      if (before !== null && before.fingerprint !== info.fingerprint) this.o.onChange?.(info, before)
    }
    return m
  }
}

export type Expiry = { level: 'error' | 'warn'; message: string } | null

/**
 * What to say of a client certificate at `nowMs` (null: nothing, or the time is unknown).
 * `estimated`: the time is the gateway's own clock, not synchronised by the platform.
 */
export function expiryNotice(info: CertInfo, nowMs: number, estimated: boolean): Expiry {
  const when = new Date(info.validTo).toISOString()
  const clock = estimated ? " (by the gateway's own clock, not yet synchronised by the platform)" : ''
  if (nowMs >= info.validTo) {
    return {
      level: 'error',
      message: `the client certificate (mqtt.tls.cert, CN ${info.subject}) expired on ${when}${clock}: the broker will refuse the gateway. Put a renewed certificate and key in place of the files; the next connection attempt reads them, no restart needed`,
    }
  }
  if (info.validTo - nowMs <= EXPIRY_WARNING_MS) {
    const days = Math.floor((info.validTo - nowMs) / 86_400_000)
    return {
      level: 'warn',
      message: `the client certificate (mqtt.tls.cert, CN ${info.subject}) expires on ${when}, ${days === 0 ? 'in less than a day' : `in ${days} day${days === 1 ? '' : 's'}`}${clock}: renew it, then copy the new certificate and key over the files; the next connection attempt reads them, no restart needed`,
    }
  }
  return null
}

/**
 * Looks at the client certificate's expiry at start and then once a day, on injected
 * timers; while the time cannot be trusted, once a minute until it can.
 */
export class CertExpiryWatch {
  #timer: unknown = null

  constructor(
    private readonly o: {
      info: () => CertInfo | null
      /** The gateway's time, and whether it is only its own clock (not synchronised by the platform). */
      time: () => { at: number; estimated: boolean }
      timers: Timers
      log: { warn(fields: object, msg: string): void; error(fields: object, msg: string): void }
    },
  ) {}

  start(): void {
    this.check()
  }

  /** Looks now, and schedules the next look. */
  check(): void {
    if (this.#timer !== null) this.o.timers.clearTimeout(this.#timer)
    this.#timer = null
    const info = this.o.info()
    if (info === null) return
    const time = this.o.time()
    // An unsynchronised clock before the certificate was even issued is a board without a
    // real-time clock that has not been told the time: judge nothing yet.
    const judged = !time.estimated || time.at >= info.validFrom
    if (judged) {
      const notice = expiryNotice(info, time.at, time.estimated)
      const fields = { subject: info.subject, expires: new Date(info.validTo).toISOString() }
      if (notice?.level === 'error') this.o.log.error(fields, notice.message)
      else if (notice?.level === 'warn') this.o.log.warn(fields, notice.message)
    }
    this.#timer = this.o.timers.setTimeout(() => this.check(), judged ? EXPIRY_CHECK_MS : EXPIRY_RETRY_MS)
  }

  stop(): void {
    if (this.#timer !== null) this.o.timers.clearTimeout(this.#timer)
    this.#timer = null
  }
}
