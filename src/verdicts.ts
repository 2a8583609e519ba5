// The one verdict table of weft, shared by C and TypeScript: why a packet was dropped. C lists the same names in the
// same order (WEFT_DROPS in native/weft.h) and src/native.ts refuses to load an addon whose list differs. Reason r
// has verdict -(r + 1), stored in place of a length or a peer index, and counter `drop_<name>`. TypeScript encaps
// return these verdicts from decode, so the forwarder counts them with no translation. Reasons are about the packet,
// not about one IP version; new ones go at the end so existing verdicts keep their values.
export const DROP_NAMES = [
  'malformed',
  'truncated',
  'ttl_exceeded',
  'bad_flags',
  'bad_vni',
  'bad_ethertype',
  'bad_version',
  'geneve_critical',
  'send_error',
  'tun_write_error',
  'no_route',
  'unknown_peer',
  'spoofed_source',
  'no_slot',
  'too_big',
  'bad_csum',
  // A packet weft does not take apart, e.g. an IPv6 GSO super-packet with extension headers (native/gso.c).
  'unsupported',
] as const;
export type DropName = (typeof DROP_NAMES)[number];

/** Negative verdict of a drop reason. */
export function verdictOf(reason: DropName): number {
  return -DROP_NAMES.indexOf(reason) - 1;
}

/** The drop reason of a negative verdict (undefined for a value that is not one). */
export function dropReasonOf(verdict: number): DropName | undefined {
  return verdict < 0 ? DROP_NAMES[-verdict - 1] : undefined;
}

export const Verdict = {
  malformed: verdictOf('malformed'),
  truncated: verdictOf('truncated'),
  ttlExceeded: verdictOf('ttl_exceeded'),
  badFlags: verdictOf('bad_flags'),
  badVni: verdictOf('bad_vni'),
  badEthertype: verdictOf('bad_ethertype'),
  badVersion: verdictOf('bad_version'),
  geneveCritical: verdictOf('geneve_critical'),
  sendError: verdictOf('send_error'),
  tunWriteError: verdictOf('tun_write_error'),
  noRoute: verdictOf('no_route'),
  unknownPeer: verdictOf('unknown_peer'),
  spoofedSource: verdictOf('spoofed_source'),
  noSlot: verdictOf('no_slot'),
  tooBig: verdictOf('too_big'),
  badCsum: verdictOf('bad_csum'),
  unsupported: verdictOf('unsupported'),
} as const;
