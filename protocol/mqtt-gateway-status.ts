/** The gateway's status [MQTT-3.7], retained on `status`: a fixed head, then the overview. */

import Type, { type Static } from 'typebox'
import { STAGES } from './messages.js'
import { MQTT_CONTRACT_VERSION, Time, names } from './mqtt-contract.js'
import { SESSION_TRANSITIONS, type SessionState } from './session.js'

/**
 * What version 1 of the contract fixes of the gateway status [MQTT-3.7]: a platform relies
 * on these five fields alone, and MUST NOT fail on the others missing or new.
 */
export const GatewayStatusHead = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    type: Type.Literal('status'),
    gateway: Type.String(),
    session: Type.Integer({ minimum: 0, description: 'the session of the connection it was published on, as in the birth' }),
    time: Time,
  },
  { additionalProperties: true },
)

const count = (description: string) => Type.Integer({ minimum: 0, description })
const counters = (description: string) => Type.Record(Type.String(), Type.Integer({ minimum: 0 }), { description })

/**
 * The gateway's status, retained on `status` [MQTT-3.7]: the fixed fields of
 * GatewayStatusHead, then what the reference gateway sends for the operators' overview,
 * each optional (a platform takes what it finds).
 */
export const GatewayStatus = Type.Object(
  {
    ...GatewayStatusHead.properties,
    uptimeS: Type.Optional(count('seconds since the gateway started')),
    clock: Type.Optional(
      Type.Object(
        {
          synchronised: Type.Boolean({ description: "whether a platform `time` set the gateway's clock in this boot" }),
          offsetMs: Type.Union([Type.Integer(), Type.Null()], { description: 'platform time minus gateway time, ms; null while not synchronised' }),
        },
        { additionalProperties: true },
      ),
    ),
    terminals: Type.Optional(
      Type.Array(
        Type.Object(
          {
            address: Type.Integer({ minimum: 1, maximum: 254 }),
            terminal: Type.String({ description: 'terminal id from its HELLO' }),
            session: Type.Enum(Object.keys(SESSION_TRANSITIONS) as SessionState[], { description: "state of the terminal's serial link session (PROTOCOL.md, session states)" }),
            answering: Type.Boolean({ description: 'whether the terminal answers on the serial line' }),
            lost: Type.Boolean({ description: 'terminal-lost raised and not restored' }),
            lastHeardS: Type.Union([Type.Integer(), Type.Null()], { description: 'seconds since its last frame, or null if never heard in this run' }),
            claims: Type.Optional(Type.String({ description: 'a second claimant: the terminal id its HELLO claimed, bound to another address; `terminal` is its own identity [MQTT-3.10]' })),
          },
          { additionalProperties: true },
        ),
      ),
    ),
    backlog: Type.Optional(
      Type.Record(Type.String(), Type.Object({ count: count('items waiting'), bytes: count('their size') }, { additionalProperties: true }), {
        description: 'per priority class, what waits to be published',
      }),
    ),
    openAlerts: Type.Optional(
      Type.Array(Type.Object({ id: Type.String(), class: Type.Enum(['alarm', 'request']), stage: names(STAGES) }, { additionalProperties: true }), {
        description: 'every alarm and request not yet resolved',
      }),
    ),
    counters: Type.Optional(counters('named counters since the store was made, e.g. dropped.trouble.age')),
    store: Type.Optional(
      Type.Object(
        {
          writes: Type.Object(
            {
              durable: count('commits since start synced to the medium'),
              lazy: count('commits since start not synced'),
              lastEvent: Type.Union([Type.Enum(['durable', 'lazy']), Type.Null()], { description: 'how the last event was committed' }),
            },
            { additionalProperties: true },
          ),
        },
        { additionalProperties: true },
      ),
    ),
    serial: Type.Optional(counters("the serial link's counters [LINK-9.1]")),
    compression: Type.Optional(
      Type.Object(
        {
          codec: Type.Enum(['zstd', 'none', 'pending'], { description: 'how batches are compressed; pending until the gateway knows' }),
          via: Type.Optional(Type.String({ description: 'for zstd: @mongodb-js/zstd or node:zlib' })),
          failures: Type.Optional(Type.Integer({ minimum: 1, description: 'batches that went bare because compressing them failed' })),
          error: Type.Optional(Type.String({ description: 'why zstd is missing, or the last failure' })),
        },
        { additionalProperties: true },
      ),
    ),
    tls: Type.Optional(
      Type.Object(
        {
          clientCertExpires: Type.Integer({ description: "when the gateway's TLS client certificate expires, UNIX ms (its notAfter)" }),
          clientCertSubject: Type.String({ description: "the certificate's subject CN" }),
        },
        { additionalProperties: true, description: 'the TLS client certificate the gateway connects with; absent without one' },
      ),
    ),
    // Signed commands [MQTT-5.12]
    commandsAuthenticated: Type.Optional(Type.Boolean({ description: 'whether the gateway has a platform key and takes only signed commands' })),
    platformKey: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'the id of the platform key in force, or null without one' })),
  },
  { additionalProperties: true },
)
export type GatewayStatus = Static<typeof GatewayStatus>
