/**
 * @strata/ids: the foundations of a Pigasus-style intrusion detection engine: streaming pcap/pcapng
 * readers, packet decoding, and a Snort 3 / Snort 2.9 / Suricata rule parser. Detection (flows,
 * reassembly, the staged matcher) is not written yet, so no `strata ids` command is registered.
 */
import type { Command, DemoStep } from '@strata/cli';

export {
  type Decoded,
  type DecodeFailure,
  type DecodeStats,
  decode,
  newDecodeStats,
  Proto,
} from './decode.js';
export { blockBytesMax, CaptureError, type Packet, readCapture } from './pcap.js';
export {
  bufferKeywords,
  type ContentMatch,
  knownKeywords,
  parseContent,
  parseRule,
  parseRules,
  type Rule,
  type RuleOption,
  type RuleSet,
  RuleSyntaxError,
} from './rules.js';

/** No subcommand yet: `strata ids` comes with detection. */
export const commands: Command[] = [];

/** No demo step yet: it comes with detection. */
export const demos: DemoStep[] = [];
