/**
 * @strata/vlog: virtual consensus after Delos (OSDI'20): the Loglet, MetaStore and VirtualLog contracts,
 * loglets (memory, durable file), MetaStores (memory, file), and the `strata log` CLI.
 */

export { commands, demos } from './cli.js';
export * from './contract.js';
export {
  FailureDetector,
  type FailureDetectorOptions,
  type NativePool,
  nativeFailover,
  successorId,
} from './failover.js';
export {
  checkLogletSpec,
  type OpenLogOptions,
  openLog,
  openLoglet,
  openMeta,
  prepareLoglet,
  type SegmentStores,
  SpecError,
} from './open.js';
export { type Disk, NodeDisk } from './providers/disk.js';
export { EtcdMetaStore, etcdRequestTimeoutMs, parseEtcdUrl } from './providers/etcd.js';
export { FileLoglet, scanRecords } from './providers/file.js';
export { FileMetaStore } from './providers/file-meta.js';
export { MemoryLoglet, MemoryMetaStore } from './providers/memory.js';
export {
  type LogletHealth,
  LogServer,
  type LogServerOptions,
  NativeLoglet,
  type Net,
  nativeSpec,
  parseNativeSpec,
  pingAll,
  Sequencer,
} from './providers/native.js';
export { ObjectStoreLoglet } from './providers/objstore.js';
export {
  decodeStripeBatch,
  encodeStripeBatch,
  StripedLoglet,
  type StripedLogletOptions,
  stripedBatchesCachedMax,
  stripedPlaceTimeoutMs,
} from './providers/striped.js';
export {
  parseZkUrl,
  ZkClient,
  type ZkClientOptions,
  ZkConnectionLossError,
  ZkError,
  type ZkOp,
  type ZkStat,
  ZooKeeperLoglet,
  ZooKeeperMetaStore,
  zkBatchBytesMax,
} from './providers/zookeeper.js';
export { LogTable, type TableOptions, TableRecordError } from './table.js';
export {
  appendTimeoutMs,
  ChainError,
  type Failover,
  type LogletFactory,
  LogletOwnedError,
  VirtualLog,
  type VirtualLogOptions,
} from './virtual.js';
