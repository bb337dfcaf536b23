/**
 * The `base64_decode` rule option (Snort 2 / Snort 3 / Suricata) and the `base64_data` buffer it fills.
 *
 *   base64_decode[:[bytes N][, offset N][, relative]]
 *
 * Decoding starts at `offset` from the start of the buffer, or from the cursor with `relative`. Folded
 * lines are unfolded first (a CR or LF followed by a space or tab continues the data, as HTTP and mail
 * headers fold); the data ends at a line end that is not folded, at the first character outside the base64
 * alphabet (`=` padding included: RFC 4648 3.3, as Suricata rejects the rest), after `bytes` encoded bytes,
 * or at the end of the buffer. A last group of 2 or 3 characters gives 1 or 2 bytes. At most
 * `base64DecodedBytesMax` bytes come out.
 */

export interface Base64Decode {
  bytes?: number;
  offset: number;
  relative: boolean;
}

/** Decoded bytes kept at most (Suricata's limit). */
export const base64DecodedBytesMax = 65_536;

export function parseBase64Decode(value: string | undefined): Base64Decode {
  const o: Base64Decode = { offset: 0, relative: false };
  for (const raw of (value ?? '').split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const [name = '', arg, extra] = item.split(/\s+/);
    if (name === 'relative' && arg === undefined) o.relative = true;
    else if ((name === 'bytes' || name === 'offset') && arg !== undefined && extra === undefined) {
      if (!/^\d+$/.test(arg) || Number(arg) > 65_535)
        throw new Error(`base64_decode: ${name} needs an integer from 0 to 65535, got '${arg}'`);
      if (name === 'bytes') {
        if (Number(arg) === 0) throw new Error('base64_decode: bytes must be positive');
        o.bytes = Number(arg);
      } else o.offset = Number(arg);
    } else
      throw new Error(`base64_decode: unknown argument '${item}' (expected bytes N, offset N, relative)`);
  }
  return o;
}

/** Each byte's value in the base64 alphabet (RFC 4648 4), -1 outside it; the MIME decoder's too. */
export const base64Values = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++)
  base64Values['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;

/**
 * Decodes from `buf[from]` on; returns the decoded bytes and where the encoded data ended (the byte after
 * the last one taken), or undefined when `from` is outside the buffer.
 */
export function base64DecodeAt(
  buf: Uint8Array,
  from: number,
  bytesMax: number | undefined,
): { data: Uint8Array; end: number } | undefined {
  if (from < 0 || from >= buf.length) return undefined;
  const stop = bytesMax === undefined ? buf.length : Math.min(buf.length, from + bytesMax);
  const out = new Uint8Array(Math.min(base64DecodedBytesMax, Math.ceil(((stop - from) * 3) / 4)));
  let n = 0;
  let acc = 0;
  let bits = 0;
  let i = from;
  while (i < stop && n < out.length) {
    const c = buf[i]!;
    if (c === 13 || c === 10) {
      // a line end continues only when folded: CR? LF? then a space or tab
      let j = i + 1;
      if (c === 13 && buf[j] === 10) j++;
      if (j < buf.length && (buf[j] === 32 || buf[j] === 9)) {
        i = j + 1;
        continue;
      }
      break;
    }
    const v = base64Values[c]!;
    if (v < 0) {
      // folding whitespace after a folded line end
      if ((c === 32 || c === 9) && i > from && (buf[i - 1] === 32 || buf[i - 1] === 9 || buf[i - 1] === 10)) {
        i++;
        continue;
      }
      break;
    }
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
    i++;
  }
  return { data: out.subarray(0, n), end: i };
}
