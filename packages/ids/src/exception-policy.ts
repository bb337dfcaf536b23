/**
 * Exception policies, as Suricata's (7.0+, "Exception Policies" in its user guide; the rules below are its
 * util-exception-policy.c's): what the engine does when it reaches a state where it would lose sight of
 * traffic, fail open (go on, or pass) or fail closed (drop).
 *
 * The exceptions here:
 * - `reassemblyMemcap`: a TCP segment does not fit the reassembly memcap (`reassemblyMemcapBytes`;
 *   Suricata's stream.reassembly.memcap-policy). Packet or flow.
 * - `midstream`: a TCP flow whose first packet is not a SYN (a SYN/ACK, or data with an ACK), picked up
 *   midstream (Suricata's stream.midstream-policy). Flow only.
 * - `appLayerError`: an HTTP direction stops on input it cannot parse (a bad start line, a header section
 *   over its bound, a request's bad Content-Length or Transfer-Encoding, a bad chunk size), a TLS
 *   direction on a record header that is not TLS's after valid records, a DCE/RPC-over-TCP direction on a
 *   PDU header that is not DCE/RPC's after PDUs, an SMB connection's NetBIOS framing breaking after session
 *   messages or a followed pipe's DCE/RPC stopping so, a SIP-over-TCP direction stopping on what it cannot
 *   parse after a message (Suricata's app-layer.error-policy). Packet or flow.
 * - `defragMemcap`: a fragment does not fit the defragmenter's memory (`DefragOptions.bytesMax`; Suricata's
 *   defrag.memcap-policy). Packet only.
 * Suricata's flow.memcap and stream.memcap have no counterpart: the flow table always makes room by
 * evicting its least recently seen flow, and sessions take no memory apart from the flow table's.
 */

/** The values of an exception policy (Suricata's). */
export const exceptionPolicies = [
  'ignore',
  'auto',
  'drop-packet',
  'drop-flow',
  'reject',
  'bypass',
  'pass-packet',
  'pass-flow',
] as const;
export type ExceptionPolicy = (typeof exceptionPolicies)[number];

export const exceptionKinds = ['reassemblyMemcap', 'midstream', 'appLayerError', 'defragMemcap'] as const;
export type ExceptionKind = (typeof exceptionKinds)[number];

/**
 * `EngineOptions.exceptionPolicy`: `all` is Suricata's master switch (`exception-policy`), the others set
 * one exception each and win over it. Nothing given: every exception is ignored (Suricata 7's built-in
 * default in IPS mode is drop-flow; here the default keeps what the engine did before the policies).
 */
export type ExceptionPolicyOptions = { all?: ExceptionPolicy } & { [K in ExceptionKind]?: ExceptionPolicy };

/**
 * What the engine does at an exception, resolved for its mode: nothing; the packet not inspected further
 * (`pass-packet`) or also dropped (`drop-packet`); the flow not inspected any more (`pass-flow`: Suricata's
 * pass-flow and bypass, as the engine logs no app-layer traffic either way) or also dropped with the
 * packet (`drop-flow`), and a reject sent to the packet's sender (`reject`).
 */
export type AppliedPolicy = 'ignore' | 'pass-packet' | 'drop-packet' | 'pass-flow' | 'drop-flow' | 'reject';

export type ResolvedPolicies = Record<ExceptionKind, AppliedPolicy>;

/** Exceptions whose policy can only act on the packet (Suricata: flow.memcap, defrag.memcap). */
const packetOnly: ReadonlySet<ExceptionKind> = new Set(['defragMemcap']);

function checkValue(v: unknown, name: string): ExceptionPolicy {
  if (typeof v !== 'string' || !(exceptionPolicies as readonly string[]).includes(v))
    throw new RangeError(
      `exceptionPolicy.${name}: one of ${exceptionPolicies.join(', ')}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`,
    );
  return v as ExceptionPolicy;
}

/**
 * The policy each exception gets in an engine of mode `ips`, with `midstream` pick-up on or off, by
 * Suricata's rules: the master switch counts in IPS mode only; `auto` is drop-flow in IPS mode (drop-packet
 * where only the packet can be acted on; ignore for midstream when midstream pick-up is on) and ignore in
 * IDS mode; a flow policy given to a packet-only exception becomes its packet form (drop-flow drop-packet,
 * pass-flow pass-packet, bypass ignore); the midstream policy takes no packet policy, only pass-flow or
 * ignore when midstream pick-up is on, and not drop-flow in IDS mode (each a RangeError, as Suricata
 * refuses to start). Without IPS nothing is dropped: a drop or reject policy only stops inspection.
 */
export function resolveExceptionPolicies(
  opts: ExceptionPolicyOptions | undefined,
  ips: boolean,
  midstream: boolean,
): ResolvedPolicies {
  if (opts !== undefined && (typeof opts !== 'object' || opts === null))
    throw new TypeError(`exceptionPolicy: an object of policies by exception, got ${String(opts)}`);
  for (const k of Object.keys(opts ?? {}))
    if (k !== 'all' && !(exceptionKinds as readonly string[]).includes(k))
      throw new RangeError(`exceptionPolicy: no exception named ${k} (all, ${exceptionKinds.join(', ')})`);
  const all = opts?.all === undefined ? undefined : checkValue(opts.all, 'all');
  const out = {} as ResolvedPolicies;
  for (const kind of exceptionKinds) {
    const given = opts?.[kind] === undefined ? undefined : checkValue(opts[kind], kind);
    let p: ExceptionPolicy = given ?? (ips && all !== undefined ? all : 'ignore');
    if (kind === 'midstream' && given !== undefined) {
      if (p === 'drop-packet' || p === 'pass-packet')
        throw new RangeError(
          `exceptionPolicy.midstream: ${p} is not a midstream policy (it acts on the flow)`,
        );
      if (midstream && p !== 'ignore' && p !== 'pass-flow')
        throw new RangeError(
          `exceptionPolicy.midstream: with midstream pick-up on, only pass-flow or ignore, got ${p}`,
        );
      if (!ips && p === 'drop-flow')
        throw new RangeError('exceptionPolicy.midstream: drop-flow needs IPS mode');
    }
    if (p === 'auto') p = !ips || (kind === 'midstream' && midstream) ? 'ignore' : 'drop-flow';
    // the master switch on midstream pick-ups: a packet policy does not apply (a flow's), nor, when they
    // are accepted, anything but pass-flow
    if (kind === 'midstream' && given === undefined)
      if (p === 'drop-packet' || p === 'pass-packet' || (midstream && p !== 'pass-flow')) p = 'ignore';
    if (packetOnly.has(kind) && p === 'bypass') p = 'ignore'; // a flow's bypass has no packet form
    const a = applied(p, ips);
    // where only the packet can be acted on, a flow policy acts on the packet alone (Suricata's
    // PickPacketAction; a reject without IPS, which stops inspection, too)
    out[kind] = !packetOnly.has(kind)
      ? a
      : a === 'drop-flow'
        ? 'drop-packet'
        : a === 'pass-flow'
          ? 'pass-packet'
          : a;
  }
  return out;
}

function applied(p: ExceptionPolicy, ips: boolean): AppliedPolicy {
  switch (p) {
    case 'ignore':
    case 'auto':
      return 'ignore';
    case 'bypass':
    case 'pass-flow':
      return 'pass-flow';
    case 'pass-packet':
      return 'pass-packet';
    case 'drop-packet':
      return ips ? 'drop-packet' : 'pass-packet';
    case 'drop-flow':
      return ips ? 'drop-flow' : 'pass-flow';
    case 'reject':
      return ips ? 'reject' : 'pass-flow';
  }
}

/**
 * `--exception-policy` values: `POLICY` (the master switch) or `EXCEPTION=POLICY`, where EXCEPTION is
 * reassembly-memcap, midstream, app-layer-error or defrag-memcap (Suricata's names, or the option's).
 */
export function parseExceptionPolicyArgs(args: readonly string[]): ExceptionPolicyOptions {
  const out: ExceptionPolicyOptions = {};
  // (a Map: a name such as `constructor` must not find what an object inherits)
  const names = new Map<string, ExceptionKind>([
    ['reassembly-memcap', 'reassemblyMemcap'],
    ['reassemblyMemcap', 'reassemblyMemcap'],
    ['midstream', 'midstream'],
    ['app-layer-error', 'appLayerError'],
    ['appLayerError', 'appLayerError'],
    ['defrag-memcap', 'defragMemcap'],
    ['defragMemcap', 'defragMemcap'],
  ]);
  for (const a of args) {
    const eq = a.indexOf('=');
    const name = eq < 0 ? undefined : a.slice(0, eq);
    const value = eq < 0 ? a : a.slice(eq + 1);
    const kind = name === undefined ? 'all' : names.get(name);
    if (kind === undefined)
      throw new RangeError(
        `--exception-policy ${a}: no exception named ${name} (reassembly-memcap, midstream, app-layer-error, defrag-memcap)`,
      );
    if (!(exceptionPolicies as readonly string[]).includes(value))
      throw new RangeError(
        `--exception-policy ${a}: ${value} is not a policy (${exceptionPolicies.join(', ')})`,
      );
    out[kind] = value as ExceptionPolicy;
  }
  return out;
}
