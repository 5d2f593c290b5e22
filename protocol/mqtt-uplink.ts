/**
 * Uplink payloads [MQTT-3.x], gateway to platform: priority classes and kinds, the alert
 * or event, a terminal's status, birth and death, and the error report on `reply`. The
 * gateway's own status is in mqtt-gateway-status.ts, the batch in mqtt-batch.ts.
 */

import Type, { type Static } from 'typebox'
import { EVENT_KINDS, STAGES } from './messages.js'
import { MQTT_CONTRACT_VERSION, Time, names } from './mqtt-contract.js'

/** Priority classes, highest first. [MQTT-3.3] */
export const CLASSES = ['alarm', 'request', 'trouble', 'status'] as const
export type PriorityClass = (typeof CLASSES)[number]

/** Kinds made by the gateway itself, beside the terminal's event kinds. */
export const GATEWAY_KINDS = {
  'terminal-lost': { code: 355, restore: false, text: 'no frame from the terminal for the supervision time' },
  'terminal-restored': { code: 355, restore: true, text: 'the terminal is heard again' },
  'terminal-reset': { code: 305, restore: false, text: "the terminal's event numbers restarted (memory wiped, or a new unit under the same id)" },
  'terminal-id-conflict': { code: 380, restore: false, text: 'a second device on the serial line claims a terminal id bound to another address' },
  relay: { code: null, restore: false, text: 'a message relayed by the center household for a neighbour' },
  'broadcast-read': { code: null, restore: false, text: 'a terminal user, or the center household, has read a broadcast' },
  'broadcast-received': { code: null, restore: false, text: 'the gateway has stored a broadcast (a new one, or a new text of one)' },
  'broadcast-passed-on': { code: null, restore: false, text: 'the center household has passed a broadcast on to the households around' },
} as const
export type GatewayKind = keyof typeof GATEWAY_KINDS

/** The priority class of every kind. Cancel travels with the alarms so it can never overtake the alarm it cancels. [MQTT-3.3] */
export const CLASS_OF: Readonly<Record<keyof typeof EVENT_KINDS | GatewayKind, PriorityClass>> = {
  medical: 'alarm',
  emergency: 'alarm',
  fire: 'alarm',
  panic: 'alarm',
  cancel: 'alarm',
  callback: 'request',
  relay: 'request',
  'mains-lost': 'trouble',
  'mains-restored': 'trouble',
  'battery-low': 'trouble',
  'battery-restored': 'trouble',
  tamper: 'trouble',
  'tamper-restored': 'trouble',
  'terminal-lost': 'trouble',
  'terminal-restored': 'trouble',
  'terminal-reset': 'trouble',
  'terminal-id-conflict': 'trouble',
  test: 'status',
  'broadcast-read': 'status',
  'broadcast-received': 'status',
  'broadcast-passed-on': 'status',
}

/**
 * What a relay by the center household is about ([MQTT-3.11]): the first four are alarms
 * (each published under the alarm kind of RELAY_ALARM_KINDS), the others requests (kind
 * `relay`).
 */
export const RELAY_WHATS = ['emergency', 'medical', 'fire', 'crime', 'livestock', 'other'] as const
export type RelayWhat = (typeof RELAY_WHATS)[number]
/** The alarm kind a relayed alarm is published under; a `what` not here is a request, kind `relay`. [MQTT-3.11] */
export const RELAY_ALARM_KINDS: Readonly<Partial<Record<RelayWhat, 'emergency' | 'medical' | 'fire' | 'panic'>>> = {
  emergency: 'emergency',
  medical: 'medical',
  fire: 'fire',
  crime: 'panic',
}

export const UPLINK_KINDS = [...Object.keys(EVENT_KINDS), ...Object.keys(GATEWAY_KINDS)] as (keyof typeof EVENT_KINDS | GatewayKind)[]

export const UplinkEvent = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    id: Type.String({ minLength: 1, maxLength: 160, description: 'unique forever; `terminal:number` for terminal events' }),
    class: Type.Enum([...CLASSES]),
    kind: Type.Enum(UPLINK_KINDS),
    code: Type.Union([Type.Integer(), Type.Null()], { description: 'Ademco Contact ID event code, or null' }),
    restore: Type.Boolean(),
    gateway: Type.String(),
    terminal: Type.Union([Type.String(), Type.Null()], { description: 'terminal id from its HELLO; null for gateway events' }),
    address: Type.Union([Type.Integer({ minimum: 1, maximum: 254 }), Type.Null()]),
    number: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: "the terminal's event number" }),
    user: Type.Optional(Type.Integer({ minimum: 0, maximum: 999 })),
    time: Time,
    received: Type.Integer({ description: 'UNIX ms (corrected) when the gateway stored it' }),
    attempt: Type.Integer({ minimum: 1, description: 'how many times this id has been published' }),
    text: Type.Optional(Type.String({ maxLength: 1000 })),
    stage: Type.Optional(names(STAGES)),
    terminalTime: Type.Optional(Type.Integer({ description: "UNIX ms from the terminal's own clock, if it had been told the time" })),
    broadcast: Type.Optional(Type.Integer({ description: 'broadcast id, for kinds broadcast-read, broadcast-received and broadcast-passed-on' })),
    revision: Type.Optional(
      Type.Integer({ minimum: 0, description: 'which text of the broadcast (0 the first; +1 at each replacement), for kinds broadcast-read, broadcast-received and broadcast-passed-on' }),
    ),
    by: Type.Optional(Type.Enum(['household'], { description: 'for broadcast-read: the center household read it on its page (terminal null) [MQTT-5.7]' })),
    households: Type.Optional(Type.Integer({ minimum: 0, maximum: 500, description: 'for broadcast-passed-on: to how many households the center household passed it on [MQTT-5.7]' })),
    relay: Type.Optional(
      Type.Object(
        {
          what: Type.Enum([...RELAY_WHATS]),
          for: Type.Object(
            {
              name: Type.String({ minLength: 1, maxLength: 64, description: 'the neighbour household it is for' }),
              phone: Type.Optional(Type.String({ maxLength: 32 })),
              where: Type.Optional(Type.String({ maxLength: 160, description: 'where they are: a place name, a well, a winter camp' })),
            },
            { additionalProperties: true },
          ),
          by: Type.Object(
            {
              household: Type.Union([Type.String({ maxLength: 64 }), Type.Null()], { description: "the relaying center household's name from the gateway's config, or null" }),
              member: Type.Optional(Type.String({ maxLength: 64, description: 'who at the center household relayed it' })),
            },
            { additionalProperties: true },
          ),
        },
        { additionalProperties: true, description: 'a message relayed by the center household for a neighbour [MQTT-3.11]' },
      ),
    ),
    cancels: Type.Optional(Type.String({ minLength: 1, maxLength: 160, description: 'for kind cancel: the id of the alarm it cancels, the latest open one of its terminal' })),
    claims: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 32,
        description:
          'an event of an unverified claimant: the terminal id its HELLO claimed, which is bound to another address; `terminal` is then that id qualified by gateway and address [MQTT-3.10]',
      }),
    ),
    conflict: Type.Optional(
      Type.Object(
        {
          terminal: Type.String({ description: 'the terminal id claimed' }),
          boundAddress: Type.Integer({ minimum: 1, maximum: 254, description: 'the address the id is bound to' }),
          address: Type.Integer({ minimum: 1, maximum: 254, description: 'the address of the second claimant' }),
          as: Type.String({ description: "the identity the claimant's events are filed under (`<terminal>@<gateway>.a<address>`)" }),
        },
        { additionalProperties: true },
      ),
    ),
    reset: Type.Optional(
      Type.Object(
        {
          reason: Type.Enum(['boot-backwards', 'last-event-backwards', 'event-differs']),
          epoch: Type.String({ description: 'the tag of the new numbering, in the ids of the events after the reset' }),
          boot: Type.Integer({ minimum: 0, description: "the terminal's boot counter now" }),
          lastEvent: Type.Integer({ minimum: 0, description: 'the highest event number the terminal says it has assigned' }),
          previousBoot: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
          previousNumber: Type.Integer({ minimum: 0, description: 'the highest event number the gateway had seen from it before' }),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true },
)
export type UplinkEvent = Static<typeof UplinkEvent>

/** Periodic status of one terminal, coalesced while offline. [MQTT-3.4] */
export const TerminalStatus = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    id: Type.String(),
    class: Type.Literal('status'),
    kind: Type.Literal('status'),
    gateway: Type.String(),
    terminal: Type.String(),
    address: Type.Integer({ minimum: 1, maximum: 254 }),
    time: Time,
    latest: Type.Object({
      uptime: Type.Integer(),
      mains: Type.Boolean(),
      battery: Type.Optional(Type.Integer()),
      millivolts: Type.Optional(Type.Integer()),
      signal: Type.Optional(Type.Integer()),
      pending: Type.Optional(Type.Integer()),
      temperature: Type.Optional(Type.Integer()),
    }),
    since: Type.Integer({ description: 'UNIX ms of the first heartbeat folded into this one' }),
    heartbeats: Type.Integer({ minimum: 1, description: 'heartbeats folded into this status' }),
    lowestBattery: Type.Optional(Type.Integer()),
    minutesWithoutMains: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: true },
)
export type TerminalStatus = Static<typeof TerminalStatus>

export const Birth = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    type: Type.Enum(['birth', 'death']),
    gateway: Type.String(),
    online: Type.Boolean(),
    session: Type.Integer({ minimum: 0, description: 'session counter: +1 at every connection attempt; the will names the same session as the birth' }),
    time: Type.Optional(Time),
    version: Type.Optional(Type.String()),
    encoding: Type.Optional(Type.Enum(['cbor', 'json'])),
    area: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  },
  { additionalProperties: true },
)
export type Birth = Static<typeof Birth>

export const Reply = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    type: Type.Literal('error'),
    gateway: Type.String(),
    command: Type.Union([Type.String(), Type.Null()], { description: 'the id of the command, if it had a readable one' }),
    topic: Type.String(),
    code: Type.String({ description: 'stable error code, e.g. CMD_BAD_SCHEMA' }),
    message: Type.String(),
    time: Time,
    suppressed: Type.Optional(Type.Integer({ minimum: 1, description: 'error reports held back by the rate limit since the previous one that went out [MQTT-5.2]' })),
  },
  { additionalProperties: true },
)
export type Reply = Static<typeof Reply>
