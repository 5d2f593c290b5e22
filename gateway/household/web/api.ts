/**
 * The local API of the command line (`steppelink status | relay | inbox`), JSON over the
 * same port as the page. Authenticated by a bearer token that the gateway keeps in its
 * data directory (household-api-token, mode 0600): whoever can read it is the gateway's
 * user or root on the box. No cookies are read here, so no CSRF token is needed: a page
 * of another site cannot set the Authorization header without a CORS preflight, which
 * this server never allows.
 *
 *   GET  /api/status                   the snapshot (HouseholdSnapshot)
 *   POST /api/relay                    {what, forName, forPhone?, where?, text?, by?, key?}
 *   GET  /api/inbox                    the inbox (BroadcastView[])
 *   POST /api/inbox/<id>/read          {revision?}   (default: the revision in the inbox)
 *   POST /api/inbox/<id>/passed-on     {households, revision?}
 *
 * Errors are `{ ok: false, code, message, field? }` with 400, 401, 404, 409, 422 or 503; a
 * relay the rule refuses (checkRelay in ../model.ts) adds `problem` and all its `errors`.
 */

import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../../log.js'
import type { BroadcastActionResult, HouseholdService } from '../model.js'
import { BodyError, readJson, sendJson } from './http-util.js'
import { IDEMPOTENCY_KEY, submitRelay } from './relay-form.js'
import { sameSecret } from './sessions.js'
import { t } from './strings.js'

export interface ApiContext {
  household: HouseholdService
  token: string
  log: Logger | null
}

export async function handleApi(req: IncomingMessage, res: ServerResponse, path: string, ctx: ApiContext): Promise<void> {
  const auth = req.headers.authorization ?? ''
  const given = auth.startsWith('Bearer ') ? auth.slice(7).trim() : ''
  if (!sameSecret(given, ctx.token)) {
    return sendJson(res, 401, { ok: false, code: 'API_UNAUTHORIZED', message: 'a bearer token is needed: the one in household-api-token in the data directory' }, { 'WWW-Authenticate': 'Bearer' })
  }
  const method = req.method ?? 'GET'
  let body: unknown = {}
  if (method === 'POST') {
    try {
      body = await readJson(req)
    } catch (e) {
      if (!(e instanceof BodyError)) throw e
      return sendJson(res, e.code === 'BODY_TOO_LARGE' ? 413 : 400, { ok: false, code: e.code, message: e.message })
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return sendJson(res, 400, { ok: false, code: 'BODY_BAD', message: 'the body is not a JSON object' })
  }
  const fields = body as Record<string, unknown>
  const route = `${method} ${path.replace(/^\/api\/inbox\/\d{1,15}\//, '/api/inbox/ID/')}`
  switch (route) {
    case 'GET /api/status':
      return sendJson(res, 200, ctx.household.snapshot())
    case 'GET /api/inbox':
      return sendJson(res, 200, ctx.household.snapshot().inbox)
    case 'POST /api/relay':
      return relay(res, fields, ctx)
    case 'POST /api/inbox/ID/read':
    case 'POST /api/inbox/ID/passed-on':
      return broadcast(res, path, fields, ctx)
    default:
      return sendJson(res, 404, { ok: false, code: 'API_NOT_FOUND', message: `no ${method} ${path} in the local API` })
  }
}

function relay(res: ServerResponse, fields: Record<string, unknown>, ctx: ApiContext): void {
  const key = typeof fields.key === 'string' && IDEMPOTENCY_KEY.test(fields.key) ? fields.key : randomBytes(16).toString('base64url')
  const result = submitRelay(ctx.household, fields, key, ctx.log, 'the local API')
  if (result.ok) ctx.log?.info({ id: result.id, cls: result.cls, duplicate: result.duplicate }, 'relay saved from the command line')
  else ctx.log?.warn({ code: result.code, message: result.message }, 'relay from the command line not saved')
  const status = result.ok ? 200 : result.code === 'STORE_REFUSED' || result.code === 'STORE_FAILED' ? 503 : 422
  return sendJson(res, status, result)
}

function broadcast(res: ServerResponse, path: string, fields: Record<string, unknown>, ctx: ApiContext): void {
  const [, , , idText, action] = path.split('/')
  const id = Number(idText)
  const current = ctx.household.snapshot().inbox.find((b) => b.id === id)
  const revision = fields.revision === undefined ? current?.revision : fields.revision
  if (revision === undefined) return sendJson(res, 404, { ok: false, code: 'BROADCAST_UNKNOWN', message: `no broadcast ${id} in the inbox (withdrawn or expired?)` })
  if (typeof revision !== 'number' || !Number.isInteger(revision) || revision < 0)
    return sendJson(res, 422, { ok: false, code: 'BROADCAST_INVALID', field: 'revision', message: 'revision: a whole number' })
  let result: BroadcastActionResult
  if (action === 'read') result = ctx.household.markRead(id, revision)
  else {
    const n = fields.households
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1000)
      return sendJson(res, 422, { ok: false, code: 'BROADCAST_INVALID', field: 'households', message: `households: ${t('en', 'inbox.badCount')}` })
    result = ctx.household.passedOn(id, revision, n)
  }
  const status = result.ok ? 200 : result.code === 'BROADCAST_UNKNOWN' ? 404 : result.code === 'STORE_FAILED' ? 503 : 422
  return sendJson(res, status, result)
}
