/**
 * Message bodies of the serial link: one TypeBox schema per message type, the CBOR key of
 * each field, and the enumerations that travel as small integers. PROTOCOL.md section 5
 * is the prose form of this file.
 *
 * On the wire a body is a CBOR map whose keys are small unsigned integers (one byte each,
 * easy to switch on in C); in JavaScript it is an object with the names below. A receiver
 * ignores keys it does not know [LINK-5.2], so a later firmware can add fields without
 * breaking an older gateway.
 */

import Type, { type Static } from 'typebox'

const u32 = (o: object = {}) => Type.Integer({ minimum: 0, maximum: 0xffffffff, ...o })
const u16 = (o: object = {}) => Type.Integer({ minimum: 0, maximum: 0xffff, ...o })
/**
 * A text limited in UTF-8 bytes, which is what a terminal's buffer and the frame care
 * about: 180 bytes is 180 Latin letters but 60 Chinese characters. [LINK-5.8]
 */
const utf8 = (maxBytes: number, description: string, minBytes = 0) =>
  Type.Refine(
    Type.String({ minLength: minBytes, maxLength: maxBytes, description: `${description}; at most ${maxBytes} bytes of UTF-8` }),
    (v: string) => Buffer.byteLength(v, 'utf8') <= maxBytes,
    () => `must be at most ${maxBytes} bytes of UTF-8`,
  )
const ident = (description: string) => Type.String({ minLength: 1, maxLength: 32, pattern: '^[A-Za-z0-9._:-]+$', description })

// ---------------------------------------------------------------------------------------
// Enumerations: name in JavaScript, integer on the wire.

/**
 * Event kinds. `code` is the Ademco Contact ID event code where one exists, so that
 * alarm-receiving software can read it; `restore` is Contact ID qualifier 3 (restore)
 * rather than 1 (new event). 901 is ours: Contact ID has no code for a call-back request.
 * [LINK-5.4]
 */
export const EVENT_KINDS = {
  medical: { code: 100, restore: false, contactId: true, text: 'medical emergency' },
  emergency: { code: 101, restore: false, contactId: true, text: 'personal emergency (the big button)' },
  fire: { code: 110, restore: false, contactId: true, text: 'fire' },
  panic: { code: 120, restore: false, contactId: true, text: 'panic (crime, threat)' },
  cancel: { code: 406, restore: false, contactId: true, text: 'cancel: the alarm before was a mistake or is over' },
  callback: { code: 901, restore: false, contactId: false, text: 'hotline call-back request (not an emergency)' },
  'mains-lost': { code: 301, restore: false, contactId: true, text: 'mains power lost (AC loss)' },
  'mains-restored': { code: 301, restore: true, contactId: true, text: 'mains power restored' },
  'battery-low': { code: 302, restore: false, contactId: true, text: 'low battery' },
  'battery-restored': { code: 302, restore: true, contactId: true, text: 'battery back above threshold' },
  tamper: { code: 383, restore: false, contactId: true, text: 'enclosure opened (tamper)' },
  'tamper-restored': { code: 383, restore: true, contactId: true, text: 'enclosure closed again' },
  test: { code: 602, restore: false, contactId: true, text: 'periodic test report' },
} as const

export type EventKind = keyof typeof EVENT_KINDS
export const EVENT_KIND_NAMES = Object.keys(EVENT_KINDS) as EventKind[]

/** Contact ID code of an event kind, or null where Contact ID has none. */
export function contactIdOf(kind: EventKind): number | null {
  const k = EVENT_KINDS[kind]
  return k.contactId ? k.code : null
}

export function eventKindFromWire(code: number, restore: boolean): EventKind | undefined {
  return EVENT_KIND_NAMES.find((n) => EVENT_KINDS[n].code === code && EVENT_KINDS[n].restore === restore)
}

/** Stages of an alert, as the terminal shows them (LEDs, buzzer, display). [LINK-5.7] */
export const STAGES = {
  stored: 1,
  sent: 2,
  received: 3,
  acknowledged: 4,
  dispatched: 5,
  resolved: 6,
  unconfirmed: 7,
} as const
export type Stage = keyof typeof STAGES

export const NAK_REASONS = {
  /** The receiver has no session with the sender: send HELLO and start again. */
  'no-session': 1,
  /** The receiver could not take the message now (e.g. its store is failing): retry later. */
  busy: 2,
  /** The message type is not one the receiver handles: do not retry it. */
  unsupported: 3,
  /** The body failed its schema: do not retry it. */
  invalid: 4,
} as const
export type NakReason = keyof typeof NAK_REASONS

export const URGENCIES = { info: 0, warning: 1, urgent: 2 } as const
export type Urgency = keyof typeof URGENCIES

/** Terminal capabilities, a bit mask on the wire. [LINK-5.3] */
export const CAPABILITIES = {
  display: 1 << 0,
  buzzer: 1 << 1,
  battery: 1 << 2,
  'mains-sense': 1 << 3,
  keys: 1 << 4,
  concentrator: 1 << 5,
  rtc: 1 << 6,
} as const
export type Capability = keyof typeof CAPABILITIES

/** A JSON Schema enum of the names of a table: `{ enum: ['stored', 'sent', ...] }`. */
const enumOf = <O extends Record<string, unknown>>(o: O) => Type.Enum(Object.keys(o) as (keyof O & string)[])

// ---------------------------------------------------------------------------------------
// Schemas of the JavaScript form. `type` is not on the wire: the frame's type byte carries it.

export const Ack = Type.Object({ type: Type.Literal('ACK') }, { additionalProperties: false })
export const Nak = Type.Object({ type: Type.Literal('NAK'), reason: enumOf(NAK_REASONS) }, { additionalProperties: false })

export const Hello = Type.Object(
  {
    type: Type.Literal('HELLO'),
    terminal: ident('terminal id, printed on the box'),
    firmware: Type.String({ minLength: 1, maxLength: 32, pattern: '^[\\x20-\\x7e]+$', description: 'firmware version, printable ASCII' }),
    capabilities: Type.Array(enumOf(CAPABILITIES), { uniqueItems: true, maxItems: 16 }),
    boot: u32({ description: 'boot counter, kept in non-volatile memory, +1 at every start' }),
    lastEvent: u32({ description: 'highest event number the terminal has assigned (0: none yet)' }),
    session: u16({ description: 'handshake number since boot (RAM only), +1 at each new handshake' }),
  },
  { additionalProperties: false },
)

export const Welcome = Type.Object(
  {
    type: Type.Literal('WELCOME'),
    gateway: ident('gateway id'),
    boot: u32({ description: "gateway's session counter, new at every gateway start" }),
    echo: Type.Optional(u32({ description: 'the boot counter of the HELLO answered; absent in an announcement' })),
    echoSession: Type.Optional(u16({ description: 'the session number of the HELLO answered; absent in an announcement' })),
  },
  { additionalProperties: false },
)

export const Event = Type.Object(
  {
    type: Type.Literal('EVENT'),
    // [LINK-5.5] The idempotency key of an alarm, for ever: (terminal id, number).
    number: u32({ minimum: 1, description: 'per-terminal event number, kept across power cuts, never reused' }),
    kind: enumOf(EVENT_KINDS),
    user: Type.Optional(Type.Integer({ minimum: 0, maximum: 999, description: 'Contact ID zone/user: key or neighbour household' })),
    boot: u32({ description: 'boot counter when the event happened' }),
    uptime: u32({ description: 'seconds since that boot when the event happened' }),
    time: Type.Optional(u32({ description: 'UNIX seconds, only if the terminal had been told the time' })),
  },
  { additionalProperties: false },
)

export const Heartbeat = Type.Object(
  {
    type: Type.Literal('HEARTBEAT'),
    uptime: u32({ description: 'seconds since boot' }),
    mains: Type.Boolean({ description: 'mains power present' }),
    battery: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'battery charge, percent' })),
    millivolts: Type.Optional(u16({ description: 'battery voltage, mV' })),
    signal: Type.Optional(Type.Integer({ minimum: -150, maximum: 0, description: 'radio signal, dBm (concentrators)' })),
    pending: Type.Optional(u16({ description: 'events stored in the terminal not yet acknowledged' })),
    temperature: Type.Optional(Type.Integer({ minimum: -60, maximum: 100, description: 'inside the box, degrees Celsius' })),
  },
  { additionalProperties: false },
)

export const DisplayRead = Type.Object(
  {
    type: Type.Literal('DISPLAY_READ'),
    id: u32({ description: 'id of the DISPLAY the user has read' }),
    revision: Type.Optional(u16({ description: 'the revision of the text read, as its DISPLAY said (absent: 0)' })),
  },
  { additionalProperties: false },
)

export const Indicate = Type.Object(
  {
    type: Type.Literal('INDICATE'),
    event: u32({ minimum: 1, description: 'the event number this stage belongs to' }),
    stage: enumOf(STAGES),
    text: Type.Optional(utf8(120, 'short text for a display, e.g. who acknowledged')),
    eta: Type.Optional(u16({ description: 'expected arrival of help, minutes from now' })),
  },
  { additionalProperties: false },
)

export const Display = Type.Refine(
  Type.Object(
    {
      type: Type.Literal('DISPLAY'),
      id: u32({ description: 'broadcast id; the terminal confirms it with DISPLAY_READ' }),
      text: utf8(180, 'the text', 1),
      urgency: enumOf(URGENCIES),
      expires: Type.Optional(u32({ description: 'UNIX seconds after which the text is stale' })),
      part: Type.Optional(Type.Integer({ minimum: 1, maximum: 15, description: 'part number of a long text' })),
      parts: Type.Optional(Type.Integer({ minimum: 1, maximum: 15, description: 'number of parts' })),
      revision: Type.Optional(u16({ description: 'the text under this id was replaced this many times (absent: 0); a higher one is shown again even if read' })),
    },
    { additionalProperties: false },
  ),
  // Parts come as a pair, numbered 1..parts. [LINK-5.8]
  (d) => (d.part === undefined) === (d.parts === undefined) && (d.part ?? 0) <= (d.parts ?? 0),
  () => 'part and parts must both be given, with part <= parts',
)

/** [LINK-5.9] The time, and settings, from the gateway. */
export const Time = Type.Object(
  {
    type: Type.Literal('TIME'),
    unix: u32({ description: 'UNIX seconds' }),
    estimate: Type.Boolean({ description: "true when the gateway's own clock is not synchronised" }),
  },
  { additionalProperties: false },
)

export const Config = Type.Object(
  {
    type: Type.Literal('CONFIG'),
    heartbeat: Type.Optional(Type.Integer({ minimum: 10, maximum: 86400, description: 'heartbeat interval, seconds' })),
    buzzer: Type.Optional(Type.Boolean({ description: 'buzzer enabled' })),
  },
  { additionalProperties: false },
)

/** Heartbeat interval until CONFIG says otherwise: a third of the gateway's default 30 s supervision. [LINK-5.6] */
export const DEFAULT_HEARTBEAT_S = 10

export const Ping = Type.Object({ type: Type.Literal('PING') }, { additionalProperties: false })

export type Ack = Static<typeof Ack>
export type Nak = Static<typeof Nak>
export type Hello = Static<typeof Hello>
export type Welcome = Static<typeof Welcome>
export type Event = Static<typeof Event>
export type Heartbeat = Static<typeof Heartbeat>
export type DisplayRead = Static<typeof DisplayRead>
export type Indicate = Static<typeof Indicate>
export type Display = Static<typeof Display>
export type Time = Static<typeof Time>
export type Config = Static<typeof Config>
export type Ping = Static<typeof Ping>

export type Message = Ack | Nak | Hello | Welcome | Event | Heartbeat | DisplayRead | Indicate | Display | Time | Config | Ping
export type MessageType = Message['type']
/** Messages that travel sequenced and acknowledged (type byte >= 0x20). [LINK-4.1] */
export type DataMessage = Event | Heartbeat | DisplayRead | Indicate | Display | Time | Config | Ping
export type TerminalMessage = Event | Heartbeat | DisplayRead
export type GatewayMessage = Indicate | Display | Time | Config | Ping

export type Direction = 'terminal-to-gateway' | 'gateway-to-terminal' | 'both'

export interface MessageDef {
  readonly type: MessageType
  readonly code: number
  readonly schema: object
  readonly direction: Direction
  /** JavaScript field name to CBOR map key. `kind` of EVENT is two wire fields, see below. */
  readonly keys: Readonly<Record<string, number>>
  readonly summary: string
}

/** The registry: type byte, schema, direction and CBOR keys of every message. [LINK-5.1] */
export const MESSAGES: readonly MessageDef[] = [
  { type: 'ACK', code: 0x01, schema: Ack, direction: 'both', keys: {}, summary: 'acknowledges the data frame whose seq is in the header; no body' },
  { type: 'NAK', code: 0x02, schema: Nak, direction: 'both', keys: { reason: 0 }, summary: 'refuses the data frame whose seq is in the header' },
  {
    type: 'HELLO',
    code: 0x10,
    schema: Hello,
    direction: 'terminal-to-gateway',
    keys: { terminal: 0, firmware: 1, capabilities: 2, boot: 3, lastEvent: 4, session: 5 },
    summary: 'terminal opens a session (after boot, or when told there is none)',
  },
  {
    type: 'WELCOME',
    code: 0x11,
    schema: Welcome,
    direction: 'gateway-to-terminal',
    keys: { gateway: 0, boot: 1, echo: 2, echoSession: 3 },
    summary: 'gateway answers a HELLO, or announces its own start (broadcast, no echo)',
  },
  {
    type: 'EVENT',
    code: 0x20,
    schema: Event,
    direction: 'terminal-to-gateway',
    keys: { number: 0, code: 1, restore: 2, user: 3, boot: 4, uptime: 5, time: 6 },
    summary: 'something happened at the terminal: a press, a trouble, a test',
  },
  {
    type: 'HEARTBEAT',
    code: 0x21,
    schema: Heartbeat,
    direction: 'terminal-to-gateway',
    keys: { uptime: 0, mains: 1, battery: 2, millivolts: 3, signal: 4, pending: 5, temperature: 6 },
    summary: 'periodic status, and the answer to PING',
  },
  { type: 'DISPLAY_READ', code: 0x22, schema: DisplayRead, direction: 'terminal-to-gateway', keys: { id: 0, revision: 1 }, summary: 'the user has read a DISPLAY text' },
  {
    type: 'INDICATE',
    code: 0x30,
    schema: Indicate,
    direction: 'gateway-to-terminal',
    keys: { event: 0, stage: 1, text: 2, eta: 3 },
    summary: 'the stage an alert has reached, for LEDs, buzzer and display',
  },
  {
    type: 'DISPLAY',
    code: 0x31,
    schema: Display,
    direction: 'gateway-to-terminal',
    keys: { id: 0, text: 1, urgency: 2, expires: 3, part: 4, parts: 5, revision: 6 },
    summary: 'a broadcast text to show until read, expired or withdrawn',
  },
  { type: 'TIME', code: 0x32, schema: Time, direction: 'gateway-to-terminal', keys: { unix: 0, estimate: 1 }, summary: 'the time, so that events can carry it' },
  { type: 'CONFIG', code: 0x33, schema: Config, direction: 'gateway-to-terminal', keys: { heartbeat: 0, buzzer: 1 }, summary: 'settings for the terminal' },
  { type: 'PING', code: 0x34, schema: Ping, direction: 'gateway-to-terminal', keys: {}, summary: 'asks for a HEARTBEAT now' },
]

export const MESSAGE_BY_TYPE: ReadonlyMap<MessageType, MessageDef> = new Map(MESSAGES.map((m) => [m.type, m]))
export const MESSAGE_BY_CODE: ReadonlyMap<number, MessageDef> = new Map(MESSAGES.map((m) => [m.code, m]))

/** Type bytes from 0x20 up carry a sequence number and are acknowledged. [LINK-4.1] */
export const FIRST_DATA_CODE = 0x20

export function isDataMessage(m: Message): m is DataMessage {
  return MESSAGE_BY_TYPE.get(m.type)!.code >= FIRST_DATA_CODE
}
