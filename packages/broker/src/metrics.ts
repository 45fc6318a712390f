// Prometheus metrics of one broker (prom-client, a registry per broker so several brokers can run
// in one process, as the tests do). Every name starts with `streambus_`. Per-partition gauges are
// computed at scrape time from the live partitions, so the hot path pays nothing for them; the
// hot path pays one counter increment and one histogram observation per request.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What partition storage reports about its file descriptors (BoundedFileSystem stats). */
export interface StorageFilesView {
  readonly openFiles: number;
  readonly evictions: number;
  readonly exhausted: number;
}

export interface PartitionView {
  readonly topic: string;
  readonly index: number;
  readonly logEndOffset: number;
  readonly logStartOffset: number;
  readonly sizeBytes: number;
  /** Why the partition is offline, or null when it serves. */
  readonly offline: object | null;
  /** Appends fail on storage right now (a full disk, a failed log being recovered). */
  readonly inStorageError?: boolean;
}

export class BrokerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'api'>;
  readonly requestErrors: Counter<'api' | 'code'>;
  readonly requestSeconds: Histogram<'api'>;
  readonly bytesIn: Counter;
  readonly bytesOut: Counter;
  readonly recordsIn: Counter;
  readonly connections: Gauge;
  readonly connectionsTotal: Counter;
  readonly connectionsRejected: Counter;
  readonly framesRejected: Counter<'code'>;
  readonly fsyncSeconds: Histogram;
  readonly logDamageEvents: Counter<'kind'>;
  readonly logDamageBytes: Counter<'kind'>;
  readonly appendStorageErrors: Counter<'reason'>;
  readonly logsRecovered: Counter;
  readonly unhandledRejections: Counter;

  constructor(partitions: () => Iterable<PartitionView>) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'streambus_requests_total',
      help: 'Requests handled, by API',
      labelNames: ['api'],
      registers,
    });
    this.requestErrors = new Counter({
      name: 'streambus_request_errors_total',
      help: 'Requests or partitions answered with an error, by API and error code',
      labelNames: ['api', 'code'],
      registers,
    });
    this.requestSeconds = new Histogram({
      name: 'streambus_request_duration_seconds',
      help: 'Time from a request frame read to its response written, by API',
      labelNames: ['api'],
      buckets: [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30,
      ],
      registers,
    });
    this.bytesIn = new Counter({
      name: 'streambus_network_bytes_in_total',
      help: 'Bytes received on client connections',
      registers,
    });
    this.bytesOut = new Counter({
      name: 'streambus_network_bytes_out_total',
      help: 'Bytes sent on client connections',
      registers,
    });
    this.recordsIn = new Counter({
      name: 'streambus_records_in_total',
      help: 'Records appended (duplicates of retried batches excluded)',
      registers,
    });
    this.connections = new Gauge({
      name: 'streambus_connections',
      help: 'Open client connections',
      registers,
    });
    this.connectionsTotal = new Counter({
      name: 'streambus_connections_accepted_total',
      help: 'Client connections accepted',
      registers,
    });
    this.connectionsRejected = new Counter({
      name: 'streambus_connections_rejected_total',
      help: 'Client connections refused at limits.connectionsMax',
      registers,
    });
    this.framesRejected = new Counter({
      name: 'streambus_frames_rejected_total',
      help: 'Connections closed for a malformed or oversized frame, by error code',
      labelNames: ['code'],
      registers,
    });
    this.fsyncSeconds = new Histogram({
      name: 'streambus_fsync_duration_seconds',
      help: 'Duration of fsync calls on partition log files',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      registers,
    });
    this.logDamageEvents = new Counter({
      name: 'streambus_log_damage_events_total',
      help: 'Damaged batches found in partition logs (kind="corruption") and cuts made by log recovery (kind="truncated")',
      labelNames: ['kind'],
      registers,
    });
    this.logDamageBytes = new Counter({
      name: 'streambus_log_damage_bytes_total',
      help: 'Bytes affected by those events, by kind',
      labelNames: ['kind'],
      registers,
    });
    const offline = new Gauge({
      name: 'streambus_partitions_offline',
      help: 'Partitions that cannot serve (damaged or unopenable log) until repaired',
      registers,
      collect() {
        let n = 0;
        for (const p of partitions()) if (p.offline !== null) n++;
        offline.set(n);
      },
    });
    this.appendStorageErrors = new Counter({
      name: 'streambus_append_storage_errors_total',
      help: 'Appends refused by storage, by reason (disk_full: ENOSPC/EDQUOT; storage_error: any other)',
      labelNames: ['reason'],
      registers,
    });
    this.logsRecovered = new Counter({
      name: 'streambus_partition_logs_recovered_total',
      help: 'Partition logs reopened from disk after a storage failure (a failed fsync)',
      registers,
    });
    this.unhandledRejections = new Counter({
      name: 'streambus_unhandled_rejections_total',
      help: 'Promise rejections nothing handled (a bug; logged, the broker keeps running)',
      registers,
    });
    const storageErrors = new Gauge({
      name: 'streambus_partitions_storage_error',
      help: 'Partitions whose appends fail on storage right now (until a write lands again)',
      registers,
      collect() {
        let n = 0;
        for (const p of partitions()) if (p.inStorageError === true) n++;
        storageErrors.set(n);
      },
    });
    const logEnd = new Gauge({
      name: 'streambus_partition_log_end_offset',
      help: 'Next offset to be assigned, per partition',
      labelNames: ['topic', 'partition'],
      registers,
      collect() {
        logEnd.reset();
        for (const p of partitions())
          logEnd.set({ topic: p.topic, partition: p.index }, p.logEndOffset);
      },
    });
    const logStart = new Gauge({
      name: 'streambus_partition_log_start_offset',
      help: 'First offset still stored, per partition',
      labelNames: ['topic', 'partition'],
      registers,
      collect() {
        logStart.reset();
        for (const p of partitions())
          logStart.set({ topic: p.topic, partition: p.index }, p.logStartOffset);
      },
    });
    const size = new Gauge({
      name: 'streambus_partition_log_size_bytes',
      help: 'Bytes stored, per partition',
      labelNames: ['topic', 'partition'],
      registers,
      collect() {
        size.reset();
        for (const p of partitions()) size.set({ topic: p.topic, partition: p.index }, p.sizeBytes);
      },
    });
  }
  /** Storage's file descriptors, read at scrape time (registered once by the storage wiring). */
  registerStorageFiles(stats: () => StorageFilesView, openFilesMax: number): void {
    const registers = [this.registry];
    const open = new Gauge({
      name: 'streambus_storage_open_files',
      help: 'File descriptors held by partition storage now',
      registers,
      collect() {
        open.set(stats().openFiles);
      },
    });
    const max = new Gauge({
      name: 'streambus_storage_open_files_max',
      help: 'Bound on the file descriptors of partition storage (limits.openFilesMax, as applied)',
      registers,
    });
    max.set(openFilesMax);
    const evictions = new Counter({
      name: 'streambus_storage_file_evictions_total',
      help: 'Segment file descriptors closed to stay within the bound (reopened on demand)',
      registers,
      collect() {
        evictions.reset();
        evictions.inc(stats().evictions);
      },
    });
    const exhausted = new Counter({
      name: 'streambus_storage_open_files_exhausted_total',
      help: 'Storage calls that failed with TOO_MANY_OPEN_FILES (no descriptor free in time)',
      registers,
      collect() {
        exhausted.reset();
        exhausted.inc(stats().exhausted);
      },
    });
  }
}
