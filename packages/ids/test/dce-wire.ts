/**
 * DCE/RPC connection-oriented PDUs as a test sends them (C706 chapter 12, little-endian data
 * representation): bind, bind_ack, request.
 */

/** UUID text as DCE/RPC puts it on the wire in little-endian data representation. */
export function uuidLe(u: string): number[] {
  const h = u.replace(/-/g, '');
  const b = [...Buffer.from(h, 'hex')];
  return [...b.slice(0, 4).reverse(), ...b.slice(4, 6).reverse(), ...b.slice(6, 8).reverse(), ...b.slice(8)];
}
export const le16 = (n: number) => [n & 0xff, n >> 8];
export const le32 = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24];

/** A connection-oriented PDU (little-endian data representation). */
export function coPdu(ptype: number, body: number[], flags = 0x03): Uint8Array {
  const len = 16 + body.length;
  return Uint8Array.from([5, 0, ptype, flags, 0x10, 0, 0, 0, ...le16(len), 0, 0, ...le32(1), ...body]);
}
const ndr = uuidLe('8a885d04-1ceb-11c9-9fe8-08002b104860');
export function bind(ctxs: [number, string, number][]): Uint8Array {
  const body = [...le16(4280), ...le16(4280), 0, 0, 0, 0, ctxs.length, 0, 0, 0];
  for (const [id, u, major] of ctxs)
    body.push(...le16(id), 1, 0, ...uuidLe(u), ...le16(major), 0, 0, ...ndr, 2, 0, 0, 0);
  return coPdu(11, body);
}
export function bindAck(results: number[]): Uint8Array {
  const body = [
    ...le16(4280),
    ...le16(4280),
    0,
    0,
    0,
    0,
    ...le16(4),
    0x31,
    0x33,
    0x35,
    0,
    0,
    0,
    results.length,
    0,
    0,
    0,
  ];
  for (const r of results) body.push(...le16(r), 0, 0, ...ndr, 2, 0, 0, 0);
  return coPdu(12, body);
}
export const request = (ctx: number, opnum: number, stub: number[], flags = 0x03) =>
  coPdu(0, [...le32(stub.length), ...le16(ctx), ...le16(opnum), ...stub], flags);
