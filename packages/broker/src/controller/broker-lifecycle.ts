// A broker's registration with the controller and its heartbeats (issue 9), driven by the
// broker's tick (no timers of its own). It registers this broker (native address, advertised
// Kafka address if any, incarnation: chosen once per process), then heartbeats every `heartbeatIntervalTicks`; the answers say
// whether the controller holds the broker fenced. Registration is what makes a non-voter broker a
// learner of the metadata group, so it starts receiving the log.
//
// Rules:
//   1. At most one call in flight; a tick while one is in flight does nothing.
//   2. STALE_BROKER_EPOCH or BROKER_ID_NOT_REGISTERED from a heartbeat means the controller no
//      longer knows this registration (another incarnation registered, or the state was lost):
//      register again (a new broker epoch).
//   3. `fenced` is true until a heartbeat is answered unfenced, and again once no heartbeat was
//      answered for `sessionTicks` ticks (the controller fences such a broker anyway; this is
//      the broker's own conservative view of it). Other errors are retried on the next interval
//      (the client already retried within the call).
import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import type { ControllerClient } from './controller-rpc.js';
import type { KafkaAddress } from './metadata-records.js';

export interface BrokerLifecycleOptions {
  readonly brokerId: number;
  readonly host: string;
  readonly port: number;
  /** The advertised Kafka listener address; null: none. A restart may change it. */
  readonly kafka?: KafkaAddress | null;
  /** Unique per process start (a restart is a new incarnation). */
  readonly incarnation: string;
  readonly client: Pick<ControllerClient, 'registerBroker' | 'heartbeat'>;
  /** Heartbeat every this many ticks. */
  readonly heartbeatIntervalTicks?: number;
  /** After this many ticks without an answered heartbeat this broker counts itself fenced. */
  readonly sessionTicks?: number;
  readonly onError?: (err: unknown) => void;
}

export const BROKER_LIFECYCLE_DEFAULTS = {
  heartbeatIntervalTicks: 10,
  sessionTicks: 90,
} as const;

export class BrokerLifecycle {
  private readonly intervalTicks: number;
  private readonly sessionTicks: number;
  private epoch: number | null = null;
  private fencedByController = true;
  private ticks = 0;
  private lastAnsweredTick = 0;
  private nextDueTick = 0;
  private inflight: Promise<void> | null = null;
  private stopped = false;
  private registrations = 0;

  constructor(private readonly o: BrokerLifecycleOptions) {
    this.intervalTicks =
      o.heartbeatIntervalTicks ?? BROKER_LIFECYCLE_DEFAULTS.heartbeatIntervalTicks;
    this.sessionTicks = o.sessionTicks ?? BROKER_LIFECYCLE_DEFAULTS.sessionTicks;
  }

  /** The broker epoch of the current registration, null before one succeeded. */
  get brokerEpoch(): number | null {
    return this.epoch;
  }

  /** Rule 3. */
  get fenced(): boolean {
    if (this.epoch === null || this.fencedByController) return true;
    return this.ticks - this.lastAnsweredTick > this.sessionTicks;
  }

  /** How many registrations succeeded (1 + re-registrations). */
  get registrationCount(): number {
    return this.registrations;
  }

  /** One broker tick: registers or heartbeats when due (rule 1). */
  tick(): void {
    this.ticks++;
    if (this.stopped || this.inflight !== null || this.ticks < this.nextDueTick) return;
    this.nextDueTick = this.ticks + this.intervalTicks;
    const call = this.epoch === null ? this.register() : this.heartbeat(this.epoch);
    this.inflight = call
      .catch((err: unknown) => this.o.onError?.(err))
      .finally(() => {
        this.inflight = null;
      });
  }

  /** Registers now (start-up), without waiting for a tick. */
  start(): Promise<void> {
    if (this.inflight === null && !this.stopped) {
      this.nextDueTick = this.ticks + this.intervalTicks;
      this.inflight = this.register()
        .catch((err: unknown) => this.o.onError?.(err))
        .finally(() => {
          this.inflight = null;
        });
    }
    return this.inflight ?? Promise.resolve();
  }

  /** Stops heartbeating (a graceful shutdown); waits for a call in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.inflight !== null) await this.inflight;
  }

  private async register(): Promise<void> {
    const { brokerEpoch } = await this.o.client.registerBroker({
      brokerId: this.o.brokerId,
      host: this.o.host,
      port: this.o.port,
      incarnation: this.o.incarnation,
      kafka: this.o.kafka ?? null,
    });
    this.epoch = brokerEpoch;
    this.fencedByController = true;
    this.registrations++;
    // Heartbeat at once: registration leaves the broker fenced until its first heartbeat.
    this.nextDueTick = this.ticks;
  }

  private async heartbeat(epoch: number): Promise<void> {
    try {
      const { fenced } = await this.o.client.heartbeat({
        brokerId: this.o.brokerId,
        brokerEpoch: epoch,
      });
      if (this.epoch !== epoch) return;
      this.fencedByController = fenced;
      this.lastAnsweredTick = this.ticks;
    } catch (err) {
      if (
        isStreamBusError(err, ErrorCode.STALE_BROKER_EPOCH) ||
        isStreamBusError(err, ErrorCode.BROKER_ID_NOT_REGISTERED)
      ) {
        // Rule 2: register again on the next tick.
        this.epoch = null;
        this.nextDueTick = this.ticks;
        return;
      }
      throw err;
    }
  }
}
