// An alert as text: Snort's alert_fast line and Suricata's eve JSON record (what `strata ids` writes).
import { type Classification, classDescription, classifications } from './classification.js';
import type { Alert } from './engine-api.js';
import { rejectTargetOf } from './reject.js';

/** Snort's alert_fast line (classes described by the built-in table; `alertFastWith` for another). */
export function alertFast(a: Alert): string {
  return fastLine(a, classifications);
}

/**
 * alert_fast lines whose classes `classes` describes (`classificationTable` of a classification.config's
 * entries). A function of one alert, so `alerts.map(...)` passes no index where a table goes.
 */
export function alertFastWith(classes: ReadonlyMap<string, Classification>): (a: Alert) => string {
  return (a) => fastLine(a, classes);
}

function fastLine(a: Alert, classes: ReadonlyMap<string, Classification>): string {
  const t = new Date(a.tsUs / 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const ts = `${pad(t.getUTCMonth() + 1)}/${pad(t.getUTCDate())}-${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())}.${pad(Math.floor(a.tsUs % 1e6), 6)}`;
  const ep = (ip: string, p: number) => (a.proto === 'TCP' || a.proto === 'UDP' ? `${ip}:${p}` : ip);
  return `${ts} [**] [${a.gid}:${a.sid}:${a.rev}] ${a.msg} [**] [Classification: ${a.classtype ? classDescription(a.classtype, classes) : 'none'}] [Priority: ${a.priority ?? 3}] {${a.proto}} ${ep(a.src, a.srcPort)} -> ${ep(a.dst, a.dstPort)}`;
}

/** Bytes as text, anything outside printable ASCII (and CR, LF, TAB) as a dot. */
function printable(b: Uint8Array): string {
  let out = '';
  for (const c of b)
    out += (c >= 0x20 && c < 0x7f) || c === 10 || c === 13 || c === 9 ? String.fromCharCode(c) : '.';
  return out;
}

/**
 * An eve record's time as Suricata writes it: UTC to the microsecond with the zone as +0000
 * (`2023-11-14T22:25:07.152870+0000`); Date's ISO form stops at the millisecond.
 */
export function eveTimestamp(tsUs: number): string {
  const us = ((tsUs % 1e6) + 1e6) % 1e6;
  const iso = new Date((tsUs - us) / 1000).toISOString(); // whole seconds: ...T22:25:07.000Z
  return `${iso.slice(0, 19)}.${String(us).padStart(6, '0')}+0000`;
}

/** A Suricata-style eve JSON alert record (`alert.category` from the built-in classes). */
export function eveJson(a: Alert): Record<string, unknown> {
  return eveRecord(a, classifications);
}

/** eve records whose `alert.category` `classes` gives (as `alertFastWith`). */
export function eveJsonWith(
  classes: ReadonlyMap<string, Classification>,
): (a: Alert) => Record<string, unknown> {
  return (a) => eveRecord(a, classes);
}

function eveRecord(a: Alert, classes: ReadonlyMap<string, Classification>): Record<string, unknown> {
  return {
    timestamp: eveTimestamp(a.tsUs),
    ...(a.flowId !== undefined && { flow_id: a.flowId }),
    ...(a.pcapCnt !== undefined && { pcap_cnt: a.pcapCnt }),
    event_type: 'alert',
    // ICMP has no ports: Suricata gives the type and code instead
    src_ip: a.src,
    ...(a.icmpType === undefined && { src_port: a.srcPort }),
    dest_ip: a.dst,
    ...(a.icmpType === undefined && { dest_port: a.dstPort }),
    proto: a.proto,
    ...(a.icmpType !== undefined && { icmp_type: a.icmpType, icmp_code: a.icmpCode }),
    ...(a.ipVersion !== undefined && { ip_v: a.ipVersion }),
    ...(a.stream !== undefined && { stream: a.stream ? 1 : 0 }),
    ...(a.pktSrc !== undefined && { pkt_src: a.pktSrc }),
    ...(a.payload !== undefined && {
      payload: Buffer.from(a.payload).toString('base64'),
      payload_printable: `${a.gapBytes ? `[${a.gapBytes} bytes missing]` : ''}${printable(a.payload)}`,
    }),
    ...(a.packet !== undefined && {
      packet: Buffer.from(a.packet).toString('base64'),
      packet_info: { linktype: a.linkType },
    }),
    alert: {
      // Suricata's (output-json-alert.c): a reject blocked, a drop only in IPS mode (in IDS it alerts)
      action:
        rejectTargetOf(a.action) || (a.ips && (a.action === 'drop' || a.action === 'sdrop'))
          ? 'blocked'
          : 'allowed',
      gid: a.gid,
      signature_id: a.sid,
      rev: a.rev,
      signature: a.msg,
      category: a.classtype ? classDescription(a.classtype, classes) : '',
      severity: a.priority ?? 3,
    },
  };
}
