/**
 * The platform's data flow (docs/ARCHITECTURE.md, "How data flows") in one process, on embedded defaults:
 * a packet capture is inspected by the IDS (@strata/ids), each alert becomes one JSON event, the events are
 * ingested into a Helios stream (@strata/helios: blocks in a `file:` object store of @strata/objstore with
 * its express and standard tiers, the progress log on a @strata/vlog virtual log, keys hashed with
 * @strata/highwayhash and sorted with @strata/learned-sort), indexed bottom-up and searched. Every search
 * is checked against what the IDS raised and against a scan without the index.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Io, makeDirs } from '@strata/cli';
import { createStream, type Row, Stream, tokenize } from '@strata/helios';
import { type Alert, conversationFrames, encodePcap, loadRules, runCapture } from '@strata/ids';

/** The stream the alerts go to: one row per alert, the addresses, the signature and its message indexed. */
export const alertsDdl = `CREATE STREAM alerts SOURCES ('ids:')
  FORMAT json
  COLUMNS (ts TIMESTAMP, src_ip STRING, src_port INT, dest_ip STRING, dest_port INT, proto STRING,
           sid INT, rev INT, action STRING, msg TEXT)
  INDEX (src_ip, dest_ip, sid, TOKENS(msg))
  CHUNK EVERY 10 SECONDS OR 16 KB
  STORAGE express FOR 1 DAY THEN standard RETAIN 30 DAYS`;

/** An alert as the stream's JSON event (one line of the file the stream ingests). */
export function alertEvent(a: Alert): string {
  return JSON.stringify({
    ts: new Date(a.tsUs / 1000).toISOString(),
    src_ip: a.src,
    src_port: a.srcPort,
    dest_ip: a.dst,
    dest_port: a.dstPort,
    proto: a.proto,
    sid: a.sid,
    rev: a.rev,
    action: a.action,
    msg: a.msg,
  });
}

/** The rules of the generated traffic (written for it; sids in the range Snort leaves to local rules). */
export const generatedRules = [
  'alert http any any -> any any (msg:"STRATA-DEMO path traversal in a URI"; flow:established,to_server; http_uri; content:"../"; sid:1900001; rev:1;)',
  'alert http any any -> any any (msg:"STRATA-DEMO SQL injection in a URI"; flow:established,to_server; http_uri; content:"union"; nocase; content:"select"; nocase; distance:0; sid:1900002; rev:1;)',
  'alert tcp any 80 -> any any (msg:"STRATA-DEMO id check returned root"; flow:established,to_client; content:"uid=0|28|root|29|"; sid:1900003; rev:1;)',
].join('\n');

/** The sid of `generatedRules` each kind of generated conversation should raise (kinds 5 and up: none). */
const sidOfKind = [1900001, 1900001, 1900002, 1900002, 1900003];

/**
 * HTTP traffic with attacks in it, from a seeded generator: `conversations` conversations of 12 clients
 * with 3 servers; about one in three carries a path traversal (one of them percent-encoded, which the URI
 * buffer's normalisation decodes), a SQL injection or a response that leaks `uid=0(root)`. `expected`: how
 * many alerts of each sid of `generatedRules` it holds, by construction.
 */
export function generatedTraffic(
  conversations = 240,
  seed = 1,
): { capture: Uint8Array; expected: Map<number, number> } {
  let x = seed >>> 0 || 1;
  const rand = (n: number) => {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
  const pages = ['/', '/index.html', '/news?id=42', '/static/app.js', '/login', '/api/v1/items?page=3'];
  const attacks = [
    '/download?file=../../../../etc/passwd',
    '/download?file=..%2f..%2f..%2fetc%2fshadow',
    '/items?id=1%20UNION%20SELECT%20user,password%20FROM%20users--',
    '/search?q=1 union all select null,version()--',
  ];
  const expected = new Map<number, number>();
  const packets: { tsUs: number; data: Uint8Array }[] = [];
  let tsUs = Date.UTC(2026, 11, 1, 12) * 1000;
  for (let i = 0; i < conversations; i++) {
    const client = `10.1.0.${1 + rand(12)}`;
    const server = `192.0.2.${10 * (1 + rand(3))}`;
    const kind = rand(15);
    const sid = sidOfKind[kind];
    if (sid !== undefined) expected.set(sid, (expected.get(sid) ?? 0) + 1);
    const uri = kind < 4 ? attacks[kind]! : pages[rand(pages.length)]!;
    const body = kind === 4 ? 'uid=0(root) gid=0(root) groups=0(root)\n' : '<html>ok</html>\n';
    const frames = conversationFrames(
      [
        [0, `GET ${uri} HTTP/1.1\r\nHost: ${server}\r\nUser-Agent: demo/1.0\r\n\r\n`],
        [1, `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`],
      ],
      { client, server, serverPort: 80, clientPort: 40000 + i, fin: true },
    );
    for (const data of frames) packets.push({ tsUs: (tsUs += 250), data });
    tsUs += 50_000;
  }
  return { capture: encodePcap(packets), expected };
}

/** Where the shared material lies (../shared beside the repository), when it is there. */
function sharedIds(): { capture: string; rules: string } | undefined {
  const ids = new URL('../../../../shared/ids/', import.meta.url).pathname;
  const capture = join(ids, 'traces/suricata-verify-mix.pcap');
  const rules = join(ids, 'rules/snort3-community.rules');
  return existsSync(capture) && existsSync(rules) ? { capture, rules } : undefined;
}

export interface PlatformOptions {
  /** A capture to inspect, and the rules file to inspect it with (both, or neither: generated traffic). */
  capture?: string;
  rules?: string;
  /** With no capture given: the shared capture and community rules when present (default true). */
  useShared?: boolean;
}

export interface PlatformReport {
  packets: number;
  alerts: number;
  rows: number;
  blocks: number;
  /** Alerts by sid, as the IDS raised them. */
  bySid: Map<number, number>;
  /** Each search: its expression, the rows the IDS's alerts expect, the rows found with and without index. */
  searches: { where: string; expected: number; indexed: number; scanned: number }[];
}

/** Rows as comparable lines, sorted. */
function rowLines(rows: Row[]): string[] {
  return rows.map((r) => JSON.stringify(r)).sort();
}

/** How many alerts have each value of `key`. */
function countBy<K>(alerts: Alert[], key: (a: Alert) => K): Map<K, number> {
  const counts = new Map<K, number>();
  for (const a of alerts) {
    const k = key(a);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

/** The most frequent value of `key` among the alerts, with its count. */
function busiest<K>(alerts: Alert[], key: (a: Alert) => K): [K, number] {
  return [...countBy(alerts, key)].reduce((best, e) => (e[1] > best[1] ? e : best));
}

/**
 * Runs the flow under `dir`: inspect, write the events, ingest, index, search. Throws when a search's rows
 * differ from what the IDS raised or from a scan without the index.
 */
export async function runPlatform(io: Io, dir: string, opts: PlatformOptions = {}): Promise<PlatformReport> {
  await makeDirs(dir);
  if ((opts.capture === undefined) !== (opts.rules === undefined))
    throw new Error('platform: give both a capture and a rules file, or neither');
  let input = opts.capture && opts.rules ? { capture: opts.capture, rules: opts.rules } : undefined;
  if (!input && opts.useShared !== false) input = sharedIds();
  let capture: string;
  let rulesText: string;
  let rulesFile: string;
  if (input) {
    capture = input.capture;
    rulesFile = input.rules;
    rulesText = readFileSync(rulesFile, 'utf8');
  } else {
    capture = join(dir, 'generated.pcap');
    writeFileSync(capture, generatedTraffic().capture);
    rulesFile = 'generated.rules';
    rulesText = generatedRules;
  }

  // 1. the IDS inspects the capture
  const rules = loadRules(rulesText, rulesFile).rules;
  const ids = await runCapture(capture, rules);
  io.stdout.write(
    `platform: ids inspected ${ids.packets} packets of ${capture} with ${ids.rulesLoaded} rules: ${ids.alerts.length} alerts\n`,
  );
  if (ids.alerts.length === 0) throw new Error('platform: the IDS raised no alert, nothing to index');

  // 2. the alerts as events, ingested into a Helios stream (blocks in the object store, progress on the log)
  const events = join(dir, 'alerts.json');
  writeFileSync(events, `${ids.alerts.map(alertEvent).join('\n')}\n`);
  const data = join(dir, 'data');
  createStream(data, alertsDdl);
  const s = await Stream.open(data, 'alerts');
  try {
    const st = await s.ingestFile(events);
    await s.indexAll();
    const sz = s.sizes();
    io.stdout.write(
      `platform: helios ingested ${st.lines} events into ${st.blocksWritten} blocks (express tier), index ${sz.indexBytes} bytes for ${sz.rawBytes} raw\n`,
    );
    if (st.lines !== ids.alerts.length)
      throw new Error(`platform: ${ids.alerts.length} alerts but ${st.lines} rows ingested`);

    // 3. searches, each checked against the IDS side and against a scan without the index
    const [ip, ipCount] = busiest(ids.alerts, (a) => a.src);
    const [sid, sidCount] = busiest(ids.alerts, (a) => a.sid);
    // the busiest source with a signature, and the longest word of the busiest signature's message that not
    // every message has
    const [pair, pairCount] = busiest(ids.alerts, (a) => `${a.src} ${a.sid}`);
    const [pairIp, pairSid] = pair.split(' ') as [string, string];
    const holding = (t: string) => ids.alerts.filter((a) => tokenize(a.msg).includes(t)).length;
    const words = tokenize(ids.alerts.find((a) => a.sid === sid)!.msg).sort((p, q) => q.length - p.length);
    const word = words.find((t) => holding(t) < ids.alerts.length) ?? words[0]!;
    const withWord = holding(word);
    const searches: PlatformReport['searches'] = [];
    for (const [where, expected] of [
      [`src_ip = '${ip}'`, ipCount],
      [`sid = ${sid}`, sidCount],
      [`src_ip = '${pairIp}' AND sid = ${pairSid}`, pairCount],
      [`msg CONTAINS '${word}'`, withWord],
    ] as const) {
      const q = s.parse(where);
      const withIndex = await s.search(q);
      const without = await s.search(q, { useIndex: false });
      const a = rowLines(withIndex.rows);
      const b = rowLines(without.rows);
      if (a.length !== expected || a.join('\n') !== b.join('\n'))
        throw new Error(
          `platform: '${where}': the IDS raised ${expected} such alerts; the index found ${a.length} rows, a scan ${b.length}`,
        );
      searches.push({ where, expected, indexed: a.length, scanned: b.length });
      io.stdout.write(
        `platform: ${where}: ${a.length} rows, ${withIndex.stats.blocksRead} of ${withIndex.stats.blocksTotal} blocks read (a scan reads ${without.stats.blocksRead})\n`,
      );
    }
    return {
      packets: ids.packets,
      alerts: ids.alerts.length,
      rows: st.lines,
      blocks: s.blockCount,
      bySid: countBy(ids.alerts, (a) => a.sid),
      searches,
    };
  } finally {
    await s.close();
  }
}
