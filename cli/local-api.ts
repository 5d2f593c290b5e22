/**
 * How `steppelink status | relay | inbox` reach the running gateway: its config file
 * (`-c/--config`, by default /etc/steppelink/gateway.toml, the file the service runs
 * with) gives the data directory and the page's address and port; the data directory
 * holds the local API's token (household-api-token, 0600: run as the gateway's user or
 * root) and the PIN the gateway made (household-pin). Only those keys are read, so a
 * config the gateway would refuse for another reason still lets support look at it.
 */

import { networkInterfaces } from 'node:os'
import { defaultReadFile, readConfigFile, type ReadFile } from '../gateway/config-file.js'
import { DEFAULTS } from '../gateway/config-schema.js'
import { getPath } from '../gateway/config-tree.js'
import { isPin, isToken, pinPath, tokenPath } from '../gateway/household/web/secrets.js'
import { UsageError } from './usage.js'

/** The config file of the gateway service (README, "As a service"). */
export const DEFAULT_CONFIG = '/etc/steppelink/gateway.toml'

/** The flags the three commands share. */
export const LOCAL_API_OPTIONS = {
  config: { type: 'string', short: 'c' },
  data: { type: 'string' },
  port: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

export const LOCAL_API_HELP = `  -c, --config FILE   the gateway's config file (default ${DEFAULT_CONFIG}); its data
                      directory and household.listen and household.port are used
  --data DIR          the gateway's data directory, instead of the config's
  --port N            the page's port, instead of the config's household.port
  --json              JSON instead of text
  -h, --help          this help

Reads the local API's token from DIR/household-api-token: run as the gateway's user or
root (sudo). Exit status: 0 done, 1 not done (the gateway not running, the store
refusing ...), 2 called wrong.`

export interface LocalApiIo {
  stdout: (line: string) => void
  stderr: (line: string) => void
  readFile: ReadFile
  fetch: typeof fetch
  /** The board's addresses, to show the page's address on the LAN. */
  addresses: () => string[]
}

export const DEFAULT_LOCAL_API_IO: LocalApiIo = {
  stdout: (l) => console.log(l),
  stderr: (l) => console.error(l),
  readFile: defaultReadFile,
  fetch: (...a) => fetch(...a),
  addresses: () =>
    Object.values(networkInterfaces())
      .flat()
      .filter((i) => i !== undefined && !i.internal && i.family === 'IPv4')
      .map((i) => i!.address),
}

/** A failure to say and exit 1 with (not a usage error). */
export class LocalApiError extends Error {
  constructor(
    readonly code: 'GATEWAY_NOT_RUNNING' | 'CONFIG' | 'TOKEN' | 'API',
    message: string,
  ) {
    super(message)
  }
}

export interface GatewayAt {
  /** Where this command connects: loopback for a page on every interface. */
  base: string
  data: string
  /** The page's addresses as a phone on the LAN types them. */
  pageUrls: string[]
  /** The PIN, and where it is from; null if not set and not yet made. */
  pin: { value: string; from: 'config' | 'file' } | null
  enabled: boolean
}

/** Where the gateway and its page are, from the config and the flags. */
export function findGateway(values: { config?: string | undefined; data?: string | undefined; port?: string | undefined }, io: LocalApiIo): GatewayAt {
  const file = values.config ?? DEFAULT_CONFIG
  let tree: Record<string, unknown> = {}
  if (values.config !== undefined || values.data === undefined) {
    const read = readConfigFile(file, io.readFile)
    if (!read.ok) {
      throw new LocalApiError(
        'CONFIG',
        values.config === undefined
          ? `${read.error.replace(/^config error: /, '')}. Give the gateway's config with -c FILE, or its data directory with --data DIR`
          : read.error.replace(/^config error: /, ''),
      )
    }
    tree = read.tree
  }
  const data = values.data ?? getPath(tree, 'data')
  if (typeof data !== 'string' || data === '') throw new LocalApiError('CONFIG', `${file} has no data directory (data = "..."): give --data DIR`)
  const listen = stringAt(tree, 'household.listen', DEFAULTS.household.listen)
  const portText = values.port ?? String(getPath(tree, 'household.port') ?? DEFAULTS.household.port)
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN
  if (!(port >= 1 && port <= 65535)) {
    if (values.port !== undefined) throw new UsageError(`--port must be a TCP port from 1 to 65535, got '${values.port}'`)
    throw new LocalApiError('CONFIG', `household.port in ${file} is ${portText}: give the port the gateway logged ("household page on ...") with --port N`)
  }
  const enabled = getPath(tree, 'household.enabled') !== false
  const wildcard = listen === '0.0.0.0' || listen === '::'
  const host = (h: string) => (h.includes(':') ? `[${h}]` : h)
  const base = `http://${host(wildcard ? (listen === '::' ? '::1' : '127.0.0.1') : listen)}:${port}`
  const pageUrls = (wildcard ? io.addresses() : [listen]).map((a) => `http://${host(a)}:${port}/`)
  const configPin = getPath(tree, 'household.pin')
  let pin: GatewayAt['pin'] = typeof configPin === 'string' ? { value: configPin, from: 'config' } : null
  if (pin === null) {
    try {
      const text = io.readFile(pinPath(data)).trim()
      if (isPin(text)) pin = { value: text, from: 'file' }
    } catch {
      // Not made yet (the page never started), or not ours to read: said where it is shown.
    }
  }
  return { base, data, pageUrls, pin, enabled }
}

function stringAt(tree: Record<string, unknown>, path: string, fallback: string): string {
  const v = getPath(tree, path)
  return typeof v === 'string' ? v : fallback
}

const NOT_RUNNING = 'the gateway is not running or its page is off: systemctl status steppelink-gateway'

/** One request to the local API: the parsed JSON answer and its status; LocalApiError when there is no answer. */
export async function callApi(at: GatewayAt, io: LocalApiIo, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; value: unknown }> {
  if (!at.enabled) throw new LocalApiError('GATEWAY_NOT_RUNNING', `the household page is off (household.enabled = false in the config), and these commands go through it`)
  let token: string
  try {
    token = io.readFile(tokenPath(at.data)).trim()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EACCES' || code === 'EPERM') throw new LocalApiError('TOKEN', `cannot read ${tokenPath(at.data)}: run this as the gateway's user or root (sudo steppelink ...)`)
    throw new LocalApiError('TOKEN', `no ${tokenPath(at.data)}: ${NOT_RUNNING} (the gateway makes the file when its page first starts; is ${at.data} its data directory?)`)
  }
  if (!isToken(token)) throw new LocalApiError('TOKEN', `${tokenPath(at.data)} does not hold a token: restart the gateway, which makes a new one`)
  let res: Response
  try {
    res = await io.fetch(`${at.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(10_000),
    })
  } catch {
    throw new LocalApiError('GATEWAY_NOT_RUNNING', `${NOT_RUNNING} (nothing answered at ${at.base})`)
  }
  let value: unknown
  try {
    value = await res.json()
  } catch {
    throw new LocalApiError('API', `something at ${at.base} answered ${res.status}, but not as the gateway's page: is household.port another program's?`)
  }
  if (res.status === 401) throw new LocalApiError('TOKEN', `the gateway at ${at.base} refused the token in ${tokenPath(at.data)}: is ${at.data} the data directory of the gateway that runs there?`)
  return { status: res.status, value }
}
