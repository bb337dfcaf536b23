/**
 * The `asn1` rule option (Snort 2 / Snort 3 / Suricata): decode BER (ITU-T X.690) from a point of the
 * inspected buffer to its end and test every element, nested ones included, for
 *
 * - `oversize_length N`: an element whose length is greater than N;
 * - `bitstring_overflow`: a primitive universal BIT STRING whose unused-bits octet says more bits are unused
 *   than its other octets hold (the malformed encoding of the MS04-007 ASN.1 library overflows);
 * - `double_overflow`: a primitive universal REAL in the decimal (ISO 6093 character) form, longer than
 *   256 bytes (the MSASN1 buffer it overflows).
 *
 * The tests are ORed. `absolute_offset N` starts at byte N of the buffer, `relative_offset N` N bytes from
 * the cursor (either may be negative as long as the start stays in the buffer); without one, at the start.
 * An element's declared length counts even when the buffer ends before its content does (the overflow
 * attempts this option exists for claim lengths they do not send): it is checked on what is there and
 * decoding stops after it. Malformed input (a length of more than 4 octets, a tag past the buffer, an
 * indefinite length on a primitive element) ends decoding; what was decoded before it has been checked.
 */

export interface Asn1Option {
  oversizeLength?: number;
  bitstringOverflow: boolean;
  doubleOverflow: boolean;
  absoluteOffset?: number;
  relativeOffset?: number;
}

/** Elements decoded per evaluation at most, and nesting depth (bounds the work an adversary can cause). */
export const asn1ElementsMax = 1024;
export const asn1DepthMax = 32;

/** Parses the option's value: `bitstring_overflow, oversize_length 2048, relative_offset 27`. */
export function parseAsn1(value: string): Asn1Option {
  const o: Asn1Option = { bitstringOverflow: false, doubleOverflow: false };
  const int = (name: string, v: string | undefined, min: number, max: number): number => {
    if (v === undefined || !/^[+-]?\d+$/.test(v) || Number(v) < min || Number(v) > max)
      throw new Error(`asn1: ${name} needs an integer from ${min} to ${max}, got '${v ?? ''}'`);
    return Number(v);
  };
  // Snort 2 allowed a comma between a name and its argument (`absolute_offset, 0`): join such pairs
  const words = value
    .split(/[\s,]+/)
    .map((w) => w.trim())
    .filter(Boolean);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    switch (w) {
      case 'bitstring_overflow':
        o.bitstringOverflow = true;
        break;
      case 'double_overflow':
        o.doubleOverflow = true;
        break;
      case 'oversize_length':
        o.oversizeLength = int(w, words[++i], 0, 4294967295);
        break;
      case 'absolute_offset':
      case 'relative_offset':
        if (o.absoluteOffset !== undefined || o.relativeOffset !== undefined)
          throw new Error('asn1: absolute_offset and relative_offset exclude each other; give one');
        if (w === 'absolute_offset') o.absoluteOffset = int(w, words[++i], 0, 65535);
        else o.relativeOffset = int(w, words[++i], -65535, 65535);
        break;
      case 'print':
        break; // Snort 2's debug dump: nothing to detect
      default:
        throw new Error(
          `asn1: unknown argument '${w}' (expected bitstring_overflow, double_overflow, oversize_length N, absolute_offset N or relative_offset N)`,
        );
    }
  }
  if (!o.bitstringOverflow && !o.doubleOverflow && o.oversizeLength === undefined)
    throw new Error('asn1: needs at least one of bitstring_overflow, double_overflow, oversize_length N');
  return o;
}

const tagBitString = 3;
const tagReal = 9;

/**
 * Whether any element of the BER data in `buf[from..]` fails one of the option's tests. `from` outside the
 * buffer: false (nothing to decode).
 */
export function asn1Match(buf: Uint8Array, from: number, o: Asn1Option): boolean {
  if (from < 0 || from >= buf.length) return false;
  const budget = { elements: asn1ElementsMax };
  return walk(buf, from, buf.length, 0, o, budget) === true;
}

/**
 * Decodes the elements of `buf[at..end)` one after another; true when one fails a test, else the offset
 * where decoding stopped (`end`, an end-of-contents marker's end, or -1 when it could go no further).
 */
function walk(
  buf: Uint8Array,
  at: number,
  end: number,
  depth: number,
  o: Asn1Option,
  budget: { elements: number },
  untilEoc = false,
): true | number {
  while (at < end) {
    if (budget.elements-- <= 0) return -1;
    if (untilEoc && at + 1 < end && buf[at] === 0 && buf[at + 1] === 0) return at + 2;
    // identifier octets: class (2 bits), constructed (1), tag number (5, or 31 and base-128 octets)
    const id = buf[at++]!;
    const universal = (id & 0xc0) === 0;
    const constructed = (id & 0x20) !== 0;
    let tag = id & 0x1f;
    if (tag === 0x1f) {
      tag = 0;
      for (let k = 0; ; k++) {
        if (at >= end || k >= 4) return -1;
        const b = buf[at++]!;
        tag = tag * 128 + (b & 0x7f);
        if ((b & 0x80) === 0) break;
      }
    }
    // length octets: short form, long form of 1-4 octets, or indefinite (0x80, constructed only)
    if (at >= end) return -1;
    const l0 = buf[at++]!;
    let len: number;
    let indefinite = false;
    if (l0 < 0x80) len = l0;
    else if (l0 === 0x80) {
      if (!constructed) return -1;
      indefinite = true;
      len = end - at;
    } else {
      const n = l0 & 0x7f;
      if (n > 4 || at + n > end) return -1;
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + buf[at++]!;
    }
    const contentEnd = Math.min(end, at + len);
    if (!indefinite && o.oversizeLength !== undefined && len > o.oversizeLength) return true;
    if (universal && !constructed) {
      const first = at < contentEnd ? buf[at]! : undefined;
      if (
        o.bitstringOverflow &&
        tag === tagBitString &&
        first !== undefined &&
        len > 0 &&
        first > (len - 1) * 8
      )
        return true;
      if (o.doubleOverflow && tag === tagReal && first !== undefined && (first & 0xc0) === 0 && len > 256)
        return true;
    }
    if (constructed) {
      if (depth + 1 >= asn1DepthMax) return -1;
      const r = walk(buf, at, contentEnd, depth + 1, o, budget, indefinite);
      if (r === true) return true;
      if (r < 0) return -1;
      if (indefinite) {
        if (o.oversizeLength !== undefined && r - 2 - at > o.oversizeLength) return true;
        at = r;
        continue;
      }
    }
    if (at + len > end) return -1; // declared past the buffer: checked above, nothing follows it
    at += len;
  }
  return at;
}
