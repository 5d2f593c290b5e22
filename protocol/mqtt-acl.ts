/**
 * Topic permissions [MQTT-2.7]–[MQTT-2.10]: who may publish and subscribe to which topic,
 * and with the retain flag. Written once, here, as a table of rules (MQTT_ACL_RULES) and a
 * pure function over it (mqttAccess); the embedded aedes of the demo and the tests asks the
 * function at every CONNECT, PUBLISH and SUBSCRIBE (device-sim/broker.ts), and the mosquitto
 * ACL file is generated from the same table (mosquittoAcl, `steppelink broker-acl`), so
 * the two cannot drift apart.
 *
 * Identities [MQTT-2.7]: a broker user name is either a platform account (listed: the
 * `platform` role) or a gateway id (the `gateway:<id>` role, with the gateway's area, if
 * any). Nothing is allowed that no rule grants (default deny) [MQTT-2.8].
 */

import { TOPIC_ID_PATTERN } from './mqtt-topics.js'

/** Who is asking: a gateway (its id is its broker user name, its area from the list of gateways) or the platform. */
export type MqttPrincipal = { role: 'gateway'; id: string; area: string | null } | { role: 'platform' }

export type MqttAction = 'publish' | 'subscribe'

/**
 * The retain flag a rule allows on a PUBLISH: `never`; `allowed` (set or not); `clear`: no
 * flag, or the flag with an empty payload (clearing a retained message); `clear-only`: only
 * the flag with an empty payload.
 */
export type RetainRule = 'never' | 'allowed' | 'clear' | 'clear-only'

/**
 * A topic under the prefix, level by level: a literal; `{self}` the asking gateway's id;
 * `{area}` its area (a gateway without an area has no such topic); `{any}` any id
 * (TOPIC_ID_PATTERN), and in a subscription also the `+` wildcard.
 */
export type TopicLevel = string

export interface MqttAclRule {
  /** Stable id, cited by MQTT.md, the tests and the generated mosquitto ACL. */
  id: string
  role: MqttPrincipal['role']
  action: MqttAction
  /** Levels after the prefix. */
  topic: readonly TopicLevel[]
  /** For a publish: which retain flag; for a subscribe: ignored. */
  retain: RetainRule
  /** What it is for, in a few words. */
  why: string
}

const UPLINK_PLAIN = ['alert', 'event', 'batch', 'reply'] as const
const UPLINK_RETAINED = ['state', 'status'] as const

/** The rules [MQTT-2.8]. Anything they do not grant is refused. */
export const MQTT_ACL_RULES: readonly MqttAclRule[] = [
  ...UPLINK_PLAIN.map((t): MqttAclRule => ({ id: 'G1', role: 'gateway', action: 'publish', topic: ['gw', '{self}', t], retain: 'never', why: 'a gateway publishes its own uplink' })),
  ...UPLINK_RETAINED.map(
    (t): MqttAclRule => ({ id: 'G2', role: 'gateway', action: 'publish', topic: ['gw', '{self}', t], retain: 'allowed', why: 'a gateway publishes its own state (birth, death, Will) and status' }),
  ),
  { id: 'G3', role: 'gateway', action: 'subscribe', topic: ['gw', '{self}', 'cmd'], retain: 'never', why: 'a gateway reads its own commands' },
  { id: 'G4', role: 'gateway', action: 'subscribe', topic: ['area', '{area}', 'cmd'], retain: 'never', why: "a gateway reads its area's commands" },
  { id: 'G5', role: 'gateway', action: 'subscribe', topic: ['all', 'cmd'], retain: 'never', why: 'a gateway reads the commands to all gateways' },
  { id: 'P1', role: 'platform', action: 'publish', topic: ['gw', '{any}', 'cmd'], retain: 'clear', why: 'the platform commands a gateway' },
  { id: 'P1', role: 'platform', action: 'publish', topic: ['area', '{any}', 'cmd'], retain: 'clear', why: 'the platform commands an area' },
  { id: 'P1', role: 'platform', action: 'publish', topic: ['all', 'cmd'], retain: 'clear', why: 'the platform commands every gateway' },
  ...[...UPLINK_PLAIN, ...UPLINK_RETAINED].map(
    (t): MqttAclRule => ({ id: 'P2', role: 'platform', action: 'subscribe', topic: ['gw', '{any}', t], retain: 'never', why: "the platform reads every gateway's uplink" }),
  ),
  ...UPLINK_RETAINED.map(
    (t): MqttAclRule => ({ id: 'P3', role: 'platform', action: 'publish', topic: ['gw', '{any}', t], retain: 'clear-only', why: "the platform clears a retired gateway's retained state and status" }),
  ),
]

export interface MqttAccessRequest {
  action: MqttAction
  /** The topic of a PUBLISH, or the filter of a SUBSCRIBE. */
  topic: string
  /** PUBLISH only: the retain flag, and whether the payload is empty. */
  retain?: boolean
  empty?: boolean
}

export type MqttAccess = { allowed: true; rule: string } | { allowed: false; reason: string }

const idPattern = new RegExp(TOPIC_ID_PATTERN)

function retainAllowed(rule: RetainRule, retain: boolean, empty: boolean): boolean {
  switch (rule) {
    case 'never':
      return !retain
    case 'allowed':
      return true
    case 'clear':
      return !retain || empty
    case 'clear-only':
      return retain && empty
  }
}

/** What the generated mosquitto ACL says of the retain flag, which mosquitto cannot check. */
const RETAIN_NOTE: Record<RetainRule, string> = { never: 'never', allowed: 'allowed', clear: 'only on an empty payload, to clear', 'clear-only': 'always, on an empty payload: clearing only' }

const RETAIN_WORDS: Record<RetainRule, string> = {
  never: 'without the retain flag',
  allowed: 'with or without the retain flag',
  clear: 'without the retain flag, or empty with it (clearing a retained message)',
  'clear-only': 'empty with the retain flag (clearing a retained message)',
}

function levelMatches(template: TopicLevel, level: string, who: MqttPrincipal, action: MqttAction): boolean {
  switch (template) {
    case '{self}':
      return who.role === 'gateway' && level === who.id
    case '{area}':
      return who.role === 'gateway' && who.area !== null && level === who.area
    case '{any}':
      return idPattern.test(level) || (action === 'subscribe' && level === '+')
    default:
      return level === template
  }
}

/**
 * May `who` do this [MQTT-2.8]? Pure: the answer depends on nothing but the arguments.
 * A PUBLISH is allowed by a rule whose topic matches level by level and whose retain rule
 * admits its flag [MQTT-2.9]; a SUBSCRIBE by a rule whose topic matches its filter level
 * by level (a platform may use `+` where a rule says any id; `#` is never granted).
 */
export function mqttAccess(prefix: string, who: MqttPrincipal, request: MqttAccessRequest): MqttAccess {
  const { action, topic } = request
  if (!topic.startsWith(`${prefix}/`)) return { allowed: false, reason: `${topic} is not under the prefix ${prefix}` }
  const levels = topic.slice(prefix.length + 1).split('/')
  let retainRefused: MqttAclRule | null = null
  for (const rule of MQTT_ACL_RULES) {
    if (rule.role !== who.role || rule.action !== action || rule.topic.length !== levels.length) continue
    if (!rule.topic.every((t, i) => levelMatches(t, levels[i]!, who, action))) continue
    if (action === 'publish' && !retainAllowed(rule.retain, request.retain === true, request.empty === true)) {
      retainRefused = rule
      continue
    }
    return { allowed: true, rule: rule.id }
  }
  const name = who.role === 'gateway' ? `gateway ${who.id}` : 'the platform'
  if (retainRefused !== null) {
    return { allowed: false, reason: `${name} may publish ${topic} only ${RETAIN_WORDS[retainRefused.retain]} (rule ${retainRefused.id})` }
  }
  return { allowed: false, reason: `no rule lets ${name} ${action} ${topic}` }
}

/** One gateway the broker knows: its id (its user name) and area. */
export interface AclGateway {
  id: string
  area: string | null
}

export interface MosquittoAclInput {
  prefix: string
  /** The broker user names of the platform role (certificate CNs in that mode). */
  platformUsers: readonly string[]
  /** Gateways with an area get a `user` block of their own for it [MQTT-2.10]; the others need no line. */
  gateways: readonly AclGateway[]
}

/** What is wrong with an ACL input, or null. */
export function aclInputProblem(i: MosquittoAclInput): string | null {
  if (i.platformUsers.length === 0) return 'no platform user: nobody could send commands'
  const platform = new Set(i.platformUsers)
  for (const u of i.platformUsers) if (/\s/.test(u) || u === '') return `platform user name "${u}" is empty or has white space`
  const seen = new Set<string>()
  for (const g of i.gateways) {
    if (!idPattern.test(g.id)) return `gateway id "${g.id}" does not match ${TOPIC_ID_PATTERN}`
    if (g.area !== null && !idPattern.test(g.area)) return `area "${g.area}" of gateway ${g.id} does not match ${TOPIC_ID_PATTERN}`
    if (platform.has(g.id)) return `gateway id "${g.id}" is also a platform user name: it would get both roles`
    if (seen.has(g.id)) return `gateway ${g.id} is listed twice`
    seen.add(g.id)
  }
  return null
}

const MOSQUITTO_ACCESS: Record<MqttAction, string> = { publish: 'write', subscribe: 'read' }

/**
 * The mosquitto ACL file of the rules [MQTT-2.10]: `pattern` lines (`%u`, the user name,
 * is the gateway id) for what every gateway may do, one `user` block per platform user,
 * and one `user` block per gateway with an area (mosquitto cannot learn the area from the
 * user name). What mosquitto cannot check is written as comments: the retain flag, and
 * P3's "empty only". Throws if the input is wrong (aclInputProblem).
 */
export function mosquittoAcl(i: MosquittoAclInput): string {
  const bad = aclInputProblem(i)
  if (bad !== null) throw new Error(bad)
  const topic = (r: MqttAclRule, area?: string) => [i.prefix, ...r.topic.map((t) => (t === '{self}' ? '%u' : t === '{any}' ? '+' : t === '{area}' ? (area ?? '{area}') : t))].join('/')
  const line = (kind: string, r: MqttAclRule, area?: string) => `${kind} ${MOSQUITTO_ACCESS[r.action]} ${topic(r, area)}`
  const retainNote = (r: MqttAclRule) => (r.action === 'subscribe' ? '' : ` (retain flag: ${RETAIN_NOTE[r.retain]})`)
  /** Each rule's lines under one comment: its id, what it is for, and the retain flag it allows. */
  const block = (kind: string, rules: readonly MqttAclRule[], area?: string) => {
    const lines: string[] = []
    rules.forEach((r, n) => {
      if (n === 0 || rules[n - 1]!.id !== r.id || rules[n - 1]!.retain !== r.retain) lines.push(`# ${r.id}: ${r.why}${retainNote(r)}`)
      lines.push(line(kind, r, area))
    })
    return lines
  }
  const gatewayRules = MQTT_ACL_RULES.filter((r) => r.role === 'gateway' && !r.topic.includes('{area}'))
  const areaRules = MQTT_ACL_RULES.filter((r) => r.role === 'gateway' && r.topic.includes('{area}'))
  const platformRules = MQTT_ACL_RULES.filter((r) => r.role === 'platform')
  const out = [
    '# Steppelink: topic permissions for mosquitto (protocol/MQTT.md [MQTT-2.7]-[MQTT-2.10]).',
    '# Generated from protocol/mqtt-acl.ts (MQTT_ACL_RULES) by `steppelink broker-acl`; do not edit by hand.',
    '# Default deny: with acl_file set, mosquitto refuses every topic no line below grants.',
    '# A user name is a gateway id (password file, or the CN of its client certificate),',
    '# or one of the platform users below.',
    '#',
    '# mosquitto cannot restrict the retain flag: it is enforced by the embedded aedes only.',
    '# The platform MUST ignore a retained message on any topic but state and status.',
    '',
    '# Every gateway (%u = its user name = its id): its own uplink, its own and all commands.',
    ...block('pattern', gatewayRules),
  ]
  for (const u of i.platformUsers) {
    out.push('', `# The platform role. Its user name also matches the patterns above, so no gateway may be called ${u}.`, `user ${u}`)
    out.push(...block('topic', platformRules))
  }
  const withArea = i.gateways.filter((g) => g.area !== null)
  if (withArea.length > 0) out.push('', `# ${areaRules.map((r) => `${r.id}: ${r.why}`).join('; ')}: one block per gateway with an area.`)
  for (const g of withArea) out.push(`user ${g.id}`, ...areaRules.map((r) => line('topic', r, g.area!)))
  out.push('')
  return out.join('\n')
}

/**
 * The list of gateways `steppelink broker-acl` reads: one gateway a line, its id and
 * optionally its area, separated by white space or a comma; `#` starts a comment.
 * Returns the gateways, or the first line that is wrong.
 */
export function parseGatewayList(text: string): { ok: true; gateways: AclGateway[] } | { ok: false; error: string } {
  const gateways: AclGateway[] = []
  const lines = text.split(/\r?\n/)
  for (let n = 0; n < lines.length; n++) {
    const words = lines[n]!.replace(/#.*/, '')
      .split(/[\s,]+/)
      .filter((w) => w !== '')
    if (words.length === 0) continue
    if (words.length > 2) return { ok: false, error: `line ${n + 1}: expected "<gateway id> [<area>]", got ${words.length} words` }
    const [id, area] = words as [string, string | undefined]
    if (!idPattern.test(id)) return { ok: false, error: `line ${n + 1}: gateway id "${id}" does not match ${TOPIC_ID_PATTERN}` }
    if (area !== undefined && !idPattern.test(area)) return { ok: false, error: `line ${n + 1}: area "${area}" does not match ${TOPIC_ID_PATTERN}` }
    gateways.push({ id, area: area ?? null })
  }
  return { ok: true, gateways }
}

/**
 * A CONNACK that refused the connection, in words, or null for another error: 4 (bad user
 * name or password) and 5 (not authorized: mosquitto's answer to MQTT 3.1.1 for a bad
 * password or an unknown user) name the setting to check [MQTT-2.7]. `code` is the return
 * code mqtt.js puts on its error, `setting` the name of the user name setting.
 */
export function connackRefusal(code: unknown, setting: string): string | null {
  if (code === 4) return `the broker refused our user name/password (${setting}): CONNACK 4, bad user name or password`
  if (code === 5) return `the broker refused our user name/password (${setting}): CONNACK 5, not authorized`
  return null
}
