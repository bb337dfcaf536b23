// classification.config and threshold.config: their parsers (good lines, each bad line's error), a fuzz of
// both, and runs over crafted captures showing what each entry does to the alerts.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { captureIo, runCommand } from '@strata/cli';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClassificationConfigError,
  type ClassificationEntry,
  parseClassificationConfig,
} from '../src/classification.js';
import { commands, encodePcap, loadRules, ParallelRunner, parseRate, runCapture } from '../src/index.js';
import type { PipelineOptions } from '../src/run.js';
import { EventFilters, parseThresholdConfig, ThresholdConfigError } from '../src/threshold-config.js';
import { tcpFrame } from './helpers.js';

const t0Us = 1_700_000_000_000_000;

/**
 * Runs `ruleText` over one packet per `[second, src, dst?]` (each its own flow: a source port of its own),
 * payload `MARK`, to port 8080; the alerts' sids and sources in order, and the run's stats.
 */
async function run(ruleText: string, packets: [number, string, string?][], opts: PipelineOptions = {}) {
  const frames = packets.map(([s, src, dst], i) => ({
    tsUs: t0Us + s * 1e6 + i,
    data: tcpFrame({ src, dst: dst ?? '10.9.9.9', sp: 20_000 + i, dp: 8080, seq: 1, payload: 'MARK' }),
  }));
  const r = await runCapture(
    Readable.from([Buffer.from(encodePcap(frames))]),
    loadRules(ruleText, 't.rules').rules,
    opts,
  );
  return { alerts: r.alerts.map((a) => `${a.sid}@${a.src}`), r };
}

const rule = (sid: number, extra = '', gid = '') =>
  `alert tcp-pkt any any -> any 8080 (msg:"mark ${sid}"; content:"MARK"; ${extra}${gid}sid:${sid};)`;

const thresholds = (text: string) => ({ thresholdConfig: parseThresholdConfig(text, 'threshold.config') });

describe('classification.config: the parser', () => {
  it('reads classes: comments, blank lines, whitespace, CRLF, commas in a description, any case', () => {
    const text = [
      '# classes of this site',
      '',
      'config classification: local-thing,A Local Thing,2',
      '  config   classification :  Odd_One ,  Odd, but fine, really , 4  \r',
      '\t# an indented comment\r',
      'config classification: bad-unknown,Potentially Bad Traffic (here),1',
    ].join('\r\n');
    expect(parseClassificationConfig(text, 'c.config')).toEqual([
      { name: 'local-thing', description: 'A Local Thing', priority: 2, file: 'c.config', line: 3 },
      { name: 'Odd_One', description: 'Odd, but fine, really', priority: 4, file: 'c.config', line: 4 },
      {
        name: 'bad-unknown',
        description: 'Potentially Bad Traffic (here)',
        priority: 1,
        file: 'c.config',
        line: 6,
      },
    ]);
    expect(parseClassificationConfig('', 'c')).toEqual([]);
  });

  it('names file:line and what is wrong on a bad line', () => {
    const bad: [string, string][] = [
      [
        'config reference: bugtraq http://x/',
        "c.config:2: classification: expected 'config classification: NAME,DESCRIPTION,PRIORITY', got 'config reference: bugtraq http://x/'",
      ],
      [
        'classification: a,b,1',
        "c.config:2: classification: expected 'config classification: NAME,DESCRIPTION,PRIORITY', got 'classification: a,b,1'",
      ],
      [
        'config classification: a,1',
        "c.config:2: classification: expected NAME,DESCRIPTION,PRIORITY (three parts), got 'a,1'",
      ],
      [
        'config classification:',
        "c.config:2: classification: expected NAME,DESCRIPTION,PRIORITY (three parts), got ''",
      ],
      [
        'config classification: 9lives,Cats,1',
        "c.config:2: classification: bad name '9lives' (a letter, then letters, digits, '-' or '_')",
      ],
      [
        'config classification: a b,Cats,1',
        "c.config:2: classification: bad name 'a b' (a letter, then letters, digits, '-' or '_')",
      ],
      [
        'config classification: cats, ,1',
        "c.config:2: classification: class 'cats' has an empty description",
      ],
      [
        'config classification: cats,Cats,high',
        "c.config:2: classification: bad priority 'high' of class 'cats' (a whole number from 1)",
      ],
      [
        'config classification: cats,Cats,0',
        "c.config:2: classification: bad priority '0' of class 'cats' (a whole number from 1)",
      ],
      [
        'config classification: cats,Cats,',
        "c.config:2: classification: bad priority '' of class 'cats' (a whole number from 1)",
      ],
      [
        'config classification: cats,Cats,99999999999',
        "c.config:2: classification: bad priority '99999999999' of class 'cats' (a whole number from 1)",
      ],
      [
        'config classification: MISC-activity,Again,1',
        "c.config:2: classification: class 'MISC-activity' is defined again (first at line 1)",
      ],
    ];
    for (const [line, msg] of bad) {
      const text = `config classification: misc-activity,Misc activity,3\n${line}\n`;
      expect(() => parseClassificationConfig(text, 'c.config'), line).toThrow(ClassificationConfigError);
      expect(() => parseClassificationConfig(text, 'c.config'), line).toThrow(msg);
    }
  });

  it('never throws anything but its own error on random text', () => {
    const piece = fc.constantFrom(
      'config',
      ' classification',
      ':',
      ',',
      ' ',
      '\r\n',
      '\n',
      '#',
      'a-b',
      '1',
      '0',
      'x',
      '\\',
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.array(piece).map((p) => p.join('')),
        ),
        (text) => {
          try {
            parseClassificationConfig(text, 'f');
          } catch (e) {
            expect(e).toBeInstanceOf(ClassificationConfigError);
            expect((e as Error).message).toMatch(/^f:\d+: classification: /);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('classification.config: rules and alerts', () => {
  const classes: ClassificationEntry[] = parseClassificationConfig(
    'config classification: local-thing,A Local Thing,1\nconfig classification: misc-activity,Site Misc,4\n',
    'c.config',
  );

  it('refuses a rule whose classtype is in neither the built-in classes nor a file, by sid and keyword', async () => {
    const text = [rule(1, 'classtype:local-thing; '), rule(2, 'classtype:misc-activity; '), rule(3)].join(
      '\n',
    );
    const { r } = await run(text, [[0, '10.0.0.1']]);
    expect(r.rulesLoaded).toBe(2);
    expect(r.rulesSkipped).toEqual([
      {
        sid: 1,
        reason:
          "classtype: unknown class 'local-thing' (not a built-in class: define it in a classification.config, --classification FILE)",
      },
    ]);
  });

  it("a file's class loads the rule and gives its priority; a file replaces a built-in class's; the rule's own wins", async () => {
    const text = [
      rule(1, 'classtype:local-thing; '),
      rule(2, 'classtype:Misc-Activity; '),
      rule(3, 'classtype:local-thing; priority:3; '),
      rule(4, 'classtype:attempted-admin; '),
    ].join('\n');
    const { r } = await run(text, [[0, '10.0.0.1']], { classifications: classes });
    expect(r.rulesSkipped).toEqual([]);
    const by = new Map(r.alerts.map((a) => [a.sid, a]));
    expect([1, 2, 3, 4].map((s) => [by.get(s)?.classtype, by.get(s)?.priority])).toEqual([
      ['local-thing', 1],
      ['misc-activity', 4],
      ['local-thing', 3],
      ['attempted-admin', 1],
    ]);
  });

  it('alerts carry a class by the name its definition gives, whatever case the rule writes it in', async () => {
    const mixed = parseClassificationConfig('config classification: Site-Thing,A Site Thing,2\n', 'c.config');
    const text = [
      rule(1, 'classtype:site-thing; '),
      rule(2, 'classtype:SITE-THING; '),
      rule(3, 'classtype:Attempted-Admin; '),
    ].join('\n');
    const { r } = await run(text, [[0, '10.0.0.1']], { classifications: mixed });
    const by = new Map(r.alerts.map((a) => [a.sid, a]));
    expect([1, 2, 3].map((s) => [by.get(s)?.classtype, by.get(s)?.priority])).toEqual([
      ['Site-Thing', 2],
      ['Site-Thing', 2],
      ['attempted-admin', 1],
    ]);
  });
});

describe('threshold.config: the parser', () => {
  it('reads suppress, event_filter, threshold and rate_filter entries: any field order, case, comments, CRLF, continuations', () => {
    const text = [
      '# site thresholds',
      'suppress gen_id 1, sig_id 2002087',
      'suppress gen_id 1, sig_id 2003614, track by_either, ip [192.168.0.0/16, 10.0.0.0/8,!10.1.0.0/16]\r',
      'SUPPRESS gen_id 0, sig_id 0, track by_dst, ip 2001:db8::/32',
      'event_filter gen_id 1, sig_id 1000, type limit, track by_src, count 1, seconds 60',
      'threshold sig_id 1001, gen_id 1, seconds 10, count 3, track by_rule, \\',
      '    type both',
      'event_filter gen_id 1, sig_id 0, type threshold, track by_both, count 5, seconds 1',
      'event_filter gen_id 1, sig_id 1002, type limit, track by_dst, count -1, seconds 1',
      'rate_filter gen_id 1, sig_id 1003, track by_src, count 100, seconds 60, new_action Drop, timeout 30, apply_to [10.0.0.0/8]',
      'rate_filter gen_id 0, sig_id 0, track by_rule, count 5, seconds 1, new_action pass, timeout 0',
    ].join('\n');
    const f = 'threshold.config';
    expect(parseThresholdConfig(text, f)).toEqual([
      { kind: 'suppress', gid: 1, sid: 2002087, file: f, line: 2 },
      {
        kind: 'suppress',
        gid: 1,
        sid: 2003614,
        track: 'by_either',
        ip: '[192.168.0.0/16, 10.0.0.0/8,!10.1.0.0/16]',
        file: f,
        line: 3,
      },
      { kind: 'suppress', gid: 0, sid: 0, track: 'by_dst', ip: '2001:db8::/32', file: f, line: 4 },
      {
        kind: 'event_filter',
        gid: 1,
        sid: 1000,
        type: 'limit',
        track: 'by_src',
        count: 1,
        seconds: 60,
        file: f,
        line: 5,
      },
      {
        kind: 'event_filter',
        gid: 1,
        sid: 1001,
        type: 'both',
        track: 'by_rule',
        count: 3,
        seconds: 10,
        file: f,
        line: 6,
      },
      {
        kind: 'event_filter',
        gid: 1,
        sid: 0,
        type: 'threshold',
        track: 'by_both',
        count: 5,
        seconds: 1,
        file: f,
        line: 8,
      },
      {
        kind: 'event_filter',
        gid: 1,
        sid: 1002,
        type: 'limit',
        track: 'by_dst',
        count: -1,
        seconds: 1,
        file: f,
        line: 9,
      },
      {
        kind: 'rate_filter',
        gid: 1,
        sid: 1003,
        track: 'by_src',
        count: 100,
        seconds: 60,
        newAction: 'drop',
        timeout: 30,
        applyTo: '[10.0.0.0/8]',
        file: f,
        line: 10,
      },
      {
        kind: 'rate_filter',
        gid: 0,
        sid: 0,
        track: 'by_rule',
        count: 5,
        seconds: 1,
        newAction: 'pass',
        timeout: 0,
        file: f,
        line: 11,
      },
    ]);
  });

  it('names file:line, the entry and the field on a bad line', () => {
    const ef = 'event_filter gen_id 1, sig_id 5';
    const bad: [string, string][] = [
      [
        'rate_filter gen_id 1, sig_id 1000, track by_rule, count 100, seconds 60, timeout 30',
        't:2: rate_filter: new_action is missing',
      ],
      [
        'rate_filter gen_id 1, sig_id 1000, track by_rule, count 100, seconds 60, new_action block, timeout 30',
        "t:2: rate_filter: bad new_action 'block' (one of alert, drop, pass, log, sdrop, reject)",
      ],
      [
        'rate_filter gen_id 1, sig_id 1000, track by_rule, count 100, seconds 60, new_action drop',
        't:2: rate_filter: timeout is missing',
      ],
      [
        'rate_filter gen_id 1, sig_id 1000, track by_rule, count 100, seconds 60, new_action drop, timeout -1',
        "t:2: rate_filter: bad timeout '-1' (a whole number, 0 for good)",
      ],
      [
        'rate_filter gen_id 1, sig_id 1000, track by_rule, count -1, seconds 60, new_action drop, timeout 1',
        "t:2: rate_filter: bad count '-1' (a whole number from 1)",
      ],
      [
        'rate_filter gen_id 1, sig_id 1000, track by_rule, count 1, seconds 0, new_action drop, timeout 1',
        "t:2: rate_filter: bad seconds '0' (a whole number from 1)",
      ],
      [
        'rate_filter gen_id 1, sig_id 1, track by_rule, count 1, seconds 1, new_action drop, timeout 1, apply_to 10.0.0.1',
        't:2: rate_filter: apply_to needs track by_src or by_dst, not by_rule',
      ],
      [
        'rate_filter gen_id 1, sig_id 1, track by_src, count 1, seconds 1, new_action drop, timeout 1, apply_to 10.0.0.300',
        "t:2: rate_filter: bad apply_to '10.0.0.300'",
      ],
      [
        'rate_filter gen_id 1, sig_id 1, type limit, track by_src, count 1, seconds 1, new_action drop, timeout 1',
        "t:2: rate_filter: unknown field 'type limit' (expected gen_id, sig_id, track, count, seconds, new_action, timeout, apply_to)",
      ],
      [
        'pass gen_id 1, sig_id 1',
        "t:2: entry: expected suppress, event_filter, threshold or rate_filter, got 'pass gen_id 1, sig_id 1'",
      ],
      ['123', "t:2: entry: expected suppress, event_filter, threshold or rate_filter, got '123'"],
      ['suppress', 't:2: suppress: gen_id is missing'],
      ['suppress gen_id 1', 't:2: suppress: sig_id is missing'],
      ['suppress gen_id 1, sig_id x', "t:2: suppress: bad sig_id 'x' (a whole number, 0 for all)"],
      ['suppress gen_id -1, sig_id 1', "t:2: suppress: bad gen_id '-1' (a whole number, 0 for all)"],
      [
        'suppress gen_id 1, sig_id 4294967296',
        "t:2: suppress: bad sig_id '4294967296' (a whole number, 0 for all)",
      ],
      [
        'suppress gen_id 0, sig_id 7',
        "t:2: suppress: sig_id 7 with gen_id 0 (give the rule's gen_id, or 0 for both)",
      ],
      ['suppress gen_id 1, sig_id 1, sig_id 2', 't:2: suppress: sig_id is given twice'],
      ['suppress gen_id 1, sig_id 1,', 't:2: suppress: an empty field (a comma too many?)'],
      [
        'suppress gen_id 1, sig_id 1, track by_src',
        't:2: suppress: track needs ip (suppress ... track by_src, ip 10.0.0.0/8)',
      ],
      [
        'suppress gen_id 1, sig_id 1, track by_rule, ip 1.2.3.4',
        "t:2: suppress: bad track 'by_rule' (one of by_src, by_dst, by_either)",
      ],
      ['suppress gen_id 1, sig_id 1, ip 1.2.3.4', 't:2: suppress: track is missing'],
      ['suppress gen_id 1, sig_id 1, track by_src, ip 300.1.1.1', "t:2: suppress: bad ip '300.1.1.1': "],
      ['suppress gen_id 1, sig_id 1, track by_src, ip [10.0.0.0/8', "t:2: suppress: bad ip '[10.0.0.0/8': "],
      ['suppress gen_id 1, sig_id 1, track by_src, ip', 't:2: suppress: ip has no value'],
      [
        'suppress gen_id 1, sig_id 1, type limit',
        "t:2: suppress: unknown field 'type limit' (expected gen_id, sig_id, track, ip)",
      ],
      [`${ef}`, 't:2: event_filter: type is missing'],
      [
        `${ef}, type backoff, track by_src, count 1, seconds 1`,
        "t:2: event_filter: bad type 'backoff' (one of limit, threshold, both)",
      ],
      [
        `${ef}, type limit, track by_flow, count 1, seconds 1`,
        "t:2: event_filter: bad track 'by_flow' (one of by_src, by_dst, by_rule, by_both)",
      ],
      [`${ef}, type limit, track by_src, seconds 1`, 't:2: event_filter: count is missing'],
      [
        `${ef}, type limit, track by_src, count 0, seconds 1`,
        "t:2: event_filter: bad count '0' (a whole number from 1, or -1 for no filter)",
      ],
      [`${ef}, type limit, track by_src, count 1`, 't:2: event_filter: seconds is missing'],
      [
        `${ef}, type limit, track by_src, count 1, seconds 0`,
        "t:2: event_filter: bad seconds '0' (a whole number from 1)",
      ],
      [
        `${ef}, type limit, track by_src, count 1, seconds 1.5`,
        "t:2: event_filter: bad seconds '1.5' (a whole number from 1)",
      ],
      [
        `${ef}, type limit, track by_src, count 1, seconds 1, ip 1.2.3.4`,
        "t:2: event_filter: unknown field 'ip 1.2.3.4' (expected gen_id, sig_id, type, track, count, seconds)",
      ],
      [
        `threshold gen_id 1, sig_id 9, type limit, track by_src, count 1, seconds 1`,
        't:2: event_filter: gen_id 1, sig_id 9 already has one (line 1)',
      ],
    ];
    for (const [line, msg] of bad) {
      const text = `event_filter gen_id 1, sig_id 9, type both, track by_src, count 1, seconds 1\n${line}\n`;
      expect(() => parseThresholdConfig(text, 't'), line).toThrow(ThresholdConfigError);
      expect(() => parseThresholdConfig(text, 't'), line).toThrow(msg);
    }
  });

  it('refuses a second event_filter for a gid:sid from another file, naming both (the first was kept, silently)', () => {
    const a = parseThresholdConfig(
      'event_filter gen_id 1, sig_id 9, type limit, track by_src, count 1, seconds 1\n',
      'a',
    );
    const b = parseThresholdConfig(
      '\nthreshold gen_id 1, sig_id 9, type both, track by_dst, count 2, seconds 5\n',
      'b',
    );
    expect(() => new EventFilters([...a, ...b], {})).toThrow(
      'b:2: event_filter: gen_id 1, sig_id 9 already has one (a:1)',
    );
    // suppress entries for the same rule from several files all apply
    const s = parseThresholdConfig('suppress gen_id 1, sig_id 9, track by_src, ip 10.0.0.1\n', 's');
    expect(new EventFilters([...a, ...s, ...s], {}).rateOf(1, 9, undefined)?.suppress).toHaveLength(2);
  });

  it("checks a suppress ip's variables when an engine takes the entries", () => {
    const e = parseThresholdConfig('\nsuppress gen_id 1, sig_id 1, track by_src, ip $DNS_SERVERS\n', 't');
    expect(() => new EventFilters(e, {})).toThrow(
      "t:2: suppress: bad ip '$DNS_SERVERS': undefined variable $DNS_SERVERS",
    );
    expect(
      new EventFilters(e, { DNS_SERVERS: '[10.0.0.53,10.0.1.53]' }).rateOf(1, 1, undefined),
    ).toMatchObject({
      suppress: [{ track: 'by_src', ip: '[10.0.0.53,10.0.1.53]' }],
    });
  });

  it('never throws anything but its own error on random text', () => {
    const piece = fc.constantFrom(
      'suppress',
      'event_filter',
      'threshold',
      'rate_filter',
      ' new_action ',
      ' timeout ',
      ' apply_to ',
      'drop',
      'pass',
      ' gen_id ',
      ' sig_id ',
      ' type ',
      ' track ',
      ' count ',
      ' seconds ',
      ' ip ',
      'limit',
      'both',
      'by_src',
      'by_either',
      ',',
      '[',
      ']',
      '!',
      '$X',
      '10.0.0.0/8',
      '::1',
      '0',
      '1',
      '-1',
      '\\',
      '\n',
      '\r\n',
      '#',
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.array(piece, { maxLength: 40 }).map((p) => p.join('')),
        ),
        (text) => {
          try {
            new EventFilters(parseThresholdConfig(text, 'f'), { X: '10.0.0.1' });
          } catch (e) {
            expect(e).toBeInstanceOf(ThresholdConfigError);
            expect((e as Error).message).toMatch(/^f:\d+: [a-z_]+: /);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('threshold.config: alerts over crafted traffic', () => {
  it('suppress by_src with an ip list (CIDR, a host) or a negation holds those sources only; the stats count them', async () => {
    const cfg = thresholds(
      'suppress gen_id 1, sig_id 1, track by_src, ip [10.1.0.0/16, 192.0.2.7]\nsuppress gen_id 1, sig_id 1, track by_src, ip !192.0.2.0/24',
    );
    const pkts: [number, string][] = [
      [0, '10.1.1.1'], // in 10.1.0.0/16
      [1, '10.2.0.1'], // in neither list, outside the negated /24: held by the second entry
      [2, '192.0.2.7'], // in the list
      [3, '192.0.2.8'], // alerts
    ];
    const { alerts, r } = await run([rule(1), rule(2, '', 'gid:1; ')].join('\n'), pkts, cfg);
    expect(alerts.filter((a) => a.startsWith('1@'))).toEqual(['1@192.0.2.8']);
    expect(alerts.filter((a) => a.startsWith('2@'))).toHaveLength(4);
    expect(r.stats.alertsSuppressed).toBe(3);
    expect(r.stats.alertsRateFiltered).toBe(0);
    // by_dst and by_either look at the other address
    const dst = await run(
      rule(1),
      [
        [0, '10.0.0.1', '10.9.9.9'],
        [1, '10.9.9.9', '10.0.0.1'],
      ],
      thresholds('suppress gen_id 1, sig_id 1, track by_dst, ip 10.9.9.9'),
    );
    expect(dst.alerts).toEqual(['1@10.9.9.9']);
    const either = await run(
      rule(1),
      [
        [0, '10.0.0.1', '10.9.9.9'],
        [1, '10.9.9.9', '10.0.0.1'],
        [2, '10.0.0.1', '10.0.0.2'],
      ],
      thresholds('suppress gen_id 1, sig_id 1, track by_either, ip 10.9.9.9'),
    );
    expect(either.alerts).toEqual(['1@10.0.0.1']);
  });

  it('suppress with IPv6 CIDR, and without an ip (the rule never alerts)', async () => {
    const v6 = await run(
      rule(1),
      [[0, '10.0.0.1']],
      thresholds('suppress gen_id 1, sig_id 1, track by_src, ip 2001:db8::/32'),
    );
    expect(v6.alerts).toEqual(['1@10.0.0.1']); // an IPv4 source is not in an IPv6 prefix
    const all = await run(
      [rule(1), rule(2)].join('\n'),
      [
        [0, '10.0.0.1'],
        [1, '10.0.0.2'],
      ],
      thresholds('suppress gen_id 1, sig_id 2'),
    );
    expect(all.alerts).toEqual(['1@10.0.0.1', '1@10.0.0.2']);
    expect(all.r.stats.alertsSuppressed).toBe(2);
  });

  it('event_filter limit, threshold and both count per tracked address and window', async () => {
    // 10.0.0.1 matches at 0, 1, 2, 3, 4 s and again at 20 s (a new window); 10.0.0.2 at 0.5 s
    const pkts: [number, string][] = [
      [0, '10.0.0.1'],
      [0.5, '10.0.0.2'],
      [1, '10.0.0.1'],
      [2, '10.0.0.1'],
      [3, '10.0.0.1'],
      [4, '10.0.0.1'],
      [20, '10.0.0.1'],
    ];
    const of = async (line: string) => (await run(rule(1), pkts, thresholds(line))).alerts;
    expect(
      await of('event_filter gen_id 1, sig_id 1, type limit, track by_src, count 2, seconds 10'),
    ).toEqual(['1@10.0.0.1', '1@10.0.0.2', '1@10.0.0.1', '1@10.0.0.1']);
    // every 2nd match of a source within a window
    expect(
      await of('event_filter gen_id 1, sig_id 1, type threshold, track by_src, count 2, seconds 10'),
    ).toEqual(['1@10.0.0.1', '1@10.0.0.1']);
    // once per window, at the 3rd match
    expect(await of('threshold gen_id 1, sig_id 1, type both, track by_src, count 3, seconds 10')).toEqual([
      '1@10.0.0.1',
    ]);
    // by_rule: both sources count together
    const limit = await run(
      rule(1),
      pkts,
      thresholds('event_filter gen_id 1, sig_id 1, type limit, track by_rule, count 2, seconds 10'),
    );
    expect(limit.alerts).toEqual(['1@10.0.0.1', '1@10.0.0.2', '1@10.0.0.1']);
    expect(limit.r.stats.alertsRateFiltered).toBe(4);
  });

  it('sig_id 0 and gen_id 0 cover every rule, counting per gid:sid; a rule entry wins over them', async () => {
    const rules = [rule(1), rule(2), rule(3, '', 'gid:3; ')].join('\n');
    const pkts: [number, string][] = [
      [0, '10.0.0.1'],
      [1, '10.0.0.1'],
      [2, '10.0.0.1'],
    ];
    const gid1 = await run(
      rules,
      pkts,
      thresholds('event_filter gen_id 1, sig_id 0, type limit, track by_src, count 1, seconds 60'),
    );
    // sid 1 and sid 2 each alert once (counted apart), gid 3 is not covered
    expect(gid1.alerts.filter((a) => a === '1@10.0.0.1')).toHaveLength(1);
    expect(gid1.alerts.filter((a) => a === '2@10.0.0.1')).toHaveLength(1);
    expect(gid1.alerts.filter((a) => a === '3@10.0.0.1')).toHaveLength(3);
    const all = await run(
      rules,
      pkts,
      thresholds(
        'event_filter gen_id 0, sig_id 0, type limit, track by_src, count 2, seconds 60\nevent_filter gen_id 1, sig_id 2, type limit, track by_src, count -1, seconds 60\nevent_filter gen_id 3, sig_id 0, type limit, track by_src, count 1, seconds 60',
      ),
    );
    expect(all.alerts.filter((a) => a.startsWith('1@'))).toHaveLength(2); // the global entry
    expect(all.alerts.filter((a) => a.startsWith('2@'))).toHaveLength(3); // its own count -1: no filter
    expect(all.alerts.filter((a) => a.startsWith('3@'))).toHaveLength(1); // gen_id 3's wins over 0's
    const sup = await run(
      rules,
      pkts,
      thresholds('suppress gen_id 0, sig_id 0, track by_src, ip 10.0.0.0/8'),
    );
    expect(sup.alerts).toEqual([]);
    expect(sup.r.stats.alertsSuppressed).toBe(9);
  });

  it("a rule's own threshold: replaced by its sid's entry, kept against sig_id 0; detection_filter stays, asked first", async () => {
    const pkts: [number, string][] = [0, 1, 2, 3, 4, 5].map((s) => [s, '10.0.0.1']);
    const own = rule(1, 'threshold:type limit, track by_src, count 1, seconds 60; ');
    // without the file: the rule's limit 1
    expect((await run(own, pkts)).alerts).toHaveLength(1);
    expect(
      (
        await run(
          own,
          pkts,
          thresholds('event_filter gen_id 1, sig_id 1, type limit, track by_src, count 4, seconds 60'),
        )
      ).alerts,
    ).toHaveLength(4);
    expect(
      (
        await run(
          own,
          pkts,
          thresholds('event_filter gen_id 1, sig_id 1, type limit, track by_src, count -1, seconds 60'),
        )
      ).alerts,
    ).toHaveLength(6);
    expect(
      (
        await run(
          own,
          pkts,
          thresholds('event_filter gen_id 1, sig_id 0, type limit, track by_src, count 4, seconds 60'),
        )
      ).alerts,
    ).toHaveLength(1);
    // detection_filter: alerts after 2 matches (the 3rd to the 6th); the file's limit 2 then takes 2 of those
    const df = rule(1, 'detection_filter:track by_src, count 2, seconds 60; ');
    expect((await run(df, pkts)).alerts).toHaveLength(4);
    const both = await run(
      df,
      pkts,
      thresholds('event_filter gen_id 1, sig_id 1, type limit, track by_src, count 2, seconds 60'),
    );
    expect(both.alerts).toHaveLength(2);
    expect(both.r.stats.alertsRateFiltered).toBe(4);
    // a sig_id 0 entry leaves a rule with a detection_filter alone
    expect(
      (
        await run(
          df,
          pkts,
          thresholds('event_filter gen_id 1, sig_id 0, type limit, track by_src, count 1, seconds 60'),
        )
      ).alerts,
    ).toHaveLength(4);
  });

  it('leaves rules no entry covers with their own spec, the same object', () => {
    const f = new EventFilters(
      parseThresholdConfig(
        'suppress gen_id 1, sig_id 7\nevent_filter gen_id 2, sig_id 0, type limit, track by_src, count 1, seconds 1',
        't',
      ),
      {},
    );
    const own = parseRate('threshold', 'type limit, track by_src, count 1, seconds 60');
    expect(f.rateOf(1, 8, own)).toBe(own);
    expect(f.rateOf(1, 8, undefined)).toBeUndefined();
    expect(f.rateOf(2, 8, own)).toBe(own);
  });
});

describe('threshold and detection_filter decide the action too (IPS), as Suricata does', () => {
  const four: [number, string][] = [
    [0, '10.0.0.1'],
    [1, '10.0.0.1'],
    [2, '10.0.0.1'],
    [3, '10.0.0.1'],
  ];
  const drop = (opt: string) => `drop tcp-pkt any any -> any 8080 (msg:"d"; content:"MARK"; ${opt} sid:9;)`;
  async function verdicts(ruleText: string, opts: PipelineOptions = {}) {
    const { r } = await run(ruleText, four, { ips: true, ...opts });
    return { alerts: r.alerts.map((a) => a.pcapCnt), dropped: r.verdicts?.dropped, r };
  }

  it('a detection_filter up to its count is no match: the drop rule neither alerts nor drops (it dropped every packet)', async () => {
    const v = await verdicts(drop('detection_filter: track by_src, count 2, seconds 60;'));
    expect(v.alerts).toEqual([3, 4]);
    expect(v.dropped).toBe(2);
  });

  it('threshold type threshold and both short of their count: no match; limit and both past theirs: silent drops', async () => {
    const threshold = await verdicts(drop('threshold: type threshold, track by_src, count 2, seconds 60;'));
    expect(threshold.alerts).toEqual([2, 4]);
    expect(threshold.dropped).toBe(2);
    const limit = await verdicts(drop('threshold: type limit, track by_src, count 1, seconds 60;'));
    expect(limit.alerts).toEqual([1]);
    expect(limit.dropped).toBe(4);
    const both = await verdicts(drop('threshold: type both, track by_src, count 2, seconds 60;'));
    expect(both.alerts).toEqual([2]);
    expect(both.dropped).toBe(3);
    // a suppress entry holds the alert, never the drop
    const suppressed = await verdicts(drop(''), thresholds('suppress gen_id 1, sig_id 9'));
    expect(suppressed.alerts).toEqual([]);
    expect(suppressed.dropped).toBe(4);
    // a threshold.config event_filter of type threshold gates the same way
    const filtered = await verdicts(
      drop(''),
      thresholds('event_filter gen_id 1, sig_id 9, type threshold, track by_src, count 4, seconds 60'),
    );
    expect(filtered.alerts).toEqual([4]);
    expect(filtered.dropped).toBe(1);
  });

  it('is refused on workers, where the action would come before the count (IPS drop rules, alerting pass rules)', async () => {
    const pool = new ParallelRunner(2);
    try {
      await expect(
        pool.run(
          Readable.from([Buffer.from(encodePcap([]))]),
          loadRules(drop('detection_filter: track by_src, count 2, seconds 60;'), 't.rules').rules,
          { ips: true },
        ),
      ).rejects.toThrow(
        'rule 1:9: a drop rule whose detection_filter can hold a match back needs one engine with IPS',
      );
      // without IPS a drop rule's action does nothing: the same rule runs on workers
      const ids = await pool.run(
        Readable.from([Buffer.from(encodePcap([]))]),
        loadRules(drop('detection_filter: track by_src, count 2, seconds 60;'), 't.rules').rules,
        {},
      );
      expect(ids.rulesLoaded).toBe(1);
    } finally {
      await pool.close();
    }
  });
});

describe('threshold.config rate_filter: actions over crafted traffic', () => {
  /** Each alert as sid@src:action, and the run. */
  async function acts(ruleText: string, packets: [number, string, string?][], cfg: string, ips = true) {
    const { r } = await run(ruleText, packets, { ips, ...thresholds(cfg) });
    return { got: r.alerts.map((a) => `${a.sid}@${a.src}:${a.action}`), r };
  }

  it('past count in seconds, a tracked source gets new_action for timeout seconds, then counts afresh', async () => {
    const { got, r } = await acts(
      rule(1),
      [
        [0, '10.0.0.1'],
        [1, '10.0.0.1'],
        [2, '10.0.0.1'], // the third in 10 s: tripped until second 7
        [3, '10.0.0.1'],
        [3, '10.0.0.2'], // another source, its own count
        [9, '10.0.0.1'], // past the timeout: a new window
        [10, '10.0.0.1'],
      ],
      'rate_filter gen_id 1, sig_id 1, track by_src, count 2, seconds 10, new_action drop, timeout 5',
    );
    expect(got).toEqual([
      '1@10.0.0.1:alert',
      '1@10.0.0.1:alert',
      '1@10.0.0.1:drop',
      '1@10.0.0.1:drop',
      '1@10.0.0.2:alert',
      '1@10.0.0.1:alert',
      '1@10.0.0.1:alert',
    ]);
    expect(r.stats.actionsRateFiltered).toBe(2);
    expect(r.verdicts).toMatchObject({ dropped: 2, passed: 5 });
    // without --ips the action is what the alert says, no packet is dropped
    const ids = await acts(
      rule(1),
      [
        [0, '10.0.0.1'],
        [0, '10.0.0.1'],
      ],
      'rate_filter gen_id 1, sig_id 1, track by_rule, count 1, seconds 10, new_action drop, timeout 0',
      false,
    );
    expect(ids.got).toEqual(['1@10.0.0.1:alert', '1@10.0.0.1:drop']);
    expect(ids.r.verdicts).toBeUndefined();
  });

  it('new_action pass: no alert, and the rules after it on the packet are cut; timeout 0 lasts', async () => {
    const { got, r } = await acts(
      [rule(1), rule(2)].join('\n'),
      [
        [0, '10.0.0.1'],
        [1, '10.0.0.1'],
        [100, '10.0.0.1'],
        [1000, '10.0.0.1'],
      ],
      'rate_filter gen_id 1, sig_id 1, track by_rule, count 1, seconds 10, new_action pass, timeout 0',
    );
    expect(got).toEqual(['1@10.0.0.1:alert', '2@10.0.0.1:alert']);
    expect(r.stats.actionsRateFiltered).toBe(3);
    expect(r.verdicts).toMatchObject({ dropped: 0, passed: 4 });
  });

  it('a drop rule relaxed to alert; apply_to limits the sources; the first tripped of several gives the action', async () => {
    const drop = 'drop tcp-pkt any any -> any 8080 (msg:"d"; content:"MARK"; sid:7;)';
    const relaxed = await acts(
      drop,
      [
        [0, '10.0.0.1'],
        [0, '10.0.0.1'],
        [0, '192.0.2.1'],
        [0, '192.0.2.1'],
      ],
      'rate_filter gen_id 1, sig_id 7, track by_src, count 1, seconds 10, new_action alert, timeout 60, apply_to 10.0.0.0/8',
    );
    expect(relaxed.got).toEqual([
      '7@10.0.0.1:drop',
      '7@10.0.0.1:alert',
      '7@192.0.2.1:drop',
      '7@192.0.2.1:drop',
    ]);
    expect(relaxed.r.verdicts).toMatchObject({ dropped: 3 });
    // two filters: by_rule trips on the 3rd match, by_src on the 2nd of a source; the file's first wins
    const both = await acts(
      rule(1),
      [
        [0, '10.0.0.1'],
        [0, '10.0.0.2'],
        [0, '10.0.0.2'],
        [0, '10.0.0.3'],
      ],
      [
        'rate_filter gen_id 1, sig_id 0, track by_rule, count 2, seconds 10, new_action reject, timeout 60',
        'rate_filter gen_id 1, sig_id 1, track by_src, count 1, seconds 10, new_action drop, timeout 60',
      ].join('\n'),
    );
    expect(both.got).toEqual([
      '1@10.0.0.1:alert',
      '1@10.0.0.2:alert',
      '1@10.0.0.2:reject',
      '1@10.0.0.3:reject',
    ]);
  });

  it('suppress and event_filter still govern the alerts of the new action', async () => {
    const { got, r } = await acts(
      rule(1),
      [
        [0, '10.0.0.1'],
        [0, '10.0.0.1'],
        [0, '10.0.0.1'],
      ],
      [
        'rate_filter gen_id 1, sig_id 1, track by_src, count 1, seconds 10, new_action drop, timeout 60',
        'event_filter gen_id 1, sig_id 1, type limit, track by_src, count 2, seconds 60',
      ].join('\n'),
    );
    expect(got).toEqual(['1@10.0.0.1:alert', '1@10.0.0.1:drop']);
    // the third match alerts no more, but its action still drops the packet
    expect(r.verdicts).toMatchObject({ dropped: 2 });
    expect(r.stats).toMatchObject({ alertsRateFiltered: 1, actionsRateFiltered: 2 });
  });

  it('is refused on several workers with IPS, naming the entry; variables in apply_to are replaced', async () => {
    const cfg = parseThresholdConfig(
      'rate_filter gen_id 1, sig_id 1, track by_src, count 1, seconds 10, new_action drop, timeout 60, apply_to $NETS',
      'r.config',
    );
    const pool = new ParallelRunner(2);
    try {
      await expect(
        pool.run(Readable.from([Buffer.from(encodePcap([]))]), loadRules(rule(1), 't.rules').rules, {
          thresholdConfig: cfg,
          ips: true,
        }),
      ).rejects.toThrow('r.config:1: rate_filter with IPS needs one engine');
    } finally {
      await pool.close();
    }
    expect(() => new EventFilters(cfg, {})).toThrow(
      "r.config:1: rate_filter: bad apply_to '$NETS': undefined variable $NETS",
    );
    // a run without the variable fails before any packet, naming the entry
    await expect(
      acts(
        rule(1),
        [[0, '10.0.0.1']],
        'rate_filter gen_id 1, sig_id 1, track by_src, count 1, seconds 10, new_action drop, timeout 60, apply_to $NETS',
      ),
    ).rejects.toThrow('rate_filter: bad apply_to');
    const withVars = await run(
      rule(1),
      [
        [0, '10.0.0.1'],
        [0, '10.0.0.1'],
      ],
      { ips: true, vars: { NETS: '10.0.0.0/8' }, thresholdConfig: cfg },
    );
    expect(withVars.r.alerts.map((a) => a.action)).toEqual(['alert', 'drop']);
  });
});

describe('strata ids --classification and --threshold-file', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ids-event-config-'));
    writeFileSync(
      join(dir, 'r.rules'),
      [rule(1, 'classtype:local-thing; '), rule(2, 'classtype:misc-activity; ')].join('\n'),
    );
    const frames = ['10.0.0.1', '10.0.0.2', '10.0.0.1'].map((src, i) => ({
      tsUs: t0Us + i * 1e6,
      data: tcpFrame({ src, dst: '10.9.9.9', sp: 20_000 + i, dp: 8080, seq: 1, payload: 'MARK' }),
    }));
    writeFileSync(join(dir, 'c.pcap'), encodePcap(frames));
    writeFileSync(join(dir, 'classification.config'), 'config classification: local-thing,A Local Thing,1\n');
    writeFileSync(join(dir, 'site.config'), 'config classification: misc-activity,Site Misc,4\n');
    writeFileSync(
      join(dir, 'threshold.config'),
      'suppress gen_id 1, sig_id 2, track by_src, ip 10.0.0.2\nevent_filter gen_id 1, sig_id 1, type limit, track by_rule, count 1, seconds 60\n',
    );
    writeFileSync(
      join(dir, 'bad.config'),
      '# ok\nevent_filter gen_id 1, sig_id 1, type limit, track by_src, count 1\n',
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function ids(args: string[]) {
    const c = captureIo('', {}, dir);
    const rc = await runCommand(commands[0]!, ['--rules', 'r.rules', 'c.pcap', ...args], c.io);
    return { rc, out: c.stdout(), err: c.stderr() };
  }

  it('without the files: the rule of an unknown class is not loaded, and said so', async () => {
    const r = await ids([]);
    expect(r.rc).toBe(0);
    expect(r.err).toContain("1 rules loaded, 1 skipped; 1 x classtype: unknown class 'local-thing'");
  });

  it("loads the classes (a later file wins), applies the thresholds, prints a file's descriptions, counts", async () => {
    const r = await ids([
      '--classification',
      'classification.config',
      '--classification',
      'site.config',
      '--threshold-file',
      'threshold.config',
      '--stats',
      's.json',
    ]);
    expect(r.rc).toBe(0);
    const lines = r.out.trim().split('\n');
    // sid 1: limit 1 over the rule; sid 2: 10.0.0.2 suppressed
    expect(lines.map((l) => /\[1:(\d+):0\]/.exec(l)?.[1])).toEqual(['1', '2', '2']);
    expect(lines[0]).toContain('[Classification: A Local Thing] [Priority: 1]');
    expect(lines[1]).toContain('[Classification: Site Misc] [Priority: 4]');
    const stats = JSON.parse(readFileSync(join(dir, 's.json'), 'utf8'));
    expect(stats).toMatchObject({ alerts: 3, alertsSuppressed: 1, alertsRateFiltered: 2, rulesLoaded: 2 });
    // on 2 workers the merger decides: the same alerts
    const two = await ids([
      '--classification',
      'classification.config',
      '--classification',
      'site.config',
      '--threshold-file',
      'threshold.config',
      '--workers',
      '2',
      '--stats',
      's2.json',
    ]);
    expect(two.out).toBe(r.out);
    // and the same counts (the merger's: they were 0 on workers)
    expect(JSON.parse(readFileSync(join(dir, 's2.json'), 'utf8'))).toMatchObject({
      alerts: 3,
      alertsSuppressed: 1,
      alertsRateFiltered: 2,
    });
    const json = await ids(['--classification', 'classification.config', '--format', 'json']);
    expect(JSON.parse(json.out.trim().split('\n')[0]!).alert).toMatchObject({
      category: 'A Local Thing',
      severity: 1,
    });
  });

  it('warns of an entry for a gid:sid no loaded rule has, even with --quiet, and runs on', async () => {
    writeFileSync(join(dir, 'typo.config'), 'suppress gen_id 1, sig_id 1\nsuppress gen_id 1, sig_id 11\n');
    for (const quiet of [[], ['--quiet']]) {
      const r = await ids(['--threshold-file', 'typo.config', ...quiet]);
      expect(r.rc).toBe(0);
      expect(r.err).toContain(
        'strata ids: warning: typo.config:2: suppress gen_id 1, sig_id 11: no rule loaded has this gid:sid (the entry does nothing)\n',
      );
      // sid 1 did not load (its class is unknown without the file): warned of too
      expect(r.err).toContain('typo.config:1: suppress gen_id 1, sig_id 1: no rule loaded');
    }
  });

  it('a bad file fails before any capture is read, naming file:line and the field', async () => {
    const r = await ids(['--threshold-file', 'bad.config']);
    expect(r.rc).not.toBe(0);
    expect(r.err).toContain('bad.config:2: event_filter: seconds is missing');
    const missing = await ids(['--classification', 'nope.config']);
    expect(missing.err).toContain('--classification nope.config: ENOENT');
  });

  it('rate_filter: changes actions and counts them, on one thread and 2 workers; refused with --workers and --ips before any capture', async () => {
    writeFileSync(
      join(dir, 'rate.config'),
      'rate_filter gen_id 1, sig_id 2, track by_rule, count 1, seconds 60, new_action drop, timeout 0\n',
    );
    const args = ['--classification', 'site.config', '--threshold-file', 'rate.config'];
    // sid 2 matches three packets: the first keeps its alert action, the next two drop
    const one = await ids([...args, '--ips']);
    expect(one.rc).toBe(0);
    expect(one.err).toContain('1 passed, 2 dropped');
    expect(one.err).toContain('(0 suppressed, 0 held by thresholds, 2 actions changed by rate_filter)');
    const stats = await ids([...args, '--stats', 'r.json']);
    expect(stats.rc).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'))).toMatchObject({ actionsRateFiltered: 2 });
    // without IPS the new action is the alert's: the same lines and counts on one thread and on workers
    const ids1 = await ids(args);
    const ids2 = await ids([...args, '--workers', '2', '--ordered']);
    expect(ids1.rc).toBe(0);
    expect(ids2.rc).toBe(0);
    // (the lines do not show the action without IPS, where nothing is blocked; the API tests above do)
    expect(ids1.out.split('\n').filter((l) => l.includes('[1:2:0]')).length).toBe(3);
    expect(ids2.out).toBe(ids1.out);
    expect(ids1.err).toContain('2 actions changed by rate_filter');
    expect(ids2.err).toContain('2 actions changed by rate_filter');
    const two = await ids([...args, '--workers', '2', '--ips']);
    expect(two.rc).not.toBe(0);
    expect(two.err).toContain('rate.config:1: rate_filter with IPS needs one engine');
    expect(two.out).toBe('');
  });
});

describe('output with a classification.config', () => {
  it('alert_fast and eve describe a class by the table given (any case), the built-in one by default', async () => {
    const lib = await import('../src/index.js');
    const table = lib.classificationTable(
      lib.parseClassificationConfig('config classification: local-thing,A Local Thing,1\n'),
    );
    const a = {
      tsUs: 1_700_000_000_000_000,
      gid: 1,
      sid: 7,
      rev: 1,
      msg: 'm [Classification: x]',
      classtype: 'Local-Thing',
      priority: 1,
      proto: 'TCP',
      src: '10.0.0.1',
      srcPort: 1,
      dst: '10.0.0.2',
      dstPort: 2,
    } as unknown as import('../src/index.js').Alert;
    expect([a].map(lib.alertFastWith(table))[0]).toContain(
      '[**] [Classification: A Local Thing] [Priority: 1]',
    );
    expect(lib.alertFast(a)).toContain('[**] [Classification: Local-Thing] [Priority: 1]');
    expect((lib.eveJsonWith(table)(a).alert as { category: string }).category).toBe('A Local Thing');
    // as map callbacks, the plain forms take no index for a table
    expect([a].map(lib.eveJson)[0]!.alert).toMatchObject({ category: 'Local-Thing' });
    expect(lib.classDescription('Bad-Unknown')).toBe('Potentially Bad Traffic');
  });
});
