/**
 * `steppelink status`, `steppelink relay` and `steppelink inbox`: what the household page
 * shows and does, at the command line of the board, for the member with a keyboard and
 * for support over a phone call. They go through the running gateway's local API
 * (cli/local-api.ts), say it plainly when it is not running, and print text, or JSON
 * with --json. The words are the page's English table (gateway/household/web/strings.ts).
 */

import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { checkRelay, RELAY_WHATS, type BroadcastView, type HouseholdSnapshot, type RelayInputField, type RelayResult } from '../gateway/household/model.js'
import { t } from '../gateway/household/web/strings.js'
import { when } from '../gateway/household/web/view.js'
import { screenText } from '../platform/render.js'
import { callApi, DEFAULT_LOCAL_API_IO, findGateway, type GatewayAt, LOCAL_API_HELP, LOCAL_API_OPTIONS, LocalApiError, type LocalApiIo } from './local-api.js'
import { oneOf, parseArgsError, reportUsage, USAGE_EXIT, UsageError } from './usage.js'

const STATUS_HELP = `Usage: steppelink status [options]

What the household page shows at the top, from the running gateway: whether an alarm
pressed now gets through, the link to the 110 platform, the terminals (battery, mains,
signal, last heard), what waits to be sent, disk, clock, version, the open alarms and
requests with their stage; and the page's address on the LAN with its PIN.

Options:
${LOCAL_API_HELP}`

const RELAY_HELP = `Usage: steppelink relay --what KIND --for NAME [--phone P] [--where PLACE] [--text TEXT] [--by NAME] [options]

Relays an alarm or a request for a neighbour household, as the page's relay form does.
emergency, medical, fire and crime go as alarms (stored first, sent at once, sent again
until the platform confirms); livestock and other as requests. Exit 1 if the gateway did
not save it: then call 110 by phone.

  --what KIND      ${RELAY_WHATS.join(', ')} (required)
  --for NAME       the household it is for (required)
  --phone P        their phone number
  --where PLACE    where they are: a place name, a well, a winter camp
  --text TEXT      what happened, what they need (required for other)
  --by NAME        who relays it (you)

Options:
${LOCAL_API_HELP}`

const INBOX_HELP = `Usage: steppelink inbox [options]                               the broadcasts from the platform
       steppelink inbox read ID [options]                       mark broadcast ID read
       steppelink inbox passed-on ID --households N [options]   say it was passed on to N households

Read and passed-on go back to the platform, which sees per broadcast which gateways got
it, read it and passed it on.

Options:
  --households N      how many households it was passed on to (1-1000)
${LOCAL_API_HELP}`

type Io = LocalApiIo

function parse<O extends Record<string, { type: 'string' | 'boolean'; short?: string }>>(args: string[], options: O, positionals: boolean) {
  try {
    return parseArgs({ args, options: { ...LOCAL_API_OPTIONS, ...options }, allowPositionals: positionals, strict: true })
  } catch (e) {
    throw parseArgsError(e)
  }
}

/** Runs a command body: usage errors exit 2, a gateway that does not answer exits 1, with one line each. */
async function run(name: string, io: Io, body: () => Promise<number>): Promise<number> {
  try {
    return await body()
  } catch (e) {
    if (e instanceof LocalApiError) {
      io.stderr(`steppelink ${name}: ${e.message}`)
      return 1
    }
    return reportUsage(io.stderr, name, e)
  }
}

// ---------------------------------------------------------------------------------------
// status

export async function statusCommand(args: string[], io: Io = DEFAULT_LOCAL_API_IO): Promise<number> {
  return run('status', io, async () => {
    const { values, positionals } = parse(args, {}, true)
    if (values.help) {
      io.stdout(STATUS_HELP)
      return 0
    }
    if (positionals.length > 0) throw new UsageError(`status takes no arguments, got '${positionals.join(' ')}'`)
    const at = findGateway(values, io)
    const { value } = await callApi(at, io, 'GET', '/api/status')
    const snap = value as HouseholdSnapshot
    const page = { urls: at.pageUrls, pin: at.pin?.value ?? null, pinFrom: at.pin?.from ?? null }
    if (values.json) {
      io.stdout(JSON.stringify({ ...snap, page }))
      return 0
    }
    for (const line of statusText(snap, at)) io.stdout(line)
    return 0
  })
}

export function statusText(s: HouseholdSnapshot, at: GatewayAt): string[] {
  const en = 'en'
  const row = (label: string, text: string) => `${label.padEnd(10)} ${text}`
  const u = s.uplink
  const lines = [
    `Steppelink gateway ${s.gateway}${s.household ? ` (${screenText(s.household)})` : ''}, version ${s.version}`,
    '',
    t(en, `verdict.${s.verdict}`),
    ...s.reasons.map((r) => `  - ${t(en, `reason.${r}`)}`),
    '',
    row(
      'uplink',
      `${t(en, u.online ? 'uplink.online' : 'uplink.offline')}${u.since !== null ? ` ${t(en, 'uplink.since', { t: when(u.since, en) })}` : ''}, ${t(en, 'uplink.lastContact', { t: when(u.lastContact, en) })} (${u.broker})`,
    ),
    ...(s.terminals.length === 0
      ? [row('terminals', t(en, 'terminals.none'))]
      : s.terminals.map((x, i) =>
          row(
            i === 0 ? 'terminals' : '',
            [
              `${x.terminal} ${t(en, x.lost ? 'terminal.lost' : x.answering ? 'terminal.answering' : 'terminal.notAnswering')}`,
              x.battery !== null ? t(en, 'terminal.battery', { n: x.battery }) : null,
              x.mains !== null ? t(en, x.mains ? 'terminal.mains.on' : 'terminal.mains.off') : null,
              x.signal !== null ? t(en, 'terminal.signal', { n: x.signal }) : null,
              t(en, 'terminal.lastHeard', { t: when(x.lastHeard, en) }),
            ]
              .filter((f) => f !== null)
              .join(', '),
          ),
        )),
    row('backlog', (['alarm', 'request', 'trouble', 'status'] as const).map((k) => `${t(en, `backlog.${k}`)} ${s.backlog[k]}`).join(', ')),
    row(
      'disk',
      s.disk.freeBytes === null
        ? t(en, 'unknown')
        : `${t(en, 'disk.free', { free: `${Math.round(s.disk.freeBytes / 1048576)} MB`, reserve: `${Math.round(s.disk.reserveBytes / 1048576)} MB` })}${s.disk.low ? ` (${t(en, 'disk.low')})` : ''}`,
    ),
    row('clock', t(en, s.clock.synchronised ? 'clock.set' : 'clock.estimated')),
    row('alerts', s.alerts.length === 0 ? t(en, 'alerts.none') : `${s.alerts.length}`),
    ...s.alerts.map((a) => {
      const last = a.stages.at(-1)
      const extra = [last?.text, last?.eta !== undefined ? t(en, 'alert.eta', { t: when(last.eta, en) }) : undefined].filter(Boolean).join(', ')
      const who = a.relay ? `relay for ${a.relay.forName}: ${a.relay.what}` : `${a.terminal}: ${a.kind}`
      // Text from the wire, control characters made visible: no payload steers this terminal.
      return `  ${screenText(a.id)}  ${screenText(who)}  ${a.stage}${extra ? ` (${screenText(extra)})` : ''}${a.stage === 'unconfirmed' ? `  ${t(en, 'alert.call110')}` : ''}`
    }),
    row('inbox', `${s.inbox.length} broadcast(s), ${s.inbox.filter((b) => b.readAt === null).length} unread`),
    row('page', at.pageUrls.length > 0 ? at.pageUrls.join('  ') : `${at.base}/ (no LAN address found)`),
    row('PIN', at.pin ? `${at.pin.value}${at.pin.from === 'config' ? ' (household.pin of the config)' : ''}` : 'not made yet (the page has not started)'),
  ]
  return lines
}

// ---------------------------------------------------------------------------------------
// relay

export async function relayCommand(args: string[], io: Io = DEFAULT_LOCAL_API_IO): Promise<number> {
  return run('relay', io, async () => {
    const { values, positionals } = parse(
      args,
      { what: { type: 'string' }, for: { type: 'string' }, phone: { type: 'string' }, where: { type: 'string' }, text: { type: 'string' }, by: { type: 'string' } },
      true,
    )
    if (values.help) {
      io.stdout(RELAY_HELP)
      return 0
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}': every value follows its flag, e.g. --text "..."`)
    const what = oneOf('what', values.what, RELAY_WHATS)
    if (what === undefined) throw new UsageError(`--what KIND is required: one of ${RELAY_WHATS.join(', ')}`)
    // The rule of a relay, the gateway's own (gateway/household/model.ts): what it would refuse is refused here, in its words, before the gateway is asked.
    const checked = checkRelay({ what, forName: values.for, forPhone: values.phone, where: values.where, text: values.text, by: values.by })
    if (!checked.ok) {
      for (const e of checked.errors) io.stderr(`steppelink relay: not sent: ${e.message} (${FLAG_OF[e.field]}; ${e.code}). Nothing was saved.`)
      return USAGE_EXIT
    }
    const at = findGateway(values, io)
    // One key per command: a retried request is one relay.
    const body = { ...checked.input, key: randomBytes(16).toString('base64url') }
    const { value } = await callApi(at, io, 'POST', '/api/relay', body)
    const result = value as RelayResult | { ok: false; code: string; message: string; field?: string }
    if (values.json) io.stdout(JSON.stringify(result))
    if (result.ok) {
      if (!values.json) io.stdout(`saved: relay ${result.id} (${result.cls}) is stored on the gateway and on its way to the 110 platform. Follow it: steppelink status`)
      return 0
    }
    if (!values.json) {
      if (result.code === 'STORE_REFUSED' || result.code === 'STORE_FAILED') io.stderr(`steppelink relay: NOT saved (${result.code}: ${result.message}). Call 110 by phone now.`)
      else io.stderr(`steppelink relay: not sent: ${result.message} (${result.code}). Nothing was saved.`)
    }
    return result.code === 'RELAY_INVALID' || result.code === 'RELAY_UNKNOWN_KIND' ? USAGE_EXIT : 1
  })
}

/** The flag of each field of a relay. */
const FLAG_OF: Readonly<Record<RelayInputField, string>> = { what: '--what', forName: '--for', forPhone: '--phone', where: '--where', text: '--text', by: '--by' }

// ---------------------------------------------------------------------------------------
// inbox

export async function inboxCommand(args: string[], io: Io = DEFAULT_LOCAL_API_IO): Promise<number> {
  return run('inbox', io, async () => {
    const { values, positionals } = parse(args, { households: { type: 'string' } }, true)
    if (values.help) {
      io.stdout(INBOX_HELP)
      return 0
    }
    const [action, idText, ...rest] = positionals
    if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`)
    if (action === undefined) {
      if (values.households !== undefined) throw new UsageError('--households goes with passed-on ID')
      const at = findGateway(values, io)
      const inbox = (await callApi(at, io, 'GET', '/api/inbox')).value as BroadcastView[]
      if (values.json) io.stdout(JSON.stringify(inbox))
      else if (inbox.length === 0) io.stdout(t('en', 'inbox.none'))
      else for (const b of inbox) io.stdout(broadcastLine(b))
      return 0
    }
    if (action !== 'read' && action !== 'passed-on') throw new UsageError(`unknown subcommand '${action}': say read ID or passed-on ID --households N`)
    if (idText === undefined || !/^\d{1,15}$/.test(idText)) throw new UsageError(`${action} takes a broadcast id (a number), got '${idText ?? ''}'`)
    let body: Record<string, number> = {}
    if (action === 'passed-on') {
      const n = values.households === undefined ? NaN : /^\d{1,4}$/.test(values.households) ? Number(values.households) : NaN
      if (!(n >= 1 && n <= 1000)) throw new UsageError(`passed-on needs --households N, a whole number from 1 to 1000${values.households !== undefined ? `, got '${values.households}'` : ''}`)
      body = { households: n }
    } else if (values.households !== undefined) throw new UsageError('--households goes with passed-on, not read')
    const at = findGateway(values, io)
    const { value } = await callApi(at, io, 'POST', `/api/inbox/${idText}/${action}`, body)
    const result = value as { ok: boolean; code?: string; message?: string }
    if (values.json) io.stdout(JSON.stringify(result))
    else if (result.ok)
      io.stdout(action === 'read' ? `broadcast ${idText} marked read; the platform will be told` : `broadcast ${idText}: passed on to ${body.households} households; the platform will be told`)
    else io.stderr(`steppelink inbox: ${result.message} (${result.code})`)
    return result.ok ? 0 : 1
  })
}

function broadcastLine(b: BroadcastView): string {
  const state = [
    b.readAt !== null ? t('en', 'inbox.readAt', { t: when(b.readAt, 'en') }) : 'unread',
    b.passedOn ? t('en', 'inbox.passedOnDone', { n: b.passedOn.households, t: when(b.passedOn.at, 'en') }) : null,
  ]
    .filter(Boolean)
    .join(', ')
  return `${String(b.id).padStart(6)}  ${b.urgency.padEnd(7)}  ${when(b.receivedAt, 'en')}  ${state}\n        ${screenText(b.text)}`
}
