/**
 * SSL/TLS record tracking for the `ssl_state` and `ssl_version` rule options, as Snort's SSL inspector
 * offers them: each direction of a TCP session is followed through its reassembled bytes, record by record
 * (TLS/SSLv3, RFC 5246 6.2: type, version, 16-bit length; and the SSLv2 two-byte record header of an
 * SSLv2 or SSLv2-compatible ClientHello), and the handshake messages inside the handshake records (RFC 5246
 * 7.4: type, 24-bit length), however they are split across records and deliveries.
 *
 * - `ssl_state` tests the handshake messages seen in the bytes of the current delivery (what Snort calls
 *   the current state): client_hello, server_hello, client_keyx (ClientKeyExchange; SSLv2 CLIENT-MASTER-KEY),
 *   server_keyx (ServerKeyExchange), unknown (a record that is not SSL/TLS; the direction is then left).
 * - `ssl_version` tests the versions seen on the session so far, either direction: each TLS record's
 *   version, and an SSLv2 ClientHello's (0x0002 sslv2; 0x0300 sslv3; 0x0301-0x0303 tls1.0-1.2).
 *
 * After a direction's ChangeCipherSpec its handshake records are encrypted and not interpreted. A gap in
 * the stream loses the record boundaries: the direction is left (no state from it any more).
 */

export const tlsStates = {
  client_hello: 1,
  server_hello: 2,
  client_keyx: 4,
  server_keyx: 8,
  unknown: 16,
} as const;

export const tlsVersions = {
  sslv2: 1,
  sslv3: 2,
  'tls1.0': 4,
  'tls1.1': 8,
  'tls1.2': 16,
} as const;

/** `ssl_state` / `ssl_version`: the flags listed and those negated (`!`); see `tlsTest`. */
export interface TlsTest {
  kind: 'ssl_state' | 'ssl_version';
  flags: number;
  negated: number;
}

/**
 * Parses `client_hello,!server_keyx` (Snort 2 and 3: a comma list, each item may be negated; Snort 3's
 * `|` separator is accepted too).
 */
export function parseTlsTest(kind: 'ssl_state' | 'ssl_version', value: string): TlsTest {
  const names: Record<string, number> = kind === 'ssl_state' ? tlsStates : tlsVersions;
  const t: TlsTest = { kind, flags: 0, negated: 0 };
  for (const raw of value.split(/[,|]/)) {
    const item = raw.trim();
    const neg = item.startsWith('!');
    const name = (neg ? item.slice(1) : item).trim().toLowerCase();
    const f = names[name];
    if (f === undefined)
      throw new Error(
        `${kind}: unknown ${kind === 'ssl_state' ? 'state' : 'version'} '${item}' (expected ${Object.keys(names).join(', ')})`,
      );
    t.flags |= f;
    if (neg) t.negated |= f;
  }
  if (t.flags === 0)
    throw new Error(`${kind} needs at least one ${kind === 'ssl_state' ? 'state' : 'version'}`);
  return t;
}

/** Snort's test: some listed flag present that is not negated, or some negated flag absent. */
export function tlsTest(t: TlsTest, have: number): boolean {
  return ((have & t.flags) ^ t.negated) !== 0;
}

const recordHeaderBytes = 5;

/** One direction of a session. */
export class TlsDirection {
  /** Handshake messages seen in the last `feed`. */
  current = 0;
  /** Left: not SSL/TLS, a gap, or nothing more to learn. */
  private stopped = false;
  /**
   * Times the direction stopped on a record header that is not TLS's after valid records (an app-layer
   * error, which the engine's exception policy acts on; bytes that are not TLS from the first record on
   * are another protocol, not an error).
   */
  errors = 0;
  private encrypted = false;
  private first = true;
  /** The record header being read (up to 5 bytes), then the bytes of the record body still to come. */
  private readonly hdr = new Uint8Array(recordHeaderBytes);
  private hdrLen = 0;
  private bodyLeft = 0;
  private bodyType = 0;
  /** The handshake message header being read (4 bytes), then the message bytes still to skip. */
  private readonly msg = new Uint8Array(4);
  private msgLen = 0;
  private msgLeft = 0;

  /**
   * Follows `data` (the next bytes of this direction) and returns the versions it saw; `current` holds the
   * handshake states of these bytes.
   */
  feed(data: Uint8Array): number {
    this.current = 0;
    let versions = 0;
    let i = 0;
    while (i < data.length && !this.stopped) {
      if (this.bodyLeft === 0) {
        // an SSLv2 record can only open the stream (an SSLv2 or v2-compatible ClientHello)
        if (this.first && this.hdrLen === 0 && (data[i]! & 0x80) !== 0) {
          // judged on the first delivery: a real ClientHello comes whole, and waiting would be unbounded
          if (data.length - i < 5) {
            this.stop();
            break;
          }
          versions |= this.sslv2(data, i);
          continue;
        }
        // (byte by byte: at most 5, where a view to copy from costs more than the copy)
        const take = Math.min(recordHeaderBytes - this.hdrLen, data.length - i);
        for (let k = 0; k < take; k++) this.hdr[this.hdrLen + k] = data[i + k]!;
        this.hdrLen += take;
        i += take;
        if (this.hdrLen < recordHeaderBytes) break;
        this.hdrLen = 0;
        const after = !this.first;
        this.first = false;
        const type = this.hdr[0]!;
        const major = this.hdr[1]!;
        const minor = this.hdr[2]!;
        const len = (this.hdr[3]! << 8) | this.hdr[4]!;
        // change_cipher_spec 20, alert 21, handshake 22, application_data 23, heartbeat 24
        if (type < 20 || type > 24 || major !== 3 || minor > 4 || len > 18_432) {
          if (after) this.errors++;
          this.stop();
          break;
        }
        versions |= versionFlag(major, minor);
        this.bodyType = type;
        this.bodyLeft = len;
        if (type === 20) this.encrypted = true;
        continue;
      }
      const n = Math.min(this.bodyLeft, data.length - i);
      if (this.bodyType === 22 && !this.encrypted) this.handshake(data, i, i + n);
      this.bodyLeft -= n;
      i += n;
    }
    return versions;
  }

  /** A gap: the record boundaries are lost. */
  lose(): void {
    this.stopped = true;
    this.current = 0;
  }

  private stop(): void {
    this.stopped = true;
    this.current |= tlsStates.unknown;
  }

  /** Handshake message headers in handshake record bytes `data[from..to)`. */
  private handshake(data: Uint8Array, from: number, to: number): void {
    let i = from;
    while (i < to) {
      if (this.msgLeft > 0) {
        const n = Math.min(this.msgLeft, to - i);
        this.msgLeft -= n;
        i += n;
        continue;
      }
      this.msg[this.msgLen++] = data[i++]!;
      if (this.msgLen < 4) continue;
      this.msgLen = 0;
      const type = this.msg[0]!;
      this.msgLeft = (this.msg[1]! << 16) | (this.msg[2]! << 8) | this.msg[3]!;
      if (type === 1) this.current |= tlsStates.client_hello;
      else if (type === 2) this.current |= tlsStates.server_hello;
      else if (type === 16) this.current |= tlsStates.client_keyx;
      else if (type === 12) this.current |= tlsStates.server_keyx;
    }
  }

  /** An SSLv2 record at `data[i]` (two-byte header): its message type and, for a ClientHello, the version. */
  private sslv2(data: Uint8Array, i: number): number {
    const len = ((data[i]! & 0x7f) << 8) | data[i + 1]!;
    const type = data[i + 2]!;
    const major = data[i + 3]!;
    const minor = data[i + 4]!;
    this.first = false;
    // the record is skipped as a body; a v3-compatible hello is followed by TLS records, SSLv2 by its own
    // (not followed here: the direction is left after this one)
    this.bodyType = 0;
    this.bodyLeft = 2 + len;
    const v2 = major === 0 && minor === 2;
    if (len < 3) {
      this.stop();
      return 0;
    }
    // CLIENT-HELLO 1 (its version next), CLIENT-MASTER-KEY 2, SERVER-HELLO 4
    let versions: number = tlsVersions.sslv2;
    if (type === 1) {
      this.current |= tlsStates.client_hello;
      versions = v2 ? tlsVersions.sslv2 : versionFlag(major, minor);
      if (v2) this.stopped = true;
    } else if (type === 2) {
      this.current |= tlsStates.client_keyx;
      this.stopped = true;
    } else if (type === 4) {
      this.current |= tlsStates.server_hello;
      this.stopped = true;
    } else {
      this.stop();
      return 0;
    }
    return versions;
  }
}

function versionFlag(major: number, minor: number): number {
  if (major === 0 && minor === 2) return tlsVersions.sslv2;
  if (major !== 3) return 0;
  return minor === 0
    ? tlsVersions.sslv3
    : minor === 1
      ? tlsVersions['tls1.0']
      : minor === 2
        ? tlsVersions['tls1.1']
        : minor === 3
          ? tlsVersions['tls1.2']
          : 0;
}

/** Both directions of a session and the versions seen on it. */
export class TlsSession {
  readonly dirs: [TlsDirection, TlsDirection] = [new TlsDirection(), new TlsDirection()];
  versions = 0;

  /** Feeds direction `dir`'s next bytes; the state flags of these bytes are `dirs[dir].current`. */
  feed(dir: 0 | 1, data: Uint8Array, gap: boolean): void {
    const d = this.dirs[dir];
    if (gap) d.lose();
    else this.versions |= d.feed(data);
  }
}
