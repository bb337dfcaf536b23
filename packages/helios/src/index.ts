/**
 * @strata/helios: Helios-style stream ingestion and bottom-up indexing (Potharaju et al., PVLDB'20):
 * a stream DDL, line formats, data blocks in object storage, a progress log, level-0 leaves merged and
 * added into index levels with watermarks, and a hybrid query that always sees every acknowledged row.
 */

export {
  type AgentOptions,
  type AgentStats,
  agentReadBytes,
  chunkBytesMax,
  runAgentFile,
  runAgentOnce,
  runAgentStream,
} from './agent.js';
export {
  type BlockHeader,
  type BlockMeta,
  BlockReader,
  type BlockSource,
  type BlockVersion,
  blockDirectoryBytesMax,
  blockId,
  blockPageRows,
  blockPrefixBytes,
  buildKeyFilter,
  decodeBlock,
  type EncodedBlock,
  type EncodeOptions,
  encodeBlock,
  filterMayHold,
  type PageInfo,
} from './block.js';
export { commands, demos, hdfsDdl } from './cli.js';
export { CursorError, type CursorPosition, cursorCharsMax, formatCursor, parseCursor } from './cursor.js';
export {
  type ColumnDef,
  type ColumnType,
  chunkSizeMax,
  DdlError,
  type FormatSpec,
  type IndexDef,
  parseDdl,
  type StreamDef,
} from './ddl.js';
export { type ExportResult, exportParquet } from './export.js';
export {
  type Cell,
  fieldParser,
  loghubMatcher,
  loghubRegex,
  parseTimestamp,
  type Row,
  RowParser,
  regexBacktracksMax,
  tokenize,
  userRegExp,
  wholeTokens,
} from './formats.js';
export { hashKeys, keysOf, rowKeys, sortUnique } from './keys.js';
export {
  type ChildRun,
  decodeNode,
  dropPointers,
  encodeNode,
  type IndexNode,
  leafNode,
  lookup,
  mergeAll,
  mergeChildren,
  mergeNodes,
  NodeDirectory,
  type NodeHeader,
  NodePage,
  nodePageKeys,
  nodePagesMax,
  nodeVersion,
} from './node.js';
export { nodeCacheBytesMax } from './nodecache.js';
export { ProgressLog, type ProgressRecord } from './progress.js';
export {
  type CmpOp,
  type Expr,
  evalExpr,
  mayMatchRange,
  parseQuery,
  QueryError,
  queryCharsMax,
  queryDepthMax,
} from './query.js';
export { directoryCacheBytesMax, nodePageCacheBytesMax } from './reads.js';
export {
  type Periodic,
  type PeriodicOptions,
  parseDurationMs,
  periodMsMax,
  runEvery,
  serialQueue,
  type Timers,
} from './schedule.js';
export type { SearchOptions, SearchResult, SearchStats } from './search.js';
export {
  checkLeaf,
  type IngestServer,
  type IngestServerOptions,
  leafKeysMax,
  searchPageRowsMax,
  startIngestServer,
} from './server.js';
export {
  type ChunkOptions,
  type CompactStats,
  compactSweepsMax,
  createStream,
  defaultPolicy,
  eraseRetriesMax,
  eraseRunsMax,
  gcGraceMsDefault,
  type IndexPolicy,
  type IngestStats,
  type MaintainStats,
  maintainSummary,
  rowObject,
  Stream,
  type StreamOptions,
  streamDir,
  valuePageRows,
} from './stream.js';
