/**
 * The two ends of the serial link: {@link TerminalLink} (the firmware's logic) and
 * {@link GatewayLink} (the gateway's side, any number of terminals on one line). What
 * callers import; the parts, one concern each:
 *
 * - link-types.ts     the interface's words: LinkEvent, LinkOptions, SendOptions, LinkCounter, PeerStatus
 * - link-end.ts       what both ends share (sans-I/O: bytes in, events out, time told)
 * - link-peer.ts      what an end knows of one peer: session, send queue, frame in flight
 * - terminal-link.ts  TerminalLink: HELLO until a WELCOME echoes it [LINK-7.1]
 * - gateway-link.ts   GatewayLink: a session per terminal address [LINK-7.2]
 */

export type { LinkCounter, LinkEvent, LinkOptions, PeerStatus, SendOptions } from './link-types.js'
export { TerminalLink, type TerminalLinkOptions } from './terminal-link.js'
export { GatewayLink, type GatewayLinkOptions } from './gateway-link.js'
