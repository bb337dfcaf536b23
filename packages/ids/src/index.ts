/**
 * @strata/ids: a Pigasus-style intrusion detection and prevention engine in progress: streaming pcap/pcapng
 * readers and a pcap writer, packet decoding and defragmentation, flows and TCP reassembly, HTTP/1.x
 * inspection, SMTP/POP3/IMAP with MIME decoding, a Snort 3 / Snort 2.9 / Suricata rule parser, port groups
 * and a multi-string prefilter in front of the full matcher, IPS verdicts (Suricata's semantics), and worker
 * threads sharding flows.
 */

export { BpfSyntaxError, compileFilter, type PacketFilter } from './bpf.js';
export {
  type Classification,
  ClassificationConfigError,
  type ClassificationEntry,
  classDescription,
  classifications,
  classificationTable,
  parseClassificationConfig,
} from './classification.js';
export { commands, demos } from './cli.js';
export { pcreBacktracksMaxDefault, pcreShortMax, pcreStepsMin, pcreStepsPerByteDefault } from './compile.js';
export { threadCpuMs } from './cpu.js';
export {
  ACK,
  conversationFrames,
  FIN,
  ipv4Bytes,
  PSH,
  RST,
  SYN,
  type TcpSegment,
  tcpFrame,
} from './craft.js';
export {
  type Decoded,
  type DecodeFailure,
  type DecodeStats,
  decode,
  decodeInto,
  type FragmentInfo,
  newDecodeStats,
  PacketRecord,
  Proto,
  tunnelDepthMax,
} from './decode.js';
export {
  Defragmenter,
  type DefragOptions,
  type DefragStats,
  datagramBytesMax,
} from './defrag.js';
export { Engine } from './detect.js';
export {
  type Alert,
  defaultVars,
  type EngineOptions,
  type EngineStats,
  inspectionRecursionMaxDefault,
  type PacketLatencyOptions,
  type PacketVerdict,
  type RuleLatencyOptions,
  type RuleLatencyRecord,
  type RuleProfileRow,
} from './engine-api.js';
export {
  type AppliedPolicy,
  type ExceptionKind,
  type ExceptionPolicy,
  type ExceptionPolicyOptions,
  exceptionKinds,
  exceptionPolicies,
  parseExceptionPolicyArgs,
  type ResolvedPolicies,
  resolveExceptionPolicies,
} from './exception-policy.js';
export {
  cuckooKicksMax,
  defaultFlowTimeouts,
  type EvictReason,
  Flow,
  type FlowOptions,
  FlowTable,
  type FlowTableOptions,
  type FlowTableStats,
  type FlowTimeouts,
  flowKeyBytes,
  slotsPerBucket,
  TcpState,
  tcpUpdate,
} from './flow.js';
export { portGroupsMax } from './groups.js';
export {
  decodeContent,
  defaultHttpBodyBytesMax,
  defaultHttpDecompressedBytesMax,
  type HttpAnomalies,
  type HttpBudget,
  type HttpEvents,
  type HttpField,
  type HttpMessage,
  type HttpOptions,
  HttpParser,
  HttpSession,
  httpHeaderBytesMax,
  httpPipelinedMax,
  newHttpAnomalies,
  normalizeUri,
  percentDecode,
  simplifyPath,
} from './http.js';
export { HttpBuffers, uriComponents } from './http-buffers.js';
export {
  commandsPendingMax,
  defaultMailMessageBytesMax,
  type MailAnomalies,
  type MailEvents,
  type MailMessage,
  type MailOptions,
  type MailProtocol,
  MailSession,
  mailLineBytesMax,
  newMailAnomalies,
} from './mail.js';
export { pcreRoute, ruleStepsMax } from './match.js';
export {
  base64Decode,
  contentType,
  defaultMimePartBytesMax,
  type MimeAnomalies,
  type MimeField,
  type MimeOptions,
  type MimePart,
  mimeBoundaryBytesMax,
  mimeDepthMax,
  mimeFieldsMax,
  mimeHeaderBytesMax,
  mimePartsMax,
  newMimeAnomalies,
  parseMime,
  qpDecode,
  uuDecode,
} from './mime.js';
export { addrTest, portTest } from './netspec.js';
export { alertFast, alertFastWith, eveJson, eveJsonWith, eveTimestamp } from './output.js';
export {
  batchBytesMax,
  batchesInFlightMax,
  batchPacketsMax,
  heldPacketsMax,
  type ParallelResult,
  ParallelRunner,
  runCaptureParallel,
  type WorkerLoad,
  workerShare,
  workersMax,
} from './parallel.js';
export {
  blockBytesMax,
  CaptureError,
  encodePcap,
  type Packet,
  PcapWriter,
  readCapture,
  readCaptureBatches,
  readCaptureBatchesToCut,
  TruncatedCaptureError,
} from './pcap.js';
export {
  compilePcre,
  firstExecGuarded,
  leadingLoopGuarded,
  lineStartLoopGuarded,
  literalLoopGuarded,
  type PcreOptions,
  pcreNestMax,
  pcreToJs,
  translatePcre,
} from './pcre.js';
export { type RejectTarget, rejectFrames, rejectTargetOf } from './reject.js';
export {
  bufferAliases,
  bufferKeywords,
  bufferParams,
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
export {
  type CaptureInput,
  captureStream,
  checksumSamplePackets,
  inspectPrepared,
  loadRules,
  Pipeline,
  type PipelineOptions,
  type PreparedPacket,
  type RunOptions,
  type RunResult,
  rewritePayload,
  runCapture,
  runPipeline,
  type UnsupportedLinks,
  type Verdict,
} from './run.js';
export {
  LengthSwitchedRegExp,
  type PcreExec,
  StepBoundedRegExp,
  type StepsBudget,
  type StepsMatch,
  StepsSyntaxError,
} from './steps.js';
export {
  type Chunk,
  type InsertResult,
  newDataWins,
  type OverlapPolicy,
  overlapPolicies,
  ReassemblyBudget,
  type StreamOptions,
  StreamReassembler,
  type StreamStats,
} from './stream.js';
export { parseRate, type RateEvent, RateLimiter, type RateSpec, trackedMax } from './threshold.js';
export {
  type EventFilterEntry,
  parseThresholdConfig,
  type SuppressEntry,
  ThresholdConfigError,
  type ThresholdEntry,
} from './threshold-config.js';
export { parseVarsFile, VarsFileError } from './vars.js';
