/**
 * The small pieces of HTTP the household server needs from node:http: cookies, bodies
 * read with a limit, the security headers every answer carries, and the answers.
 */

import type { IncomingMessage, ServerResponse } from 'node:http'

/** Headers on every answer: only this server's own files run or load; no framing; no referrer. */
export const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
}

/** The largest body a form or the local API may send, bytes: a relay is under 1 kB. */
export const MAX_BODY = 16 * 1024

export class BodyError extends Error {
  constructor(
    readonly code: 'BODY_TOO_LARGE' | 'BODY_BAD',
    message: string,
  ) {
    super(message)
  }
}

export function cookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=')
    if (i <= 0) continue
    const name = part.slice(0, i).trim()
    if (!out.has(name)) out.set(name, part.slice(i + 1).trim())
  }
  return out
}

export async function readBody(req: IncomingMessage, limit = MAX_BODY): Promise<string> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) throw new BodyError('BODY_TOO_LARGE', `body over ${limit} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw new BodyError('BODY_TOO_LARGE', `body over ${limit} bytes`)
    chunks.push(chunk)
  }
  const body = Buffer.concat(chunks)
  const text = new TextDecoder('utf-8', { fatal: false }).decode(body)
  return text
}

/** A form body (application/x-www-form-urlencoded); a field given twice keeps the first. */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  return new URLSearchParams(await readBody(req))
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readBody(req)
  if (text.trim() === '') return {}
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new BodyError('BODY_BAD', 'the body is not JSON')
  }
}

export function send(res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string | string[]> = {}): void {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': String(bytes.length), 'Cache-Control': 'no-store', ...headers })
  res.end(bytes)
}

export function sendHtml(res: ServerResponse, status: number, page: string, headers: Record<string, string | string[]> = {}): void {
  send(res, status, 'text/html; charset=utf-8', page, headers)
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string | string[]> = {}): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`, headers)
}

/** POST, redirect, GET: 303 sends the browser to `location` with a GET. */
export function redirect(res: ServerResponse, location: string, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(303, { ...SECURITY_HEADERS, Location: location, 'Content-Length': '0', 'Cache-Control': 'no-store', ...headers })
  res.end()
}

/**
 * Whether a POST came from a page of this server, as far as the browser says: an Origin
 * or Referer header, if present, must name the host the request was sent to. `Origin:
 * null` says nothing: it is what a browser sends for every POST of a page with
 * `Referrer-Policy: no-referrer` (ours), so there the CSRF token alone decides.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const host = req.headers.host
  for (const h of [req.headers.origin, req.headers.referer]) {
    if (h === undefined || h === '' || h === 'null') continue
    try {
      if (new URL(h).host !== host) return false
    } catch {
      return false
    }
  }
  return true
}
