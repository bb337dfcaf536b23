// Option values Snort 3 refuses at load, refused here naming the option and its value: each was taken
// before and then ignored, misread or never matched on.
import { describe, expect, it } from 'vitest';
import { Engine, parseRule, parseRules } from '../src/index.js';

const rule = (opts: string, proto = 'tcp') => parseRule(`alert ${proto} any any -> any any (${opts} sid:1;)`);

/** The reason the engine gives for skipping a rule with these options, or undefined when it loads it. */
function refusal(opts: string, proto = 'tcp'): string | undefined {
  const set = parseRules(`alert ${proto} any any -> any any (${opts} sid:1;)`);
  if (set.errors.length > 0) return set.errors[0]!.message;
  return new Engine(set.rules).skipped[0]?.reason;
}

/** Each rule's options refused with its message, each rule of `ok` loaded. */
function checks(refused: readonly (readonly [string, string])[], ok: readonly string[]): void {
  for (const [opts, msg] of refused) expect(refusal(opts), opts).toBe(msg);
  for (const opts of ok) expect(refusal(opts), opts).toBeUndefined();
}

describe('content modifiers', () => {
  it('refuses an absolute modifier (offset, depth) with a relative one (distance, within) on one content', () => {
    // Snort 3 (ips_content.cc: "offset can't be used with itself, distance, or within", and the same for
    // depth, distance and within); before, the offset and depth were dropped when distance or within came
    for (const [opts, msg] of [
      ['content:"a"; content:"b"; offset:1; distance:2;', 'distance with offset on one content'],
      ['content:"a"; content:"b"; within:5; depth:9;', 'depth with within on one content'],
      ['content:"a"; content:"b",distance 1,offset 3;', 'offset with distance on one content'],
      ['content:"a"; content:"b",depth 4,within 4;', 'within with depth on one content'],
      ['byte_extract:1,0,n; content:"b"; offset:n; within:4;', 'within with offset on one content'],
    ] as const)
      expect(() => rule(opts), opts).toThrow(msg);
    expect(() => rule('content:"a"; content:"b"; offset:1; distance:2;')).toThrow(
      /^<rule>:1:\d+: distance with offset/,
    );
    // one kind per content, as the community rules write them
    for (const opts of [
      'content:"a"; offset:1; depth:4; content:"b"; distance:2; within:5;',
      'content:"a",offset 1,depth 4; content:"b",distance 0,within 3;',
    ])
      expect(rule(opts).contents.length, opts).toBe(2);
  });
});

describe('flow, flags and flowbits', () => {
  it('refuses flow:stateless with a direction or a state, as Snort 3 does', () => {
    // ips_flow.cc: "can't use flow: stateless option with other options", "can't specify established and
    // stateless options in same rule" (and unestablished); before, stateless was ignored
    checks(
      [
        ['flow:stateless,to_server;', "flow: 'stateless,to_server' asks for stateless and to_server"],
        ['flow:from_server, stateless;', "flow: 'from_server, stateless' asks for stateless and from_server"],
        ['flow:stateless,established;', "flow: 'stateless,established' asks for stateless and established"],
        [
          'flow:not_established,stateless;',
          "flow: 'not_established,stateless' asks for stateless and not_established",
        ],
      ],
      [
        'flow:stateless;',
        'flow:stateless,no_stream;',
        'flow:to_server,established;',
        'flow:established, to_server;',
      ],
    );
  });

  it('refuses an empty flags test, an unknown mask letter and a third field, and takes lower case, as Snort 3', () => {
    // ips_flags.cc: "flags missing in TCP flag rule", "bad TCP flag" in the test and in the mask; before, a mask
    // letter it did not know was skipped (the flag was tested after all) and 'flags:s' was refused
    checks(
      [
        ['flags:;', "flags: no flags given (0 for none), got ''"],
        ['flags:S,Q;', "flags: unknown flag 'Q' in the mask of 'S,Q' (F S R P A U C E, 1 2)"],
        ['flags:S,+;', "flags: unknown flag '+' in the mask of 'S,+' (F S R P A U C E, 1 2)"],
        ['flags:S,0;', "flags: unknown flag '0' in the mask of 'S,0' (F S R P A U C E, 1 2)"],
        ['flags:S,;', "flags: an empty mask in 'S,'"],
        ['flags:S,A,F;', "flags: expected FLAGS[,MASK], got 'S,A,F'"],
        ['flags:SX;', "flags: unknown flag 'X' in 'SX' (F S R P A U C E, 1 2, 0, and + * !)"],
      ],
      ['flags:S;', 'flags:sa;', 'flags:A+;', 'flags:SA,12;', 'flags:RSF*;', 'flags:0;', 'flags:!F,ce;'],
    );
    const e = new Engine(parseRules('alert tcp any any -> any any (flags:sa; sid:1;)').rules);
    expect(e.skipped).toEqual([]);
  });

  it('refuses flowbits forms Snort 3 refuses: noalert with names, groups, | with & or with set', () => {
    // ips_flowbits.cc: noalert takes no name, '|' and '&' are not used together, set/unset/toggle join with
    // '&'; a third field (Snort 2's group) is not read here. Before: the names and the group were ignored
    // (isset,any,G tested a bit named 'any'), a|b&c was a|b|c
    checks(
      [
        ['flowbits:noalert,a;', "flowbits:noalert takes no bit names, got 'a'"],
        ['flowbits:isset,any,grp;', "flowbits:isset: groups of bits are not supported, got 'isset,any,grp'"],
        ['flowbits:isset,a|b&c;', "flowbits:isset: '|' and '&' in one list, got 'a|b&c'"],
        ['flowbits:set,a|b;', "flowbits:set takes bits joined by '&' (all of them), got 'a|b'"],
        ['flowbits:unset,a|b;', "flowbits:unset takes bits joined by '&' (all of them), got 'a|b'"],
      ],
      [
        'flowbits:noalert;',
        'flowbits:isset,file.rtf|file.doc;',
        'flowbits:isnotset,a&b;',
        'flowbits:set,file.exploit_kit.jar&file.exploit_kit.pdf;',
        'flowbits:toggle,a;',
      ],
    );
  });
});

describe('byte_test, byte_jump and byte_extract', () => {
  it('refuses what Snort 3 refuses when the option ends: a wide bitmask, a base without string, and the rest', () => {
    // ips_byte_test.cc, ips_byte_jump.cc, ips_byte_extract.cc: "Number of bytes in bitmask value is greater
    // than bytes to extract"; byte_extract: a conversion type without "string", a negative offset without
    // relative, offset -65535:65535; byte_jump: from_beginning and from_end together; a number is strtol's
    // (else a variable name). Before: the mask's high bits never matched, hex without string read text where
    // Snort reads binary, from_beginning won, a fractional offset read nothing
    checks(
      [
        [
          'byte_test:1,>,5,0,bitmask 0x1ff;',
          'byte_test: bitmask 0x1ff is 2 bytes wide, wider than the 1 read',
        ],
        [
          'byte_jump:2,0,bitmask 0x10000;',
          'byte_jump: bitmask 0x10000 is 3 bytes wide, wider than the 2 read',
        ],
        ['byte_jump:0,0,bitmask 1;', 'byte_jump: bitmask 0x1 is 1 bytes wide, wider than the 0 read'],
        [
          'byte_extract:1,0,n,bitmask 0xfff;',
          'byte_extract: bitmask 0xfff is 2 bytes wide, wider than the 1 read',
        ],
        ['byte_test:4,>,5,0,hex;', "byte_test: hex needs 'string' (a number as text)"],
        ['byte_jump:4,0,oct,relative;', "byte_jump: oct needs 'string' (a number as text)"],
        ['byte_extract:4,0,n,dec;', "byte_extract: dec needs 'string' (a number as text)"],
        ['byte_jump:4,0,from_beginning,from_end;', 'byte_jump: from_beginning and from_end together'],
        ['byte_extract:1,-2,n;', "byte_extract: a negative offset (-2) needs 'relative'"],
        ['byte_extract:1,70000,n;', 'byte_extract: offset 70000 is out of range (-65535 to 65535)'],
        ['byte_test:4,>,5,1.5;', "byte_test offset: expected a whole number, got '1.5'"],
        ['byte_test:4,>,1e3,0;', "byte_test value: expected a whole number, got '1e3'"],
        ['byte_jump:4,0x1.8;', "byte_jump offset: expected a whole number, got '0x1.8'"],
      ],
      [
        'byte_test:2,=,1,0,bitmask 0x0ff0;',
        'byte_test:4,>,0,0,bitmask 0xffffffff;',
        'byte_test:1,!&,0xF8,2;',
        'byte_test:10,>,0x7fff,0,relative,string,dec;',
        'byte_test:1,=,0x12,0,string,hex,relative;',
        'byte_test:4,>,5,-4,relative,little;',
        'byte_jump:2,-18,little,relative,from_beginning,post_offset 4;',
        'byte_jump:4,0,string,oct,from_end;',
        'byte_extract:2,-2,n,relative,string,hex; byte_test:1,=,n,0;',
      ],
    );
  });
});

describe('lengths and rates', () => {
  it('refuses words after a bufferlen, bsize or urilen length that are not read', () => {
    // Snort 3's bufferlen takes a range and `relative`, urilen a range and raw|norm (ips_bufferlen.cc,
    // ips_urilen.cc); before, anything after the comma was ignored (relative too: the whole buffer was
    // measured) and urilen read any other word as norm
    checks(
      [
        ['bufferlen:5,foo;', "bufferlen: expected a length or a range, got '5,foo'"],
        ['bsize:5<=>9,x;', "bsize: expected a length or a range, got '5<=>9,x'"],
        ['bufferlen:>5,relative;', 'bufferlen: relative (the length left after the cursor) is not supported'],
        ['urilen:5,nrom;', "urilen: expected LENGTH[, raw|norm], got '5,nrom'"],
        ['urilen:5,raw,raw;', "urilen: expected LENGTH[, raw|norm], got '5,raw,raw'"],
      ],
      [
        'bufferlen:11<=>20;',
        'bufferlen:<10;',
        'bsize:>0;',
        'urilen:30<>40,raw;',
        'urilen:5, norm;',
        'urilen:<9;',
      ],
    );
  });

  it('refuses a detection_filter or threshold field it does not read or given twice, and detection_filter seconds 0', () => {
    // Snort 3's detection_filter takes track, count (1:) and seconds (1:) (ips_detection_filter.cc); before,
    // an unknown field was ignored (detection_filter's `type limit`, a misspelt `multplier`), the last of
    // two was taken, and seconds 0 held each match alone
    checks(
      [
        [
          'detection_filter:track by_src, count 5, seconds 60, type limit;',
          "detection_filter: unknown field 'type' (track, count, seconds, unique_on)",
        ],
        [
          'threshold:type backoff, track by_src, count 1, multplier 10;',
          "threshold: unknown field 'multplier' (type, track, count, seconds, multiplier, unique_on)",
        ],
        [
          'threshold:type limit, track by_src, count 1, seconds 60, count 3;',
          'threshold: count is given twice',
        ],
        ['detection_filter:track by_dst, count 2, seconds 0;', 'detection_filter: seconds 0 is below 1'],
      ],
      [
        'detection_filter:track by_dst,count 10,seconds 10;',
        'detection_filter:track by_src, count 100, seconds 25;',
        'threshold:type limit, track by_src, count 1, seconds 60;',
        'threshold:type both, track by_dst, count 2, seconds 0;',
        'threshold:type backoff, track by_flow, count 1, multiplier 10;',
        'detection_filter:track by_dst, count 5, seconds 60, unique_on dst_port;',
      ],
    );
  });
});

describe('keywords without a value', () => {
  it('refuses a value on nocase, rawbytes, startswith, endswith, noalert and alert, and startswith with no content', () => {
    // Snort 3's nocase and rawbytes are implied parameters (no value); before, a value was ignored, and a
    // startswith or endswith before any content was dropped
    checks(
      [
        ['content:"a"; nocase:foo;', "nocase takes no value, got 'foo'"],
        ['content:"a"; rawbytes:1;', "rawbytes takes no value, got '1'"],
        ['content:"a"; startswith:x;', "startswith takes no value, got 'x'"],
        ['content:"a"; endswith:;', "endswith takes no value, got ''"],
        ['noalert:yes;', "noalert takes no value, got 'yes'"],
        ['startswith; content:"a";', 'startswith must follow a content'],
        ['endswith; content:"a";', 'endswith must follow a content'],
      ],
      ['content:"a"; nocase; rawbytes;', 'content:"a"; startswith; content:"b"; endswith;', 'noalert;'],
    );
  });
});
