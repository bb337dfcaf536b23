/**
 * Mail on reassembled TCP streams: SMTP (RFC 5321: DATA with dot-stuffing, BDAT of RFC 3030), POP3
 * (RFC 1939: RETR and TOP responses) and IMAP (RFC 9051: literals of FETCH responses and APPEND commands),
 * one session per TCP flow, fed both directions' bytes as the stream rules get them. Each mail message
 * found is handed on whole (`MailEvents.message`) for MIME decoding (`mime.ts`).
 *
 * Protocol detection from the first lines: a client whose first command is HELO, EHLO or LHLO speaks
 * SMTP; a server whose greeting is `+OK` POP3, `* OK` or `* PREAUTH` IMAP; anything else is left alone.
 * After an accepted STARTTLS / STLS the session is encrypted and parsing stops. SMTP replies are paired
 * with commands in order (RFC 5321 4.2); a DATA is taken to be accepted (a one-sided capture has no
 * replies) and a refusal takes back the message begun on it.
 *
 * Bounds: a command or response line is read up to `mailLineBytesMax` (the rest of it is skipped,
 * anomaly); a message keeps its first `messageBytesMax` bytes (the framing is followed past them, anomaly),
 * charged to the reassembly budget (a refusal is a `memcap` anomaly and the message is not kept); at most
 * `commandsPendingMax` SMTP or POP3 commands wait for their replies. A gap in a direction's stream ends that
 * direction's parsing (where a message ends can no longer be known); what it had is handed on. Nothing
 * here throws on input.
 */
import type { HttpBudget } from './http.js';

export type MailProtocol = 'smtp' | 'pop3' | 'imap';

/** Bytes of one command or response line read at most. */
export const mailLineBytesMax = 4096;
/** SMTP and POP3 commands awaiting their replies at most (the oldest is forgotten beyond, anomaly). */
export const commandsPendingMax = 32;
/** Bytes of one mail message kept for MIME decoding by default. */
export const defaultMailMessageBytesMax = 1024 * 1024;

export interface MailOptions {
  /** Bytes of each message kept (default 1 MiB; the rest is skipped, the framing still followed). */
  messageBytesMax?: number;
}

export interface MailAnomalies {
  lineTooLong: number;
  messageCapped: number;
  /** Stream bytes missing in a direction: its parsing ends. */
  gap: number;
  memcap: number;
  pendingOverflow: number;
  /** SMTP DATA refused by the server (the bytes after it were commands, not a message: dropped). */
  dataRefused: number;
}

export function newMailAnomalies(): MailAnomalies {
  return { lineTooLong: 0, messageCapped: 0, gap: 0, memcap: 0, pendingOverflow: 0, dataRefused: 0 };
}

export interface MailMessage {
  protocol: MailProtocol;
  /** 0: sent by the client (SMTP DATA/BDAT, IMAP APPEND); 1: by the server (POP3 RETR/TOP, IMAP FETCH). */
  dir: 0 | 1;
  /** The message as transferred (dot-stuffing undone), its first `messageBytesMax` bytes. */
  raw: Uint8Array;
  /** Message bytes seen, kept or not. */
  bytes: number;
  truncated: boolean;
  /** The message ended before its end marker (the flow ended or a gap). */
  cut: boolean;
}

export interface MailEvents {
  message(m: MailMessage): void;
}

const CR = 13;
const LF = 10;
const DOT = 0x2e;

type Mode = 'line' | 'dot' | 'count' | 'dead';
/** Where a dot-terminated body is: at a line's start, after a leading dot, after `.\r`, mid-line. */
type DotState = 0 | 1 | 2 | 3;

/** One direction of a mail session. */
class Side {
  mode: Mode = 'line';
  /** The line being read: grown on demand up to `mailLineBytesMax` (most flows never get past a line). */
  line = new Uint8Array(0);
  lineLen = 0;
  lineOver = false;
  dot: DotState = 0;
  /** Bytes left of a BDAT chunk or an IMAP literal. */
  count = 0;
  /** Whether the current body is a message (kept) or only skipped (a POP3 LIST listing...). */
  collecting = false;
  /** BDAT ... LAST: the message ends with this chunk. */
  lastChunk = false;
  lines = 0;
  msg: Uint8Array | undefined;
  msgLen = 0;
  msgBytes = 0;
  msgTruncated = false;
  msgOpen = false;
}

export class MailSession {
  protocol: MailProtocol | 'none' | undefined;
  private readonly sides: [Side, Side] = [new Side(), new Side()];
  /** Commands sent and not yet answered, in order (SMTP and POP3 answer in order). */
  private readonly pending: string[] = [];
  /** SMTP: the server's greeting has been seen (the first reply answers no command). */
  private greeted = false;
  private readonly messageBytesMax: number;
  /** Budget taken for the messages being collected. */
  private held = 0;

  constructor(
    private readonly events: MailEvents,
    private readonly anomalies: MailAnomalies,
    private readonly budget: HttpBudget,
    opts: MailOptions = {},
  ) {
    this.messageBytesMax = opts.messageBytesMax ?? defaultMailMessageBytesMax;
  }

  /** Whether `dir` is still parsed (false once the protocol is not mail, after STARTTLS or a gap). */
  active(dir: 0 | 1): boolean {
    return this.protocol !== 'none' && this.sides[dir].mode !== 'dead';
  }

  push(dir: 0 | 1, data: Uint8Array): void {
    const s = this.sides[dir];
    let i = 0;
    while (i < data.length && this.active(dir)) {
      switch (s.mode) {
        case 'line':
          i = this.readLine(dir, s, data, i);
          break;
        case 'dot':
          i = this.readDot(dir, s, data, i);
          break;
        case 'count': {
          const n = Math.min(s.count, data.length - i);
          if (s.collecting) this.keep(s, data.subarray(i, i + n));
          s.count -= n;
          i += n;
          if (s.count === 0) {
            s.mode = 'line';
            if (s.collecting && (this.protocol !== 'smtp' || s.lastChunk)) this.deliver(dir, false);
          }
          break;
        }
        case 'dead':
          return;
      }
    }
  }

  /** Bytes missing in `dir`'s stream: that direction stops; a message under way is handed on as cut. */
  gap(dir: 0 | 1): void {
    const s = this.sides[dir];
    if (!this.active(dir)) return;
    this.anomalies.gap++;
    if (s.msgOpen) this.deliver(dir, true);
    s.mode = 'dead';
  }

  /** The connection is over: messages under way are handed on as they are. */
  end(): void {
    for (const dir of [0, 1] as const) if (this.sides[dir].msgOpen) this.deliver(dir, true);
  }

  /** Gives every byte held back to the budget. */
  dispose(): void {
    for (const s of this.sides) {
      s.msg = undefined;
      s.msgOpen = false;
      s.mode = 'dead';
    }
    this.budget.give(this.held);
    this.held = 0;
  }

  private readLine(dir: 0 | 1, s: Side, data: Uint8Array, i: number): number {
    const lf = data.indexOf(LF, i);
    if (lf >= 0 && s.lineLen === 0 && lf - i <= mailLineBytesMax) {
      // a whole line in this data, none begun before it: read where it lies (no line buffer made, as
      // most flows, never mail, would make one for their first lines)
      const len = lf > i && data[lf - 1] === CR ? lf - 1 - i : lf - i;
      s.lines++;
      this.onLine(dir, s, Buffer.from(data.buffer, data.byteOffset + i, len).toString('latin1'));
      return lf + 1;
    }
    const end = lf < 0 ? data.length : lf;
    const n = Math.min(end - i, mailLineBytesMax - s.lineLen);
    if (s.lineLen + n > s.line.length) {
      const grown = new Uint8Array(Math.min(mailLineBytesMax, Math.max(128, 2 * (s.lineLen + n))));
      grown.set(s.line.subarray(0, s.lineLen));
      s.line = grown;
    }
    if (n > 0) s.line.set(data.subarray(i, i + n), s.lineLen);
    s.lineLen += n;
    if (end - i > n && !s.lineOver) {
      s.lineOver = true;
      this.anomalies.lineTooLong++;
    }
    if (lf < 0) return data.length;
    let len = s.lineLen;
    if (len > 0 && s.line[len - 1] === CR) len--;
    const text = Buffer.from(s.line.buffer, 0, len).toString('latin1');
    s.lineLen = 0;
    s.lineOver = false;
    s.lines++;
    this.onLine(dir, s, text);
    return lf + 1;
  }

  private onLine(dir: 0 | 1, s: Side, line: string): void {
    if (this.protocol === undefined) {
      if (dir === 0 && s.lines === 1 && /^(HELO|EHLO|LHLO)\b/i.test(line)) this.protocol = 'smtp';
      else if (dir === 1 && s.lines === 1 && line.startsWith('+OK')) this.protocol = 'pop3';
      else if (dir === 1 && s.lines === 1 && /^\* (OK|PREAUTH)\b/i.test(line)) this.protocol = 'imap';
      if (this.protocol === undefined) {
        // a POP3 client may speak before the greeting is seen; anything else decides nothing yet
        if (dir === 0) this.command(line);
        else if (/^\d{3} /.test(line)) this.greeted = true;
        // both sides have spoken, or one side keeps talking alone: not mail
        if ((this.sides[0].lines >= 1 && this.sides[1].lines >= 1) || s.lines >= 4) {
          this.protocol = 'none';
          for (const x of this.sides) x.line = new Uint8Array(0);
        }
        return;
      }
      if (dir === 1 || this.protocol !== 'smtp') return; // the greeting itself
    }
    if (this.protocol === 'smtp') {
      if (dir === 1) {
        this.smtpReply(line);
        return;
      }
      const cmd = /^(\S+)(?:\s+(\d+)(\s+LAST)?)?/i.exec(line);
      const verb = cmd?.[1]?.toUpperCase();
      this.command(line);
      // DATA is taken to be accepted (a one-sided capture has no replies); a refusal takes it back
      if (verb === 'DATA') this.begin(s, 'dot');
      else if (verb === 'BDAT' && cmd?.[2] !== undefined) {
        if (!s.msgOpen) this.open(s);
        s.mode = 'count';
        s.collecting = true;
        s.count = Number(cmd[2]);
        s.lastChunk = cmd[3] !== undefined;
        if (s.count === 0) {
          s.mode = 'line';
          if (s.lastChunk) this.deliver(dir, false);
        }
      }
    } else if (this.protocol === 'pop3') {
      if (dir === 0) {
        this.command(line);
        return;
      }
      const cmd = this.pending.shift();
      if (cmd === undefined || !line.startsWith('+OK')) return;
      if (cmd === 'RETR' || cmd === 'TOP') this.begin(s, 'dot');
      else if (cmd === 'LIST' || cmd === 'UIDL' || cmd === 'CAPA') {
        s.mode = 'dot';
        s.dot = 0;
        s.collecting = false;
      } else if (cmd === 'STLS') this.stop();
    } else if (this.protocol === 'imap') {
      if (dir === 0 && /^\S+\s+STARTTLS\b/i.test(line)) {
        this.stop();
        return;
      }
      const lit = /\{(\d{1,10})\+?\}$/.exec(line);
      if (!lit) return;
      s.mode = 'count';
      s.count = Number(lit[1]);
      s.collecting =
        dir === 0 ? /\bAPPEND\b/i.test(line) : /\bFETCH\b/i.test(line) && /(BODY|RFC822|BINARY)/i.test(line);
      if (s.collecting) this.open(s);
      if (s.count === 0) {
        s.mode = 'line';
        if (s.collecting) this.deliver(dir, false);
      }
    }
  }

  /** Queues a command's verb for its reply (with `!` when it has an argument: POP3 LIST 1 answers on one line). */
  private command(line: string): void {
    const m = /^(\S+)(\s+\S)?/.exec(line);
    if (!m) return;
    const verb = m[1]!.toUpperCase();
    if (this.pending.length >= commandsPendingMax) {
      this.pending.shift();
      this.anomalies.pendingOverflow++;
    }
    this.pending.push((verb === 'LIST' || verb === 'UIDL') && m[2] ? `${verb}!` : verb);
  }

  /**
   * An SMTP reply line (RFC 5321 4.2: `ddd-` continues, `ddd ` ends a reply). The first reply is the
   * greeting; each later one answers the oldest command: a DATA refused (not 354) drops the message begun
   * on it, a STARTTLS accepted (2xx) ends parsing (TLS follows).
   */
  private smtpReply(line: string): void {
    const m = /^((\d)\d\d)(?: |$)/.exec(line);
    if (!m) return; // a continuation line or not a reply
    if (!this.greeted) {
      this.greeted = true;
      // a capture that starts after the greeting: this reply answers the first command
      if (m[1] === '220' || m[1] === '554' || this.pending.length === 0) return;
    }
    const verb = this.pending.shift();
    const c = this.sides[0];
    // only a 4xx or 5xx is a refusal (a 2xx to DATA does not exist: the pairing is off, DATA stands)
    if (verb === 'DATA' && (m[2] === '4' || m[2] === '5') && c.mode === 'dot' && c.msgOpen) {
      this.anomalies.dataRefused++;
      this.drop(c);
      c.mode = 'line';
      c.dot = 0;
    } else if (verb === 'STARTTLS' && m[1] === '220') this.stop();
  }

  private stop(): void {
    this.end();
    this.sides[0].mode = 'dead';
    this.sides[1].mode = 'dead';
  }

  private begin(s: Side, mode: 'dot'): void {
    s.mode = mode;
    s.dot = 0;
    s.collecting = true;
    this.open(s);
  }

  private open(s: Side): void {
    s.msgOpen = true;
    s.msgLen = 0;
    s.msgBytes = 0;
    s.msgTruncated = false;
  }

  /** A dot-terminated body (RFC 5321 4.5.2, RFC 1939 3): a line `.` ends it, a leading dot is removed. */
  private readDot(dir: 0 | 1, s: Side, data: Uint8Array, i: number): number {
    while (i < data.length) {
      const c = data[i]!;
      switch (s.dot) {
        case 0:
          if (c === DOT) {
            s.dot = 1;
            i++;
          } else s.dot = 3;
          break;
        case 1:
          if (c === LF) return this.dotEnd(dir, s, i + 1);
          if (c === CR) {
            s.dot = 2;
            i++;
          } else s.dot = 3; // a stuffed dot: dropped
          break;
        case 2:
          if (c === LF) return this.dotEnd(dir, s, i + 1);
          this.emit(s, new Uint8Array([CR]));
          s.dot = 3;
          break;
        case 3: {
          // the rest of this line and the lines after it up to one that begins with a dot (or the data's
          // end), in one piece
          let end = i;
          for (;;) {
            const lf = data.indexOf(LF, end);
            if (lf < 0) {
              end = data.length;
              break;
            }
            end = lf + 1;
            if (end === data.length || data[end] === DOT) {
              s.dot = 0;
              break;
            }
          }
          this.emit(s, data.subarray(i, end));
          i = end;
          break;
        }
      }
    }
    return i;
  }

  private dotEnd(dir: 0 | 1, s: Side, i: number): number {
    s.mode = 'line';
    s.dot = 0;
    if (this.protocol === 'smtp') this.command('.'); // the end of the data has a reply of its own
    if (s.collecting) this.deliver(dir, false);
    return i;
  }

  private emit(s: Side, bytes: Uint8Array): void {
    if (s.collecting) this.keep(s, bytes);
  }

  /** Appends to the message under way, up to `messageBytesMax`, growing its buffer within the budget. */
  private keep(s: Side, bytes: Uint8Array): void {
    s.msgBytes += bytes.length;
    if (s.msgTruncated) return;
    const want = Math.min(bytes.length, this.messageBytesMax - s.msgLen);
    if (want < bytes.length) {
      s.msgTruncated = true;
      this.anomalies.messageCapped++;
    }
    if (want <= 0) return;
    const need = s.msgLen + want;
    const cap = s.msg?.length ?? 0;
    if (need > cap) {
      const next = Math.min(this.messageBytesMax, Math.max(need, 2 * cap, 4096));
      if (!this.budget.take(next - cap)) {
        this.anomalies.memcap++;
        s.msgTruncated = true;
        return;
      }
      this.held += next - cap;
      const m = new Uint8Array(next);
      if (s.msg) m.set(s.msg.subarray(0, s.msgLen));
      s.msg = m;
    }
    s.msg!.set(bytes.subarray(0, want), s.msgLen);
    s.msgLen = need;
  }

  /** Forgets the message under way (not a message after all). */
  private drop(s: Side): void {
    const cap = s.msg?.length ?? 0;
    this.budget.give(cap);
    this.held -= cap;
    s.msg = undefined;
    s.msgLen = 0;
    s.msgOpen = false;
  }

  private deliver(dir: 0 | 1, cut: boolean): void {
    const s = this.sides[dir];
    if (!s.msgOpen) return;
    s.msgOpen = false;
    const raw = s.msg ? s.msg.subarray(0, s.msgLen) : new Uint8Array(0);
    const m: MailMessage = {
      protocol: this.protocol as MailProtocol,
      dir,
      raw,
      bytes: s.msgBytes,
      truncated: s.msgTruncated,
      cut,
    };
    try {
      this.events.message(m);
    } finally {
      const cap = s.msg?.length ?? 0;
      this.budget.give(cap);
      this.held -= cap;
      s.msg = undefined;
      s.msgLen = 0;
    }
  }
}
