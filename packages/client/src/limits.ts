// The client's limits and defaults, in one place. Every queue, buffer, retry loop and timer in
// the SDK takes its bound from here (or from an option that defaults to a value here), and the
// assertions at the bottom tie related limits together. Nothing here does I/O.
import assert from 'node:assert/strict';

/** Default broker address: the local `streambus dev` broker. */
export const DEFAULT_BOOTSTRAP = '127.0.0.1:7070';

export const ClientDefaults = {
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  /** Requests in flight per broker connection (idempotent producers need order: see producer.ts). */
  inflightRequestsMax: 5,
  /** Callers waiting for an in-flight slot on one connection. */
  slotWaitersMax: 100_000,
  frameBytesMax: 64 * 1024 * 1024,
  metadataMaxAgeMs: 5 * 60_000,
  /**
   * The backoff ceiling of a delivery (producer) retry while a leader moves
   * (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, NETWORK_EXCEPTION): context.ts `runUntil`.
   */
  leaderMovedBackoffMaxMs: 100,
  /**
   * The first backoff of such a retry (then doubling up to the ceiling): a controlled shutdown
   * moves a leader in about one round trip, and the metadata refresh before the retry is what
   * finds it; a 100 ms first sleep was most of a rolling restart's tail (issue 12).
   */
  leaderMovedBackoffInitialMs: 10,
  retry: {
    retriesMax: 5,
    totalTimeoutMs: 30_000,
    backoffInitialMs: 100,
    backoffMaxMs: 2_000,
  },
} as const;

export const ProducerDefaults = {
  // No default lingerMs: without one the producer batches adaptively (producer.ts openBatch).
  /** send() to acknowledgement, retries included (Kafka's delivery.timeout.ms). */
  deliveryTimeoutMs: 120_000,
  /** A batch closes when its encoded size would pass this. */
  batchBytesMax: 1024 * 1024,
  /** Encoded bytes held by the producer (open, queued and in-flight batches). */
  bufferBytesMax: 64 * 1024 * 1024,
  /** How long send() waits for buffer space before it fails with REQUEST_TIMED_OUT. */
  bufferWaitTimeoutMs: 30_000,
  /** Records waiting for buffer space; beyond it send() fails at once. */
  bufferWaitersMax: 1_000_000,
  /** Largest single record (key + value + headers), encoded. */
  recordBytesMax: 16 * 1024 * 1024,
  /**
   * Produce requests in flight per partition for an idempotent producer (the broker remembers
   * the last 5 batches per producer and partition for deduplication); 1 without idempotence.
   */
  inflightBatchesPerPartitionMax: 5,
  /**
   * Adaptive batching (batch-policy.ts): a turn of the event loop is split into overlapping
   * requests at half the partition's recent outstanding volume, never below this many records
   * (a turn with fewer records sends one request).
   */
  splitRecordsMin: 64,
  /** Pooled batch buffers kept for reuse. */
  bufferPoolMax: 16,
  /** Initial capacity of a batch buffer; it grows by doubling up to the batch limit. */
  batchBufferInitialBytes: 64 * 1024,
} as const;

export const ConsumerDefaults = {
  maxWaitMs: 500,
  minBytes: 1,
  maxBytes: 16 * 1024 * 1024,
  partitionMaxBytes: 4 * 1024 * 1024,
  /**
   * Records per poll() (whole batches). Bounds the decoded records alive at once: decoding a
   * whole 4 MiB round of 100 B records (~37k record objects and views) at once measured
   * slower, the young generation no longer holding them (see docs/client.md).
   */
  maxPollRecords: 2048,
} as const;

/** The group consumer's (group-consumer.ts): Kafka's defaults. */
export const GroupDefaults = {
  assignor: 'cooperative-sticky',
  autoCommitIntervalMs: 5_000,
  sessionTimeoutMs: 45_000,
  /** At most this, and at most a third of the session timeout. */
  heartbeatIntervalMs: 3_000,
  maxPollIntervalMs: 300_000,
  /** How often a member checks its subscribed topics (pattern matches, partition counts). */
  metadataRefreshMs: 30_000,
} as const;

assert.ok(ProducerDefaults.batchBytesMax <= ProducerDefaults.bufferBytesMax);
assert.ok(ProducerDefaults.recordBytesMax < ClientDefaults.frameBytesMax);
assert.ok(ConsumerDefaults.maxBytes < ClientDefaults.frameBytesMax);
assert.ok(ConsumerDefaults.partitionMaxBytes <= ConsumerDefaults.maxBytes);
assert.ok(ClientDefaults.retry.backoffInitialMs <= ClientDefaults.retry.backoffMaxMs);
