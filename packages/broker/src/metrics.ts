// Prometheus metrics of one broker (prom-client, a registry per broker so several brokers can run
// in one process, as the tests do). Every name starts with `streambus_`. Per-partition gauges are
// computed at scrape time from the live partitions, so the hot path pays nothing for them; the
// hot path pays one counter increment and one histogram observation per request.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { processThreadPoolSize } from './thread-pool.js';

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
    new Gauge({
      name: 'streambus_uv_threadpool_size',
      help: 'Threads of the libuv pool that runs fs writes and fsyncs (UV_THREADPOOL_SIZE at start)',
      registers,
    }).set(processThreadPoolSize());
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

/** What the cluster path reports at scrape time (cluster-node.ts `metricsView`, issue 12). */
export interface ClusterMetricsView {
  readonly replicas: ReadonlyArray<{
    readonly topic: string;
    readonly partition: number;
    readonly role: string;
    /** Records appended here and not yet committed (log end - high watermark). */
    readonly uncommittedRecords: number;
    /** On the leader: in-sync replicas and replicas of the partition. */
    readonly isrSize: number;
    readonly replicaCount: number;
    /** On the leader, per follower. */
    readonly lag: ReadonlyArray<{ readonly id: number; entries: number; seconds: number }>;
    /** Data fsyncs of this replica's segment log since it opened here (group commit, issue 9). */
    readonly fsyncs: number;
  }>;
  /** Times a replica on this broker became its group's leader. */
  readonly leaderElections: number;
  /** Partitions of the applied state with no leader recorded (cluster-wide). */
  readonly leaderlessPartitions: number;
  readonly controllerId: number;
  readonly isController: boolean;
  readonly metadataAppliedIndex: number;
  readonly metadataCaughtUp: boolean;
  readonly brokersLive: number;
  readonly brokersFenced: number;
  readonly peers: ReadonlyArray<{
    readonly peer: number;
    readonly messagesSent: number;
    readonly messagesReceived: number;
    readonly framesSent: number;
    readonly framesReceived: number;
    readonly bytesSent: number;
    readonly bytesReceived: number;
  }>;
}

/**
 * Registers the cluster path's gauges and counters on `registry`, read from `view()` at scrape
 * time (so the hot path pays nothing). Counters are kept by their owners and copied in.
 */
export function registerClusterMetrics(registry: Registry, view: () => ClusterMetricsView): void {
  const registers = [registry];
  let cached: { at: number; v: ClusterMetricsView } | null = null;
  // One view per scrape (every collect() below runs in the same scrape).
  const v = (): ClusterMetricsView => {
    const now = Date.now();
    if (cached === null || now - cached.at > 100) cached = { at: now, v: view() };
    return cached.v;
  };
  const gauge = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (g: Gauge<string>, view: ClusterMetricsView) => void,
  ) => {
    const g: Gauge<string> = new Gauge({
      name,
      help,
      labelNames,
      registers,
      collect() {
        g.reset();
        fill(g, v());
      },
    });
  };
  const counter = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (c: Counter<string>, view: ClusterMetricsView) => void,
  ) => {
    const c: Counter<string> = new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        c.reset();
        fill(c, v());
      },
    });
  };
  gauge(
    'streambus_replica_role',
    'Role of each partition replica on this broker (1 for its current role)',
    ['topic', 'partition', 'role'],
    (g, x) => {
      for (const r of x.replicas)
        g.set({ topic: r.topic, partition: r.partition, role: r.role }, 1);
    },
  );
  gauge(
    'streambus_partition_uncommitted_records',
    'Records appended to this replica and not yet committed (log end - high watermark)',
    ['topic', 'partition'],
    (g, x) => {
      for (const r of x.replicas)
        g.set({ topic: r.topic, partition: r.partition }, r.uncommittedRecords);
    },
  );
  counter(
    'streambus_replica_fsyncs_total',
    "Data fsyncs of each replica's segment log since it opened on this broker (one fsync covers every append written while the previous one ran: compare with produce requests)",
    ['topic', 'partition'],
    (c, x) => {
      for (const r of x.replicas) c.inc({ topic: r.topic, partition: r.partition }, r.fsyncs);
    },
  );
  const lagGauge = (
    name: string,
    help: string,
    pick: (l: { entries: number; seconds: number }) => number,
  ) =>
    gauge(name, help, ['topic', 'partition', 'replica'], (g, x) => {
      for (const r of x.replicas)
        for (const l of r.lag)
          g.set({ topic: r.topic, partition: r.partition, replica: l.id }, pick(l));
    });
  lagGauge(
    'streambus_replica_lag_entries',
    'On the leader: Raft entries each follower is behind the leader',
    (l) => l.entries,
  );
  lagGauge(
    'streambus_replica_lag_seconds',
    'On the leader: seconds since each follower last matched the commit index (0 while it does)',
    (l) => l.seconds,
  );
  gauge(
    'streambus_partitions_under_replicated',
    'Partitions led here whose in-sync replicas are fewer than their replicas',
    [],
    (g, x) => {
      g.set(x.replicas.filter((r) => r.role === 'leader' && r.isrSize < r.replicaCount).length);
    },
  );
  gauge(
    'streambus_partitions_leaderless',
    'Partitions the applied metadata records without a leader (cluster-wide view)',
    [],
    (g, x) => g.set(x.leaderlessPartitions),
  );
  gauge('streambus_partitions_led', 'Partitions this broker leads', [], (g, x) => {
    g.set(x.replicas.filter((r) => r.role === 'leader').length);
  });
  counter(
    'streambus_leader_elections_total',
    'Times a partition replica on this broker became its Raft group leader',
    [],
    (c, x) => c.inc(x.leaderElections),
  );
  gauge(
    'streambus_controller_is_leader',
    '1 when this broker is the controller (the metadata Raft group leader)',
    [],
    (g, x) => g.set(x.isController ? 1 : 0),
  );
  gauge(
    'streambus_controller_id',
    'The controller leader this broker knows of (-1: none)',
    [],
    (g, x) => g.set(x.controllerId),
  );
  gauge(
    'streambus_metadata_applied_index',
    'Index of the last metadata log entry applied here',
    [],
    (g, x) => g.set(x.metadataAppliedIndex),
  );
  gauge(
    'streambus_metadata_caught_up',
    '1 when this broker applied everything of the metadata log it knows committed',
    [],
    (g, x) => g.set(x.metadataCaughtUp ? 1 : 0),
  );
  gauge('streambus_cluster_brokers', 'Registered brokers by state', ['state'], (g, x) => {
    g.set({ state: 'live' }, x.brokersLive);
    g.set({ state: 'fenced' }, x.brokersFenced);
  });
  const peerCounter = (
    name: string,
    help: string,
    pick: (p: ClusterMetricsView['peers'][number]) => number,
  ) =>
    counter(name, help, ['peer'], (c, x) => {
      for (const p of x.peers) c.inc({ peer: p.peer }, pick(p));
    });
  peerCounter(
    'streambus_peer_messages_sent_total',
    'Raft messages sent, per peer',
    (p) => p.messagesSent,
  );
  peerCounter(
    'streambus_peer_messages_received_total',
    'Raft messages received, per peer',
    (p) => p.messagesReceived,
  );
  peerCounter(
    'streambus_peer_frames_sent_total',
    'Link frames sent, per peer (one carries every Raft message queued for the peer in one turn)',
    (p) => p.framesSent,
  );
  peerCounter(
    'streambus_peer_frames_received_total',
    'Link frames received, per peer',
    (p) => p.framesReceived,
  );
  peerCounter(
    'streambus_peer_bytes_sent_total',
    'Bytes sent on the peer link, per peer',
    (p) => p.bytesSent,
  );
  peerCounter(
    'streambus_peer_bytes_received_total',
    'Bytes received on the peer link, per peer',
    (p) => p.bytesReceived,
  );
}
