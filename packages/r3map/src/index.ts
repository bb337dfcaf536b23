/**
 * @strata/r3map: block devices over NBD (after Loophole Labs' r3map): the BlockDevice contract and its
 * backends, an NBD server, and hash-based delta sync.
 */

export { commands, demos } from './cli.js';
export {
  type BlockStatusExtent,
  blockStatusBytesMax,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
  NbdClientDevice,
  NbdClientError,
  type NbdConnectOptions,
} from './client.js';
export {
  ControlChannel,
  ControlError,
  controlVersion,
  decodeMessage,
  decodeUnitFrame,
  encodeMessage,
  encodeUnitFrames,
  frameBytesMax,
  type Message,
  unitRunBytesMax,
} from './control.js';
export { type BlockDevice, checkRange, type Extent } from './device.js';
export { FileDevice } from './devices/file.js';
export { MemoryDevice, memChunkBytes } from './devices/memory.js';
export { StoreDevice } from './devices/store.js';
export {
  type MigrateOptions,
  MigratingDevice,
  type MigrationReport,
  migrate,
  TrackedDevice,
  unitsToChunks,
} from './migrate.js';
export {
  type DestEvent,
  type DestMigration,
  type DestOptions,
  type DestReport,
  MigrationAbandonedError,
  MigrationSource,
  migrateChunkBytesDefault,
  migrateFrom,
  migrateTrackBytes,
  type OpenedDevice,
  type SourceEvent,
  type SourceOptions,
  type SourceReport,
} from './migrate-remote.js';
export {
  MountDevice,
  type MountOptions,
  type MountStats,
  statusSpanBytes,
  zeroRunBytesMax,
} from './mount.js';
export {
  Cmd,
  defaultNbdConnectionsMax,
  defaultNbdSendTimeoutMs,
  Err,
  type Export,
  NbdServer,
  type NbdServerOptions,
  type NbdStats,
  Opt,
  requestBytesMax,
} from './nbd.js';
export {
  defaultChunkBytes,
  digestFile,
  type ServeSyncOptions,
  type SyncOptions,
  type SyncResult,
  serveSync,
  syncFiles,
  syncIdleTimeoutMs,
  syncToRemote,
  syncWindowChunks,
  syncWindowChunksMax,
} from './sync.js';
export { UnitSet, unitPageBits } from './units.js';
