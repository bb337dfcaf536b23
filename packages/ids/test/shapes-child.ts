// Run by shapes.test.ts as `node --allow-natives-syntax --import tsx shapes-child.ts`: one engine's
// Pipeline inspects TCP traffic whose sequence numbers and timestamps are past V8's small integers, with
// its packet path optimized, then a second Pipeline is built; prints JSON saying whether the packet path
// is still optimized and the objects it is optimized on kept their shapes (V8's maps).
import { ACK, loadRules, PacketRecord, Pipeline, PSH, SYN, tcpFrame } from '../src/index.js';

const same = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
const status = new Function('f', 'return %GetOptimizationStatus(f)') as (f: unknown) => number;
const prepare = new Function('f', '%PrepareFunctionForOptimization(f)') as (f: unknown) => void;
const optimize = new Function('f', '%OptimizeFunctionOnNextCall(f)') as (f: unknown) => void;
/** V8's OptimizationStatus bit for code optimized by TurboFan. */
const turboFanned = 64;

const rules = loadRules(
  'alert tcp any any -> any 80 (msg:"t"; flow:established,to_server; content:"GET"; sid:1; rev:1;)',
  't.rules',
).rules;
const before = new PacketRecord();
const a = new Pipeline(rules);
// a conversation whose sequence numbers are past 2^30 (V8's small integers), at microseconds of 2026
const c = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: 80 };
const s = { src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000 };
const cs = 0xc0000000;
const ss = 0xd0000000;
const req = 'GET / HTTP/1.0\r\n\r\n';
const frames = [
  tcpFrame({ ...c, flags: SYN, seq: cs }),
  tcpFrame({ ...s, flags: SYN | ACK, seq: ss, ack: cs + 1 }),
  tcpFrame({ ...c, flags: ACK, seq: cs + 1, ack: ss + 1 }),
  tcpFrame({ ...c, flags: ACK | PSH, seq: cs + 1, ack: ss + 1, payload: req }),
  tcpFrame({ ...s, flags: ACK, seq: ss + 1, ack: cs + 1 + req.length }),
];
let alerts = 0;
for (let i = 0; i < frames.length; i++)
  alerts += a.push({
    tsUs: 1_780_000_000_000_000 + i * 1000,
    linkType: 1,
    data: frames[i]!,
    origLength: frames[i]!.length,
  }).length;
alerts += a.finish().length;
// the packet path optimized on the first Pipeline (push inlines prepare and inspectPrepared)
const push = Pipeline.prototype.push;
prepare(push);
const data = frames[4]!;
for (let i = 0; i < 20; i++)
  a.push({ tsUs: 1_780_000_000_100_000 + i, linkType: 1, data, origLength: data.length });
optimize(push);
a.push({ tsUs: 1_780_000_000_200_000, linkType: 1, data, origLength: data.length });
const optimizedBefore = (status(push) & turboFanned) !== 0;
const b = new Pipeline(rules);
const optimizedAfter = (status(push) & turboFanned) !== 0;
const inner = (p: Pipeline) => p as unknown as { record: object; prepared: object; verdict: object };
console.log(
  JSON.stringify({
    alerts,
    optimizedBefore,
    optimizedAfter,
    record: same(before, new PacketRecord()) && same(inner(a).record, inner(b).record),
    prepared: same(inner(a).prepared, inner(b).prepared),
    verdict: same(inner(a).verdict, inner(b).verdict),
  }),
);
